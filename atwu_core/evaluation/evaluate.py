"""Run a causal LM over a benchmark and compute the TOFU metrics of METHOD.md §3.

Two kinds of model work, both batched and under `torch.no_grad()`:

1. Teacher-forced scoring. Every answer the metrics need (the answer itself, the paraphrased answer,
   each perturbed answer; the held-out answers for membership inference) is encoded after its
   question, all of them go into one pool sorted by length (little padding), and each batch gives
   per-token log-probs and argmax hits on the answer tokens.
2. Greedy generation from the chat prompt (left-padded batches, stop at eos) for ROUGE-L.

`answer_benchmark` does that model work into a `ModelAnswers`; `tofu_metrics` is the pure
arithmetic on it (`atwu_core.evaluation.metrics`). `evaluate_model` chains them and returns the body
of `eval.json` (docs/FORMATS.md); `atwu_core.cache` stores it for models that never change (the
full and the retain model) so every unlearning run does not evaluate them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from atwu_core import progress
from atwu_core.batches import flush_denormals
from atwu_core.data.encode import collate, encode_example, prompt_ids
from atwu_core.evaluation import metrics as M
from atwu_core.losses import token_logp

EVAL_SCHEMA = 1
# The splits a model can be evaluated on. Forget and retain compare against the paraphrased
# answer; world facts and real authors (TOFU) against the answer itself (METHOD.md §3).
EVAL_SPLITS = ("forget", "retain", "world_facts", "real_authors")
PARAPHRASE_SPLITS = ("forget", "retain")
# Per-split metrics that enter the model utility when the split is not "forget" (METHOD.md §3).
UTILITY_METRICS = ("prob", "rouge", "truth_ratio")


@dataclass(frozen=True)
class _Scored:
    """Teacher-forced results for one answer: per-token log p and argmax-equals-target flags."""

    logp: np.ndarray  # (T,) float64
    correct: np.ndarray  # (T,) bool

    @property
    def mean_nll(self) -> float:
        return float(-self.logp.mean())


def eval_rows(bench: Any, split: str) -> list:
    """The rows of `split` that the TOFU protocol evaluates.

    TOFU's retain split holds every retain author (what a retain model trains on) but only the
    `retain_perturbed` rows have the paraphrases and wrong answers a truth ratio needs; the TOFU
    loader lists their ids in `meta["retain_perturbed_ids"]`, and retain metrics use those rows
    only, as TOFU does. Every other split (and a benchmark without that key) is used whole.
    """
    rows = list(getattr(bench, split, None) or [])
    keep = (getattr(bench, "meta", None) or {}).get("retain_perturbed_ids")
    if split == "retain" and keep is not None:
        wanted = set(keep)
        rows = [row for row in rows if row.id in wanted]
    return rows


def _check_inputs(model, tokenizer, bench, splits, batch_size, max_new_tokens) -> None:
    unknown = [s for s in splits if s not in EVAL_SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must be a non-empty subset of {EVAL_SPLITS}, got {tuple(splits)}")
    if len(set(splits)) != len(splits):
        raise ValueError(f"splits lists a split twice: {tuple(splits)}")
    for name, value in (("batch_size", batch_size), ("max_new_tokens", max_new_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    n_embed = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_embed:
        raise ValueError(
            f"tokenizer has {len(tokenizer)} tokens but the model's embedding has only {n_embed} "
            "rows: this tokenizer does not belong to this model (token ids would index past it)"
        )
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos_token_id: generation would never stop")
    for split in splits:
        items = eval_rows(bench, split)
        if not items:
            raise ValueError(f"benchmark split {split!r} is empty or missing")
        for item in items:
            if not item.perturbed_answer:
                raise ValueError(
                    f"split {split!r}, row {item.id!r}: no perturbed_answer (the truth ratio needs "
                    "wrong answers; load the TOFU *_perturbed files for evaluation)"
                )
            if split in PARAPHRASE_SPLITS and not item.paraphrased_answer:
                raise ValueError(
                    f"split {split!r}, row {item.id!r}: empty paraphrased_answer (the {split} "
                    "truth ratio is measured on the paraphrase)"
                )


def _reference_values(reference: Any, forget_ids: Sequence[str]) -> np.ndarray:
    """The retain model's raw forget truth ratios, from an entry, an id mapping or a sequence.

    With ids (an entry `{"value_by_index": ...}` or a mapping) they must be the forget ids being
    evaluated: a reference from another forget set makes the KS test meaningless.
    """
    if isinstance(reference, Mapping):
        by_id = reference.get("value_by_index", reference)
        if not isinstance(by_id, Mapping):
            raise ValueError("reference_truth_ratios['value_by_index'] must be a mapping id -> TR")
        if set(by_id) != set(forget_ids):
            missing = sorted(set(forget_ids) - set(by_id))[:3]
            extra = sorted(set(by_id) - set(forget_ids))[:3]
            raise ValueError(
                "reference_truth_ratios cover other forget rows than this benchmark "
                f"(missing e.g. {missing}, unexpected e.g. {extra})"
            )
        return np.asarray([by_id[i] for i in forget_ids], dtype=np.float64)
    return np.asarray(list(reference), dtype=np.float64)


@torch.no_grad()
def _score(model, encoded: list, batch_size: int, pad_id: int, device) -> list[_Scored]:
    """Teacher-forced log p and argmax hits of every answer token, batched by length."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    results: list[_Scored | None] = [None] * len(encoded)
    starts = range(0, len(order), batch_size)
    for start in progress.bar(
        starts, len(starts), f"evaluate: score {len(encoded)} answers", "batch"
    ):
        chunk = order[start : start + batch_size]
        batch = collate([encoded[i] for i in chunk], pad_id)
        ids = batch["input_ids"].to(device)  # (B, T)
        logits = model(input_ids=ids, attention_mask=batch["attention_mask"].to(device)).logits
        # Labels are unshifted (collate): the logits at t-1 predict the label at t.
        logits = logits[:, :-1].float()  # (B, T-1, V)
        labels = batch["labels"][:, 1:].to(device)  # (B, T-1)
        logp, mask = token_logp(logits, labels)  # (B, T-1) each
        correct = logits.argmax(dim=-1) == labels  # (B, T-1)
        logp = logp.cpu().double().numpy()
        mask, correct = mask.cpu().numpy() > 0, correct.cpu().numpy()
        for row, i in enumerate(chunk):
            keep = mask[row]
            results[i] = _Scored(logp[row][keep], correct[row][keep])
    return results  # type: ignore[return-value]


