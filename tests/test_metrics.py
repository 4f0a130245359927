"""Golden-number tests for atwu_core.evaluation.metrics (METHOD.md §3–4).

Every expected value below is worked out by hand in the comment next to it; scipy, sklearn and
rouge_score are used only as a second opinion on small inputs.
"""

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from atwu_core.evaluation import metrics as M

LN2 = math.log(2)


# ----------------------------------------------------------------------------- answer_prob


def test_answer_prob_scalar_and_vector():
    assert M.answer_prob(0.0) == 1.0
    assert M.answer_prob(LN2) == pytest.approx(0.5)
    np.testing.assert_allclose(M.answer_prob([2 * LN2, 0.0]), [0.25, 1.0])


@pytest.mark.parametrize("bad", [[float("nan")], [-0.1], [], [float("inf")]])
def test_answer_prob_rejects_bad_nll(bad):
    with pytest.raises(ValueError, match="mean_nll"):
        M.answer_prob(bad)


# ----------------------------------------------------------------------------- truth ratio


def test_truth_ratio_one_item_by_hand():
    # P_correct = 1/2; wrong P = 1/4 and 1/16, geometric mean sqrt(1/64) = 1/8; TR = (1/8)/(1/2).
    tr = M.truth_ratio(LN2, [2 * LN2, 4 * LN2])
    assert tr == pytest.approx(0.25)
    assert M.truth_ratio_score(tr, "forget") == pytest.approx(0.25)  # min(1/4, 4)
    assert M.truth_ratio_score(tr, "retain") == pytest.approx(0.75)  # max(0, 1 - 1/4)


def test_truth_ratio_vector_with_ragged_rows():
    # Item 0: P_correct 1/8, wrong 1/2 and 1/2 -> TR = (1/2)/(1/8) = 4.
    # Item 1: P_correct 1/2, three wrong answers all 1/2 -> TR = 1.
    tr = M.truth_ratio([3 * LN2, LN2], [[LN2, LN2], [LN2, LN2, LN2]])
    np.testing.assert_allclose(tr, [4.0, 1.0])
    np.testing.assert_allclose(M.truth_ratio_score(tr, "forget"), [0.25, 1.0])
    np.testing.assert_allclose(M.truth_ratio_score(tr, "world_facts"), [0.0, 0.0])


def test_truth_ratio_stays_finite_for_a_collapsed_model():
    # 800 nats between the paraphrase and the wrong answers would overflow exp(); TR is capped at
    # e^700 so eval.json stays valid JSON, and its scores are still the limits 0 / 0.
    tr = M.truth_ratio([1.0, 801.0], [[801.0], [1.0]])
    np.testing.assert_allclose(np.log(tr), [-700.0, 700.0])
    np.testing.assert_allclose(M.truth_ratio_score(tr, "forget"), [0.0, 0.0], atol=1e-300)
    assert M.metric_entry({"a": tr[1]})["agg_value"] == pytest.approx(math.exp(700))


def test_truth_ratio_score_extremes():
    # TR = 0 (the wrong answers underflowed) is completely one-sided: forget score 0, retain 1.
    assert M.truth_ratio_score(0.0, "forget") == 0.0
    assert M.truth_ratio_score(0.0, "retain") == 1.0


def test_truth_ratio_errors_name_the_argument():
    with pytest.raises(
        ValueError, match="length mismatch: correct_nll has 2 items, wrong_nlls has 1"
    ):
        M.truth_ratio([1.0, 2.0], [[1.0]])
    with pytest.raises(ValueError, match=r"wrong_nlls\[1\] contains NaN"):
        M.truth_ratio([1.0, 2.0], [[1.0], [float("nan")]])
    with pytest.raises(ValueError, match=r"wrong_nlls\[0\] is empty"):
        M.truth_ratio(1.0, [])
    with pytest.raises(ValueError, match="split must be one of"):
        M.truth_ratio_score(0.5, "froget")
    with pytest.raises(ValueError, match="tr must be >= 0"):
        M.truth_ratio_score([0.5, -1.0], "forget")


# ----------------------------------------------------------------------------- forget quality / MU


