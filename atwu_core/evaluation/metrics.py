"""TOFU evaluation metrics and token-weight / forget-span alignment, as pure functions.

Everything here takes plain numbers (lists or numpy arrays) and returns plain numbers, so the
dashboard can import it without torch. The model-side work (forward passes, generation) lives
in `atwu_core.evaluation.evaluate`; this module only does the arithmetic of METHOD.md §3 (TOFU
protocol) and §4 (span alignment).

Conventions:
- An NLL is *length-normalised*: the mean over answer tokens of `-log p_t`, so
  `P(a|q) = exp(-nll)` (METHOD.md §3).
- Membership scores follow "higher = more member-like" (`mink_score` is a mean log-probability), so
  `membership_auc` is 1.0 when every forget item looks more familiar than every held-out item and
  0.5 when the model cannot tell them apart.
- Bad input raises `ValueError` naming the argument and the offending value or index.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

# Splits that report `max(0, 1 - TR)`; only "forget" reports `min(TR, 1/TR)` (METHOD.md §3).
TRUTH_RATIO_SPLITS = ("forget", "retain", "world_facts", "real_authors", "holdout")
MAX_LOG_TR = 700.0  # |log TR| cap: exp(709.8) is the largest float64


# ----------------------------------------------------------------------------- validation helpers


def _as_1d(values: Any, name: str, *, allow_empty: bool = False) -> np.ndarray:
    """A float64 vector with no NaN; `name` is used in every error message."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r:.80}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    bad = np.flatnonzero(np.isnan(arr))
    if bad.size:
        raise ValueError(f"{name} contains NaN at index {int(bad[0])}")
    return arr


def _finite(arr: np.ndarray, name: str) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name} must be finite; index {int(bad[0])} is {arr[bad[0]]}")
    return arr


def _same_length(
    a: Sequence[Any] | np.ndarray, b: Sequence[Any] | np.ndarray, name_a: str, name_b: str
) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {name_a} has {len(a)} items, {name_b} has {len(b)}")


# ----------------------------------------------------------------------------- TOFU (METHOD.md §3)


def answer_prob(mean_nll: float | Sequence[float] | np.ndarray) -> float | np.ndarray:
    """Length-normalised answer probability `P(a|q) = exp(-mean_t ℓ_t)` (METHOD.md §3).

    Accepts one NLL (returns a float) or a vector of per-item NLLs (returns an array).
    """
    scalar = np.ndim(mean_nll) == 0
    arr = _finite(_as_1d(np.atleast_1d(mean_nll), "mean_nll"), "mean_nll")
    if (arr < 0).any():
        raise ValueError(f"mean_nll must be >= 0 (an NLL), got {arr[arr < 0][0]}")
    probs = np.exp(-arr)
    return float(probs[0]) if scalar else probs


def truth_ratio(
    correct_nll: float | Sequence[float] | np.ndarray,
    wrong_nlls: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
) -> float | np.ndarray:
    """Per-item truth ratio `TR = P̃_wrong / P_correct` (METHOD.md §3).

    `correct_nll` is the length-normalised NLL of the correct (paraphrased) answer, `wrong_nlls` the
    NLLs of the perturbed answers. With `P = exp(-nll)`, the geometric mean of the wrong answers'
    probabilities is `exp(-mean(wrong_nlls))`, so `TR = exp(correct_nll - mean(wrong_nlls))`,
    computed in log space.

    One item: a number and a list of wrong NLLs → float. Several items: a vector of length N and a
    list of N lists (they may differ in length between items) → array of N ratios.
    """
    if np.ndim(correct_nll) == 0:
        correct = _finite(_as_1d([correct_nll], "correct_nll"), "correct_nll")
        rows = [wrong_nlls]
    else:
        correct = _finite(_as_1d(correct_nll, "correct_nll"), "correct_nll")
        rows = list(wrong_nlls)
        _same_length(correct, rows, "correct_nll", "wrong_nlls")
    mean_wrong = np.empty(len(rows))
    for i, row in enumerate(rows):
        wrong = _finite(_as_1d(row, f"wrong_nlls[{i}]"), f"wrong_nlls[{i}]")
        mean_wrong[i] = wrong.mean()
    # A collapsed model can put hundreds of nats between the answers; clip the log-ratio so TR stays
    # a finite float64 (and valid JSON) instead of overflowing to inf. e^±700 is already 0 or ∞
    # for every score built on it.
    ratios = np.exp(np.clip(correct - mean_wrong, -MAX_LOG_TR, MAX_LOG_TR))
    return float(ratios[0]) if np.ndim(correct_nll) == 0 else ratios