@torch.no_grad()
def generate_answers(
    model, tokenizer, questions: list[str], batch_size: int = 32, max_new_tokens: int = 48
) -> list[str]:
    """Greedy answers, decoded without special tokens and stripped, in the order of `questions`."""
    prompts = [prompt_ids(tokenizer, q) for q in questions]
    return generate_from_ids(model, tokenizer, prompts, batch_size, max_new_tokens)


@torch.no_grad()
def generate_from_ids(
    model, tokenizer, prompts: list[list[int]], batch_size: int = 32, max_new_tokens: int = 48
) -> list[str]:
    """Greedy continuations of ready-made prompt ids (left-padded batches, stop at eos)."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    eos = tokenizer.eos_token_id
    out: list[str] = [""] * len(prompts)
    starts = range(0, len(order), batch_size)
    desc = f"evaluate: generate {len(prompts)} answers"
    for start in progress.bar(starts, len(starts), desc, "batch"):
        chunk = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in chunk)
        # Left padding: every prompt ends at the same column, so generated tokens line up.
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)  # (B, W)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)  # (B, W)
        for row, i in enumerate(chunk):
            ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            attn[row, width - len(prompts[i]) :] = 1
        gen = model.generate(
            input_ids=ids.to(device),
            attention_mask=attn.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=pad_id,
        )[:, width:].cpu()  # (B, N) new tokens only
        for row, i in enumerate(chunk):
            new = gen[row].tolist()
            if eos in new:
                new = new[: new.index(eos)]
            out[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return out


@dataclass
class ModelAnswers:
    """Everything the TOFU metrics read from a model, and nothing else (no model, no tokenizer).

    `scored[(split, row, role, k)]`: teacher-forced results, role "answer", "paraphrase" (forget,
    retain) or "wrong" (k-th perturbed answer), plus ("holdout", r, "answer", 0) for Min-K;
    `predictions[split]`: the greedy answers, row by row.
    """

    rows: dict[str, list]  # split -> evaluated rows (QAItem)
    holdout: list
    scored: dict[tuple[str, int, str, int], _Scored]
    predictions: dict[str, list[str]]


def evaluate_model(
    model,
    tokenizer,
    bench,
    *,
    reference_truth_ratios: Mapping[str, float] | Sequence[float] | None = None,
    batch_size: int = 32,
    max_new_tokens: int = 48,
    splits: Sequence[str] = ("forget", "retain", "world_facts"),
) -> dict[str, Any]:
    """Evaluate `model` on `bench` with the TOFU protocol (METHOD.md §3).

    Returns the body of `eval.json` (docs/FORMATS.md)::

        {"schema": 1, "model": name, "metrics": {key: {"agg_value", "value_by_index"}},
         "generations": {id: {"split", "question", "answer", "prediction"}}}

    The model work is `answer_benchmark`, the arithmetic `tofu_metrics` (its docstring lists the
    metric keys). Raises ValueError for an unknown or empty split, a row without perturbed answers
    (or, on forget/retain, without a paraphrase), naming split and row id, and for a tokenizer
    larger than the model's embedding.
    """
    splits = tuple(splits)
    _check_inputs(model, tokenizer, bench, splits, batch_size, max_new_tokens)
    answers = answer_benchmark(model, tokenizer, bench, splits, batch_size, max_new_tokens)
    return {
        "schema": EVAL_SCHEMA,
        "model": str(getattr(model.config, "_name_or_path", "") or type(model).__name__),
        **tofu_metrics(answers, reference_truth_ratios),
    }


def answer_benchmark(
    model, tokenizer, bench, splits: tuple[str, ...], batch_size: int, max_new_tokens: int
) -> ModelAnswers:
    """The model work of an evaluation: score every answer the metrics need, generate greedily."""
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    device = next(model.parameters()).device
    flush_denormals(device)  # a model that forgot produces near-zero probabilities
    was_training = model.training
    model.eval()
    try:
        rows = {split: eval_rows(bench, split) for split in splits}
        progress.phase(
            "evaluate: " + ", ".join(f"{split} {len(rows[split])} questions" for split in splits)
        )
        # Every answer to score, as (split, row index, role, k) -> position in one flat pool.
        encoded, keys = [], []

        def add(key, item, text):
            keys.append(key)
            encoded.append(encode_example(tokenizer, item.question, text, id=item.id))

        for split in splits:
            for r, item in enumerate(rows[split]):
                add((split, r, "answer", 0), item, item.answer)
                if split in PARAPHRASE_SPLITS:
                    add((split, r, "paraphrase", 0), item, item.paraphrased_answer)
                for k, wrong in enumerate(item.perturbed_answer):
                    add((split, r, "wrong", k), item, wrong)
        holdout = list(getattr(bench, "holdout", []) or []) if "forget" in splits else []
        for r, item in enumerate(holdout):
            add(("holdout", r, "answer", 0), item, item.answer)
        scored = _score(model, encoded, batch_size, pad_id, device)

        questions = [item.question for s in splits for item in rows[s]]
        flat = iter(generate_answers(model, tokenizer, questions, batch_size, max_new_tokens))
        predictions = {split: [next(flat) for _ in rows[split]] for split in splits}
    finally:
        model.train(was_training)
    return ModelAnswers(rows, holdout, dict(zip(keys, scored, strict=True)), predictions)


def tofu_metrics(
    answers: ModelAnswers,
    reference_truth_ratios: Mapping[str, float] | Sequence[float] | None = None,
) -> dict[str, Any]:
    """The TOFU metrics of one model's answers: `{"metrics": {...}, "generations": {...}}`.

    Metric keys, per evaluated split S: `S/prob`, `S/rouge`, `S/truth_ratio` (the per-split
    score, forget `min(TR, 1/TR)`, others `max(0, 1 - TR)`), `S/exact_mem`,
    `S/extraction_strength`; plus `forget/truth_ratio_raw` (raw per-item TR, the reference a retain
    model's eval provides for others), `privacy/mink_auc` (forget vs holdout, when the benchmark has
    holdout rows; `value_by_index` holds each row's Min-K score), `model_utility` (harmonic mean of
    prob, ROUGE and truth ratio of every evaluated non-forget split; `value_by_index` names them)
    and `forget_quality` (only with `reference_truth_ratios`: the retain model's raw forget TRs,
    given as its `forget/truth_ratio_raw` entry, an id mapping, or a plain sequence).
    """
    rows, get = answers.rows, answers.scored.__getitem__
    splits = tuple(rows)
    results: dict[str, Any] = {}
    generations: dict[str, dict[str, str]] = {}
    for split in splits:
        items = rows[split]
        ids = [item.id for item in items]
        scored = [get((split, r, "answer", 0)) for r in range(len(items))]
        role = "paraphrase" if split in PARAPHRASE_SPLITS else "answer"
        correct_nll = [get((split, r, role, 0)).mean_nll for r in range(len(items))]
        wrong_nlls = [
            [get((split, r, "wrong", k)).mean_nll for k in range(len(item.perturbed_answer))]
            for r, item in enumerate(items)
        ]
        tr = M.truth_ratio(correct_nll, wrong_nlls)  # (N,)
        preds = answers.predictions[split]
        per_item = {
            "prob": M.answer_prob([a.mean_nll for a in scored]),
            "rouge": M.rouge_l_recall(preds, [item.answer for item in items]),
            "truth_ratio": M.truth_ratio_score(tr, split),
            "exact_mem": [M.exact_memorization(a.correct) for a in scored],
            "extraction_strength": [M.extraction_strength(a.correct) for a in scored],
        }
        if split == "forget":
            per_item["truth_ratio_raw"] = tr
        for name, values in per_item.items():
            results[f"{split}/{name}"] = M.metric_entry(dict(zip(ids, values, strict=True)))
        for item, pred in zip(items, preds, strict=True):
            if item.id in generations:
                raise ValueError(f"row id {item.id!r} appears in two evaluated splits")
            generations[item.id] = {
                "split": split,
                "question": item.question,
                "answer": item.answer,
                "prediction": pred,
            }

    if answers.holdout:
        scores = {
            item.id: M.mink_score(get(("forget", r, "answer", 0)).logp)
            for r, item in enumerate(rows["forget"])
        }
        nonmember = {
            item.id: M.mink_score(get(("holdout", r, "answer", 0)).logp)
            for r, item in enumerate(answers.holdout)
        }
        auc = M.membership_auc(list(scores.values()), list(nonmember.values()))
        results["privacy/mink_auc"] = {"agg_value": auc, "value_by_index": scores | nonmember}

    utility_parts = {
        f"{s}/{m}": results[f"{s}/{m}"]["agg_value"]
        for s in splits
        if s != "forget"
        for m in UTILITY_METRICS
    }
    if utility_parts:
        results["model_utility"] = {
            "agg_value": M.model_utility(list(utility_parts.values())),
            "value_by_index": utility_parts,
        }

    if reference_truth_ratios is not None:
        if "forget" not in splits:
            raise ValueError("reference_truth_ratios given but 'forget' is not among the splits")
        forget_ids = [item.id for item in rows["forget"]]
        reference = _reference_values(reference_truth_ratios, forget_ids)
        fq = M.forget_quality(
            list(results["forget/truth_ratio_raw"]["value_by_index"].values()), reference
        )
        results["forget_quality"] = {"agg_value": fq, "value_by_index": {}}

    return {"metrics": results, "generations": generations}