def test_forget_quality_by_hand_and_against_scipy():
    # Identical samples: KS statistic 0, p-value 1.
    assert M.forget_quality([0.1, 0.5, 0.9], [0.1, 0.5, 0.9]) == pytest.approx(1.0)
    # Completely separated samples of 3 and 3: D = 1; the exact two-sided p-value is the share of
    # the C(6,3) = 20 orderings that are fully separated, 2/20.
    assert M.forget_quality([0.1, 0.2, 0.3], [0.7, 0.8, 0.9]) == pytest.approx(0.1)
    rng = np.random.default_rng(0)
    a, b = rng.random(17), rng.random(11) + 0.2
    assert M.forget_quality(a, b) == pytest.approx(stats.ks_2samp(a, b).pvalue)


def test_forget_quality_rejects_bad_input():
    with pytest.raises(ValueError, match="tr_retain_model is empty"):
        M.forget_quality([0.5], [])
    with pytest.raises(ValueError, match="tr_unlearned contains NaN at index 1"):
        M.forget_quality([0.5, float("nan")], [0.5])


def test_model_utility():
    assert M.model_utility([1.0, 0.5]) == pytest.approx(2 / 3)  # 2 / (1/1 + 1/0.5)
    assert M.model_utility([0.9, 0.0, 0.8]) == 0.0
    vals = [0.3, 0.7, 0.9, 0.2, 0.5, 0.6]
    assert M.model_utility(vals) == pytest.approx(stats.hmean(vals))
    with pytest.raises(ValueError, match=r"values must be >= 0 .* index 1 is -0\.2"):
        M.model_utility([0.5, -0.2])
    with pytest.raises(ValueError, match="values is empty"):
        M.model_utility([])


# ----------------------------------------------------------------------------- ROUGE


def test_rouge_l_recall_by_hand():
    # Reference tokens: the cat was run(ning) fast = 5; prediction: a cat run(s). With the stemmer
    # "runs" and "running" both become "run", so the LCS is "cat run" = 2 -> recall 2/5.
    got = M.rouge_l_recall(
        ["a cat runs", "the cat was running fast", ""], ["the cat was running fast"] * 3
    )
    assert got == pytest.approx([0.4, 1.0, 0.0])


def test_rouge_l_recall_matches_rouge_score():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    preds = ["Paris is the capital", "born in 1962 in Lagos", "no idea"]
    refs = ["The capital is Paris", "She was born in Lagos in 1962", "Jane Doe wrote it"]
    expected = [scorer.score(r, p)["rougeL"].recall for p, r in zip(preds, refs, strict=True)]
    assert M.rouge_l_recall(preds, refs) == pytest.approx(expected)


def test_rouge_l_recall_rejects_bad_input():
    with pytest.raises(ValueError, match="predictions has 1 items, references has 2"):
        M.rouge_l_recall(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="not one string"):
        M.rouge_l_recall("abc", "abc")
    with pytest.raises(ValueError, match=r"references\[1\] must be a string"):
        M.rouge_l_recall(["a", "b"], ["a", None])
    with pytest.raises(ValueError, match="predictions is empty"):
        M.rouge_l_recall([], [])


# ----------------------------------------------------------------------------- memorisation


def test_exact_memorization():
    assert M.exact_memorization([True, False, True, True]) == 0.75
    assert M.exact_memorization(np.array([1, 1, 0, 0, 0])) == 0.4


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([True, True, True, True], 1.0),  # k = 0
        ([False, True, True, True], 0.75),  # must give 1 token: k = 1
        ([True, True, False, True], 0.25),  # the wrong 3rd token forces k = 3
        ([True, True, True, False], 0.0),  # last token wrong: k = T
    ],
)
def test_extraction_strength(flags, expected):
    assert M.extraction_strength(flags) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [[], [0, 2], [[True]]])
def test_flag_metrics_reject_bad_input(bad):
    with pytest.raises(ValueError, match="correct_flags"):
        M.extraction_strength(bad)