def truth_ratio_score(tr: float | Sequence[float] | np.ndarray, split: str) -> float | np.ndarray:
    """Per-item truth-ratio score (METHOD.md §3): forget `min(TR, 1/TR)`, others `max(0, 1 - TR)`.

    On forget, 1 means the model finds the true and the wrong answers equally likely (nothing left
    to extract); on the other splits, 1 means it strongly prefers the true answer. Average the
    returned values to get the split's reported number.
    """
    if split not in TRUTH_RATIO_SPLITS:
        raise ValueError(f"split must be one of {TRUTH_RATIO_SPLITS}, got {split!r}")
    scalar = np.ndim(tr) == 0
    arr = _as_1d(np.atleast_1d(tr), "tr")
    if (arr < 0).any():
        raise ValueError(f"tr must be >= 0 (a ratio of probabilities), got {arr[arr < 0][0]}")
    if split == "forget":
        # TR = 0 or inf (underflow/overflow) is the limit "completely one-sided": score 0.
        with np.errstate(divide="ignore"):
            scores = np.minimum(arr, 1.0 / arr)
    else:
        scores = np.maximum(0.0, 1.0 - arr)
    return float(scores[0]) if scalar else scores


def forget_quality(
    tr_unlearned: Sequence[float] | np.ndarray, tr_retain_model: Sequence[float] | np.ndarray
) -> float:
    """Forget quality (METHOD.md §3): KS-test p-value between two samples of forget truth ratios.

    `tr_unlearned` are the raw per-item forget truth ratios of the model under test,
    `tr_retain_model` those of the retain model (never trained on the forget set). High means
    indistinguishable. The samples are not paired, so their lengths may differ.
    """
    a = _as_1d(tr_unlearned, "tr_unlearned")
    b = _as_1d(tr_retain_model, "tr_retain_model")
    for arr, name in ((a, "tr_unlearned"), (b, "tr_retain_model")):
        if (arr < 0).any():
            raise ValueError(f"{name} must be >= 0 (truth ratios), got {arr[arr < 0][0]}")
    return float(stats.ks_2samp(a, b).pvalue)


def model_utility(values: Sequence[float] | np.ndarray) -> float:
    """Model utility (METHOD.md §3): harmonic mean of the non-forget metric values.

    Zero if any value is zero (one collapsed ability sinks the utility, by design of the hmean).
    """
    arr = _finite(_as_1d(values, "values"), "values")
    if (arr < 0).any():
        idx = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"values must be >= 0 for a harmonic mean; index {idx} is {arr[idx]}")
    if (arr == 0).any():
        return 0.0
    return float(stats.hmean(arr))


@lru_cache(maxsize=1)
def _rouge_scorer():
    # Import lazily: rouge_score pulls in nltk, which the dashboard's start-up path does not need.
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-item ROUGE-L recall of each prediction against its reference (METHOD.md §3).

    Recall = LCS length / number of reference tokens, after rouge_score's tokenisation (lower-case,
    alphanumeric words, Porter stemmer on): the share of the true answer the generation reproduces.
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise ValueError("predictions and references must be sequences of strings, not one string")
    _same_length(predictions, references, "predictions", "references")
    if len(predictions) == 0:
        raise ValueError("predictions is empty")
    for name, seq in (("predictions", predictions), ("references", references)):
        for i, text in enumerate(seq):
            if not isinstance(text, str):
                raise ValueError(f"{name}[{i}] must be a string, got {type(text).__name__}")
    scorer = _rouge_scorer()
    # rouge_score's argument order is (target, prediction).
    return [
        scorer.score(ref, pred)["rougeL"].recall
        for pred, ref in zip(predictions, references, strict=True)
    ]