def test_mink_score():
    # Lowest 40 % of 5 tokens = 2 tokens: -5 and -4.
    assert M.mink_score([-1.0, -2.0, -3.0, -4.0, -5.0], k=0.4) == pytest.approx(-4.5)
    # 10 % of 5 tokens rounds down to 0; at least one token is kept.
    assert M.mink_score([-1.0, -2.0, -3.0, -4.0, -5.0], k=0.1) == pytest.approx(-5.0)
    assert M.mink_score([-1.0, -3.0], k=1.0) == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="k must be in"):
        M.mink_score([-1.0], k=0.0)
    with pytest.raises(ValueError, match="token_logps must be <= 0"):
        M.mink_score([-1.0, 0.5])


def test_membership_auc():
    assert M.membership_auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    # Member 1 beats nobody, member 3 beats non-member 2 only: 1 of 4 pairs.
    assert M.membership_auc([1.0, 3.0], [2.0, 4.0]) == pytest.approx(0.25)
    assert M.membership_auc([1.0, 2.0], [1.0, 2.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="nonmember_scores is empty"):
        M.membership_auc([1.0], [])


# ----------------------------------------------------------------------------- span alignment

# Example A: positives score 0.9 and 0.2, negatives 0.1 and 0.8.
# Example B: constant score, one positive out of three.
# Example C: no positive token at all.
SCORES = [0.9, 0.1, 0.8, 0.2, 0.5, 0.5, 0.5, 0.3, 0.7]
LABELS = [1, 0, 0, 1, 1, 0, 0, 0, 0]
IDS = ["A", "A", "A", "A", "B", "B", "B", "C", "C"]


def test_span_alignment_by_hand():
    out = M.span_alignment(SCORES, LABELS, IDS)
    pooled = out["pooled"]
    # Pooled AUROC: positive 0.9 beats all 6 negatives, 0.2 beats 0.1, 0.5 beats 0.1 and 0.3 and
    # ties two 0.5s (2 × 1/2): (6 + 1 + 3) / 18.
    assert pooled["auroc"] == pytest.approx(10 / 18)
    # Pooled AP: thresholds 0.9 (P 1, R 1/3), 0.5 (P 2/6, R 2/3), 0.2 (P 3/8, R 1):
    # 1/3·1 + 1/3·1/3 + 1/3·3/8 = 41/72.
    assert pooled["ap"] == pytest.approx(41 / 72)
    # k = 3: the top three are 0.9 (P), 0.8 (N), 0.7 (N).
    assert pooled["precision_at_k"] == pytest.approx(1 / 3)
    # Mass: in-span 0.9 + 0.2 + 0.5 = 1.6 of a total 4.5.
    assert pooled["mass_in_span"] == pytest.approx(1.6 / 4.5)

    per = out["per_example"]
    # A: AUROC 3/4 (0.2 loses to 0.8), AP 1/2·1 + 1/2·2/3 = 5/6, P@2 = 1/2, mass 1.1/2.0.
    # B: all tied: AUROC 1/2, AP 1/3, P@1 = 1/3 (expected over tie orders), mass 0.5/1.5.
    # C: no positive: skipped for AUROC/AP/P@k, mass 0.
    assert per["auroc"]["value_by_index"] == pytest.approx({"A": 0.75, "B": 0.5})
    assert per["auroc"]["agg_value"] == pytest.approx(0.625)
    assert per["ap"]["value_by_index"] == pytest.approx({"A": 5 / 6, "B": 1 / 3})
    assert per["precision_at_k"]["value_by_index"] == pytest.approx({"A": 0.5, "B": 1 / 3})
    assert per["mass_in_span"]["value_by_index"] == pytest.approx({"A": 0.55, "B": 1 / 3, "C": 0.0})
    assert per["mass_in_span"]["agg_value"] == pytest.approx((0.55 + 1 / 3) / 3)
    assert out["counts"] == {
        "tokens": 9,
        "positives": 3,
        "examples": 3,
        "skipped_auroc": 1,
        "skipped_ap": 1,
        "skipped_mass": 0,
    }


def test_span_alignment_agrees_with_sklearn_on_random_data():
    rng = np.random.default_rng(1)
    scores = rng.random(200)
    labels = rng.random(200) < 0.3
    ids = [f"e{i // 20}" for i in range(200)]
    out = M.span_alignment(scores, labels, ids)
    assert out["pooled"]["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["pooled"]["ap"] == pytest.approx(average_precision_score(labels, scores))
    # No ties in continuous random scores: precision@k is the plain top-k precision.
    k = int(labels.sum())
    top = np.argsort(-scores)[:k]
    assert out["pooled"]["precision_at_k"] == pytest.approx(labels[top].mean())


def test_precision_at_k_ignores_token_order_for_ties():
    # A constant weight (plain ascent) carries no information: precision@k is the base rate, 2/5,
    # whichever order the tokens come in.
    for labels in ([1, 1, 0, 0, 0], [0, 0, 0, 1, 1]):
        out = M.span_alignment([1.0] * 5, labels, ["x"] * 5)
        assert out["pooled"]["precision_at_k"] == pytest.approx(0.4)
        assert out["pooled"]["auroc"] == pytest.approx(0.5)


def test_span_alignment_signed_scores_have_no_mass():
    out = M.span_alignment([0.5, -0.3, 1.2, -1.0], [1, 0, 1, 0], ["a", "a", "b", "b"])
    assert out["pooled"]["mass_in_span"] is None
    assert out["per_example"]["mass_in_span"] is None
    assert out["counts"]["skipped_mass"] == 2
    assert out["pooled"]["auroc"] == 1.0


def test_span_alignment_rejects_bad_input():
    with pytest.raises(ValueError, match="scores has 3 items, labels has 2"):
        M.span_alignment([0.1, 0.2, 0.3], [1, 0], ["a", "a", "a"])
    with pytest.raises(ValueError, match="scores has 2 items, example_ids has 1"):
        M.span_alignment([0.1, 0.2], [1, 0], ["a"])
    with pytest.raises(ValueError, match="scores contains NaN at index 0"):
        M.span_alignment([float("nan"), 0.2], [1, 0], ["a", "a"])
    with pytest.raises(ValueError, match="no in-span token"):
        M.span_alignment([0.1, 0.2], [0, 0], ["a", "a"])
    with pytest.raises(ValueError, match="labels must hold booleans"):
        M.span_alignment([0.1, 0.2], [1, 3], ["a", "a"])
    with pytest.raises(ValueError, match="scores is empty"):
        M.span_alignment([], [], [])


# ----------------------------------------------------------------------------- storage


def test_metric_entry():
    entry = M.metric_entry({"a": 1, "b": np.float32(2.0)})
    assert entry == {"agg_value": 1.5, "value_by_index": {"a": 1.0, "b": 2.0}}
    assert type(entry["value_by_index"]["b"]) is float
    with pytest.raises(ValueError, match="value_by_index is empty"):
        M.metric_entry({})
    with pytest.raises(ValueError, match=r"value_by_index\['b'\] must be finite, got nan"):
        M.metric_entry({"a": 1.0, "b": float("nan")})
    with pytest.raises(ValueError, match="must be a mapping"):
        M.metric_entry([1.0, 2.0])


def test_metrics_module_does_not_import_torch():
    code = "import sys, atwu_core.evaluation.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_alignment_if_defined_is_none_for_one_class_and_span_alignment_otherwise():
    from atwu_core.evaluation.metrics import alignment_if_defined

    ids = ["a", "a", "b"]
    assert alignment_if_defined([0.1, 0.2, 0.3], [True, True, True], ids) is None
    assert alignment_if_defined([0.1, 0.2, 0.3], [False, False, False], ids) is None
    assert alignment_if_defined([], [], []) is None
    # hand-computed: the one in-span token (0.3) outranks both others -> AUROC 1, AP 1
    out = alignment_if_defined([0.1, 0.2, 0.3], [False, False, True], ids)
    assert out["pooled"]["auroc"] == 1.0 and out["pooled"]["ap"] == 1.0
    # ranked below both: AUROC 0, AP = precision at its rank 3 = 1/3
    low = alignment_if_defined([0.9, 0.8, 0.1], [False, False, True], ids)
    assert low["pooled"]["auroc"] == 0.0 and low["pooled"]["ap"] == pytest.approx(1 / 3)