def _flags(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of booleans, got {arr.shape}")
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(
                f"{name} must hold booleans (or 0/1), got {arr[~np.isin(arr, (0, 1))][0]}"
            )
        arr = arr.astype(bool)
    return arr


def exact_memorization(pred_ids_correct: Sequence[bool] | np.ndarray) -> float:
    """Exact memorisation of one answer (METHOD.md §3): the fraction of its tokens whose
    teacher-forced argmax prediction equals the target token."""
    return float(_flags(pred_ids_correct, "pred_ids_correct").mean())


def extraction_strength(correct_flags: Sequence[bool] | np.ndarray) -> float:
    """Extraction strength of one answer (METHOD.md §3): `1 - k/T`.

    `k` is the smallest prefix length after which every teacher-forced prediction is correct, i.e.
    how much of the answer an attacker must supply before the model completes the rest itself.
    All correct → 1; last token wrong → 0.
    """
    flags = _flags(correct_flags, "correct_flags")
    wrong = np.flatnonzero(~flags)
    k = 0 if wrong.size == 0 else int(wrong[-1]) + 1
    return 1.0 - k / flags.size


def mink_score(token_logps: Sequence[float] | np.ndarray, k: float = 0.4) -> float:
    """Min-K% membership score of one answer (METHOD.md §3): the mean of its lowest `k`-fraction
    token log-probabilities (at least one token). Higher = the model finds even its least likely
    tokens familiar = more member-like."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    logps = _finite(_as_1d(token_logps, "token_logps"), "token_logps")
    if (logps > 0).any():
        raise ValueError(f"token_logps must be <= 0 (log-probabilities), got {logps.max()}")
    n = max(1, int(k * logps.size))
    return float(np.sort(logps)[:n].mean())


def membership_auc(
    member_scores: Sequence[float] | np.ndarray, nonmember_scores: Sequence[float] | np.ndarray
) -> float:
    """Membership-inference AUROC (METHOD.md §3): members (forget) labelled 1, non-members
    (held-out) 0, scored so that higher = more member-like. 0.5 = indistinguishable."""
    members = _finite(_as_1d(member_scores, "member_scores"), "member_scores")
    nonmembers = _finite(_as_1d(nonmember_scores, "nonmember_scores"), "nonmember_scores")
    labels = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    return float(roc_auc_score(labels, np.concatenate([members, nonmembers])))


# ----------------------------------------------------------------------------- alignment (§4)


def _precision_at_k(scores: np.ndarray, labels: np.ndarray) -> float:
    """Precision among the k highest-scored tokens, k = number of positives.

    Ties at the k-th score are broken by expectation over random orderings, so a constant score
    (plain ascent gives every token weight 1) gets the base rate, not an artefact of token order.
    """
    k = int(labels.sum())
    kth = np.sort(scores)[::-1][k - 1]
    above = scores > kth
    tied = scores == kth
    from_ties = k - int(above.sum())
    expected_hits = labels[above].sum() + from_ties * labels[tied].mean()
    return float(expected_hits / k)


def _mass_in_span(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """`sum(s·label) / sum(s)`; None when undefined (a negative score or zero total weight)."""
    total = scores.sum()
    if (scores < 0).any() or total <= 0:
        return None
    return float((scores * labels).sum() / total)


def span_alignment(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    example_ids: Sequence[Hashable],
) -> dict[str, Any]:
    """How well per-token scores pick out ground-truth forget-span tokens (METHOD.md §4).

    One entry per answer token: its score `s_t` (a weight, a mask, an NLL increase...), its label
    (True if it overlaps a forget span) and the id of the example it belongs to.

    Returns::

        {"pooled": {"auroc", "ap", "precision_at_k", "mass_in_span"},  # over all tokens
         "per_example": {metric: {"agg_value", "value_by_index"}},      # mean over examples
         "counts": {"tokens", "positives", "examples",
                    "skipped_auroc", "skipped_ap", "skipped_mass"}}

    Per example, AUROC needs both classes (single-class examples are skipped and counted), AP and
    precision@k need a positive, and the weight mass needs non-negative scores with a positive sum.
    `mass_in_span` is None where undefined (signed scores such as an NLL change); a per-example
    metric no example qualifies for is None too. Pooled labels of one class only are an error.
    """
    s = _finite(_as_1d(scores, "scores"), "scores")
    y = _flags(labels, "labels")
    if isinstance(example_ids, str):
        raise ValueError("example_ids must be a sequence of ids, one per token, not one string")
    ids = list(example_ids)
    _same_length(s, y, "scores", "labels")
    _same_length(s, ids, "scores", "example_ids")
    n_pos = int(y.sum())
    if n_pos in (0, y.size):
        kind = "no in-span token" if n_pos == 0 else "only in-span tokens"
        raise ValueError(f"labels contain {kind} ({y.size} tokens): alignment is undefined")
    y_float = y.astype(np.float64)

    pooled = {
        "auroc": float(roc_auc_score(y, s)),
        "ap": float(average_precision_score(y, s)),
        "precision_at_k": _precision_at_k(s, y_float),
        "mass_in_span": _mass_in_span(s, y_float),
    }

    # Group token indices by example, keeping first-seen order (deterministic output order).
    groups: dict[Hashable, list[int]] = {}
    for i, ex in enumerate(ids):
        groups.setdefault(ex, []).append(i)
    per: dict[str, dict[str, float]] = {m: {} for m in pooled}
    skipped = {"auroc": 0, "ap": 0, "mass": 0}
    for ex, idx in groups.items():
        key = str(ex)
        s_ex, y_ex = s[idx], y_float[idx]
        n_ex = int(y_ex.sum())
        if 0 < n_ex < y_ex.size:
            per["auroc"][key] = float(roc_auc_score(y_ex, s_ex))
        else:
            skipped["auroc"] += 1
        if n_ex > 0:
            per["ap"][key] = float(average_precision_score(y_ex, s_ex))
            per["precision_at_k"][key] = _precision_at_k(s_ex, y_ex)
        else:
            skipped["ap"] += 1
        mass = _mass_in_span(s_ex, y_ex)
        if mass is None:
            skipped["mass"] += 1
        else:
            per["mass_in_span"][key] = mass

    return {
        "pooled": pooled,
        "per_example": {m: metric_entry(v) if v else None for m, v in per.items()},
        "counts": {
            "tokens": int(y.size),
            "positives": n_pos,
            "examples": len(groups),
            "skipped_auroc": skipped["auroc"],
            "skipped_ap": skipped["ap"],
            "skipped_mass": skipped["mass"],
        },
    }


def alignment_if_defined(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    example_ids: Sequence[Hashable],
) -> dict[str, Any] | None:
    """`span_alignment`, or None where it is undefined: no token, or labels of one class only
    (a snapshot whose rows are all facts, a run without spans). The one place that guard lives."""
    y = np.asarray(labels, dtype=bool)
    if y.size == 0 or y.all() or not y.any():
        return None
    return span_alignment(scores, y, example_ids)


# ----------------------------------------------------------------------------- selectivity

# Span-token accuracy a run must end at or below for its selectivity to count: the facts are gone.
SELECTIVITY_AT = 0.1


def selectivity(
    span_acc: Sequence[float] | np.ndarray,
    other_acc: Sequence[float] | np.ndarray,
    target: float = SELECTIVITY_AT,
) -> float | None:
    """Shared-token accuracy left once the facts are gone: what a token-level method keeps.

    `span_acc[i]`, `other_acc[i]` are the forget answers' teacher-forced accuracy on span tokens and
    on the other (shared) tokens at successive snapshots of a run. Returns the last snapshot's
    shared-token accuracy when its span-token accuracy is at most `target` (every counted run has
    forgotten at least 1 - target of the facts, so runs compare at matched forgetting), else None:
    a run that keeps the facts is not selective, it just did less.

    Why the end and not the first crossing of `target`: uniform ascent erodes the shared tokens
    *after* the facts are gone (it keeps pushing them), which a reading at the crossing misses.
    """
    a = _finite(_as_1d(span_acc, "span_acc", allow_empty=True), "span_acc")
    o = _finite(_as_1d(other_acc, "other_acc", allow_empty=True), "other_acc")
    _same_length(a, o, "span_acc", "other_acc")
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target must be in [0, 1], got {target!r}")
    if a.size == 0 or a[-1] > target:
        return None
    return float(o[-1])


# ----------------------------------------------------------------------------- storage


def metric_entry(value_by_index: Mapping[Hashable, float]) -> dict[str, Any]:
    """`{"agg_value": mean, "value_by_index": {id: value}}`, the TOFU-tool storage form (§3).

    Keys become strings and values plain floats, so the result is JSON-serialisable as is.
    """
    if not isinstance(value_by_index, Mapping):
        raise ValueError(
            f"value_by_index must be a mapping id -> value, got {type(value_by_index).__name__}"
        )
    if not value_by_index:
        raise ValueError("value_by_index is empty")
    out: dict[str, float] = {}
    for key, value in value_by_index.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"value_by_index[{key!r}] is not a number: {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"value_by_index[{key!r}] must be finite, got {number}")
        out[str(key)] = number
    return {"agg_value": float(np.mean(list(out.values()))), "value_by_index": out}
