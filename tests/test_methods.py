"""Tests of the method registry and every unlearning method (METHOD.md §1–2).

Golden numbers are computed by hand with `math` on a 2×3 batch: answers with token probabilities
(0.5, 0.2, 0.9) and (0.7, 0.4), the last slot of the second row being padding that holds NaN (it
must never leak into a loss or a gradient).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import random_llama

from atwu_core.forward import Forward, mask_question
from atwu_core.losses import masked_mean, token_logp
from atwu_core.methods import REGISTRY, ForgetBatch, get_method, resolve_hparams
from atwu_core.methods.idk_dpo import IDK_ANSWERS
from atwu_core.methods.seul import seul_mask

NAN = float("nan")
LN = math.log
P = ((0.5, 0.2, 0.9), (0.7, 0.4))
P_REF = ((0.6, 0.3, 0.8), (0.5, 0.5))
G = ((0.9, 0.1, 0.5), (0.5, 0.7))
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def grid(rows, fn=lambda v: v, pad=NAN, grad=False) -> torch.Tensor:
    """(2, 3) tensor from the two answers' values, `pad` in the padding slot."""
    r1, r2 = rows
    return torch.tensor(
        [[fn(v) for v in r1], [*(fn(v) for v in r2), pad]], dtype=torch.float32, requires_grad=grad
    )


def tokens(rows):
    return [v for row in rows for v in row]


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def batch(**fields) -> ForgetBatch:
    fields.setdefault("logp", grid(P, LN, grad=True))
    fields.setdefault("mask", MASK.clone())
    return ForgetBatch(**fields)


def run(name: str, b: ForgetBatch, **hp):
    return get_method(name).fn(b, **resolve_hparams(name, hp))


# --------------------------------------------------------------------------------------------
# Golden values, one per method
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["grad_ascent", "grad_diff"])
def test_gradient_ascent_golden(name):
    out = run(name, batch())
    assert out.loss.item() == pytest.approx(mean(LN(p) for p in tokens(P)), rel=1e-6)
    assert out.token_weights.tolist() == MASK.tolist()


@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_npo_golden(beta):
    out = run("npo", batch(ref_logp=grid(P_REF, LN)), beta=beta)
    ratios = [LN(0.5 * 0.2 * 0.9) - LN(0.6 * 0.3 * 0.8), LN(0.7 * 0.4) - LN(0.5 * 0.5)]
    want = (2 / beta) * mean(math.log1p(math.exp(beta * r)) for r in ratios)
    assert out.loss.item() == pytest.approx(want, rel=1e-5)
    assert out.parts["npo/log_ratio"] == pytest.approx(mean(ratios), rel=1e-5)


@pytest.mark.parametrize(("beta", "delta"), [(4.5, 0.0), (2.0, 0.5)])
def test_simnpo_golden(beta, delta):
    out = run("simnpo", batch(), beta=beta, delta=delta)
    nlls = [-(LN(0.5) + LN(0.2) + LN(0.9)) / 3, -(LN(0.7) + LN(0.4)) / 2]
    want = -(2 / beta) * mean(log_sigmoid(beta * (n - delta)) for n in nlls)
    assert out.loss.item() == pytest.approx(want, rel=1e-5)


def idk_batch(alt, alt_ref) -> ForgetBatch:
    return batch(
        ref_logp=grid(P_REF, LN),
        alt_logp=torch.tensor([[LN(alt[0]), LN(alt[1])], [LN(alt[2]), NAN]], requires_grad=True),
        alt_mask=torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
        alt_ref_logp=torch.tensor([[LN(alt_ref[0]), LN(alt_ref[1])], [LN(alt_ref[2]), NAN]]),
    )


def test_idk_dpo_golden():
    beta = 0.1
    out = run("idk_dpo", idk_batch((0.3, 0.6, 0.8), (0.2, 0.5, 0.9)))
    win = [LN(0.3 * 0.6) - LN(0.2 * 0.5), LN(0.8) - LN(0.9)]
    lose = [LN(0.5 * 0.2 * 0.9) - LN(0.6 * 0.3 * 0.8), LN(0.7 * 0.4) - LN(0.5 * 0.5)]
    want = -(2 / beta) * mean(log_sigmoid(beta * (w - lo)) for w, lo in zip(win, lose, strict=True))
    assert out.loss.item() == pytest.approx(want, rel=1e-5)


def test_idk_dpo_without_preferred_term_is_npo():
    # r(idk) = 0 when the model and the reference agree on the idk answer: DPO reduces to NPO.
    same = (0.3, 0.6, 0.8)
    dpo = run("idk_dpo", idk_batch(same, same), beta=0.7).loss
    npo = run("npo", batch(ref_logp=grid(P_REF, LN)), beta=0.7).loss
    assert dpo.item() == pytest.approx(npo.item(), rel=1e-5)


def test_idk_answers_are_varied_refusals():
    assert len(IDK_ANSWERS) >= 8
    assert len(set(IDK_ANSWERS)) == len(IDK_ANSWERS)
    assert all(isinstance(a, str) and a.strip() for a in IDK_ANSWERS)


def test_rmu_golden():
    c = 3.0
    # u as the docstring specifies it: uniform [0, 1)^D from a seeded generator, normalised.
    raw = torch.rand(2, generator=torch.Generator().manual_seed(0)).tolist()
    u = [x / math.hypot(*raw) for x in raw]
    h = [[1.0, 2.0], [0.0, 0.0], [c * u[0], c * u[1]], [-1.0, 0.5], [2.0, -2.0]]
    hidden = torch.tensor([h[:3], [*h[3:], [NAN, NAN]]], requires_grad=True)  # (2, 3, 2)
    out = run("rmu", batch(hidden=hidden), steering_coeff=c)
    want = mean((x - c * u[0]) ** 2 + (y - c * u[1]) ** 2 for x, y in h)
    assert out.loss.item() == pytest.approx(want, rel=1e-5)
    out.loss.backward()
    assert hidden.grad[0, 2].abs().max().item() < 1e-6  # already on target
    assert hidden.grad[1, 2].tolist() == [0.0, 0.0]  # padding
    # a zero hidden state is exactly c away from the target: loss c²
    zero = torch.zeros(2, 3, 2)
    assert run("rmu", batch(hidden=zero), steering_coeff=c).loss.item() == pytest.approx(c**2)


def test_rmu_direction_is_a_fixed_unit_vector_per_seed():
    from atwu_core.methods.rmu import rmu_direction

    a, b, c = rmu_direction(64, 0), rmu_direction(64, 0), rmu_direction(64, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.norm().item() == pytest.approx(1.0, rel=1e-6)


def test_rmu_retain_loss_golden_and_validation():
    from atwu_core.methods.rmu import rmu_retain_loss

    h = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]], requires_grad=True)  # (1, 2, 2)
    ref = torch.tensor([[[0.0, 0.0], [NAN, NAN]]])
    loss = rmu_retain_loss(h, ref, torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx(1.0 + 4.0)
    loss.backward()
    assert h.grad.tolist() == [[[2.0, 4.0], [0.0, 0.0]]]
    with pytest.raises(ValueError, match="rmu_retain_loss"):
        rmu_retain_loss(h, ref[:, :1], torch.tensor([[1.0, 0.0]]))


def softmax(xs):
    z = sum(math.exp(x) for x in xs)
    return [math.exp(x) / z for x in xs]


def test_undial_golden():
    beta = 2.0
    z = [[[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]], [[0.0, 2.0, 1.0], [NAN, NAN, NAN]]]  # (2, 2, 3)
    z_ref = [[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[1.0, 1.0, 1.0], [NAN, NAN, NAN]]]
    labels = [[0, 1], [2, -100]]
    logits = torch.tensor(z, requires_grad=True)
    b = ForgetBatch(
        logp=torch.zeros(2, 2, requires_grad=True),
        mask=torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
        labels=torch.tensor(labels),
        logits=logits,
        ref_logits=torch.tensor(z_ref),
    )
    out = run("undial", b, beta=beta)
    ces = []
    for bi, ti in [(0, 0), (0, 1), (1, 0)]:
        y = labels[bi][ti]
        q = softmax([v - (beta if k == y else 0.0) for k, v in enumerate(z_ref[bi][ti])])
        p = softmax(z[bi][ti])
        ces.append(-sum(qk * math.log(pk) for qk, pk in zip(q, p, strict=True)))
    assert out.loss.item() == pytest.approx(mean(ces), rel=1e-5)
    out.loss.backward()
    assert logits.grad[1, 1].tolist() == [0.0, 0.0, 0.0]
    # the gradient of CE(q, softmax(z)) w.r.t. z is (p - q)/N: check one token
    q = softmax([2.0 - beta, 0.0, 0.0])
    p = softmax([1.0, 0.0, -1.0])
    assert logits.grad[0, 0].tolist() == pytest.approx(
        [(pk - qk) / 3 for pk, qk in zip(p, q, strict=True)], rel=1e-5
    )


def test_wga_golden():
    out = run("wga", batch(), beta=2.0)
    assert out.loss.item() == pytest.approx(mean(p**2 * LN(p) for p in tokens(P)), rel=1e-6)
    assert out.token_weights[0].tolist() == pytest.approx([0.25, 0.04, 0.81], rel=1e-6)
    assert out.token_weights[1, 2].item() == 0.0


def test_satimp_golden():
    out = run("satimp", batch())  # β1 = 5, β2 = 1
    assert out.loss.item() == pytest.approx(
        mean(p**5 * (1 - p) * LN(p) for p in tokens(P)), rel=1e-5
    )
    assert out.token_weights[0, 0].item() == pytest.approx(0.5**5 * 0.5, rel=1e-6)


def test_tnpo_golden():
    out = run("tnpo", batch(ref_logp=grid(P_REF, LN)))  # β = 4
    pairs = zip(tokens(P), tokens(P_REF), strict=True)
    want = mean(2 * p**4 / (p**4 + q**4) * LN(p) for p, q in pairs)
    assert out.loss.item() == pytest.approx(want, rel=1e-5)
    assert out.token_weights[0, 0].item() == pytest.approx(2 * 0.5**4 / (0.5**4 + 0.6**4))


def test_seul_mask_threshold_gap_fill_and_fallback():
    # Row 1: mean -17/15, population std sqrt(1.8689) ≈ 1.367: only the two -3.0 are below
    # mean - 1·std ≈ -2.43; the single token between them is a gap of 1, filled when max_gap >= 1.
    # Row 2: with k = 2 nothing is below the threshold, so the lowest log-prob is taken alone.
    # Row 3 has no answer token and selects nothing.
    logp = torch.tensor(
        [
            [-0.1, -0.1, -3.0, -0.1, -3.0, -0.1, NAN],
            [-1.0, -1.2, -1.1, NAN, NAN, NAN, NAN],
            [NAN] * 7,
        ]
    )
    mask = torch.tensor([[1.0] * 6 + [0.0], [1.0] * 3 + [0.0] * 4, [0.0] * 7])
    filled = seul_mask(logp, mask, k=1.0, max_gap=1)
    assert filled[0].tolist() == [0, 0, 1, 1, 1, 0, 0]
    assert filled[2].tolist() == [0] * 7
    assert seul_mask(logp, mask, k=1.0, max_gap=0)[0].tolist() == [0, 0, 1, 0, 1, 0, 0]
    assert seul_mask(logp, mask, k=2.0, max_gap=1)[1].tolist() == [0, 1, 0, 0, 0, 0, 0]
    assert seul_mask(logp, mask, k=2.0, max_gap=1)[0].tolist() == [0, 0, 1, 0, 0, 0, 0]


def test_seul_gap_counts_answer_tokens_not_prompt():
    # Gaps are measured along the answer: masked positions in between do not count.
    logp = torch.tensor([[-5.0, NAN, -0.1, -0.1, -5.0, -0.1, -0.1, -0.1]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    assert seul_mask(logp, mask, k=1.0, max_gap=2)[0].tolist() == [1, 0, 1, 1, 1, 0, 0, 0]
    assert seul_mask(logp, mask, k=1.0, max_gap=1)[0].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]


def test_seul_golden_loss():
    # Row 1: mean(ln .5, ln .2, ln .9) - std lies between ln .2 and ln .5: only 0.2 is selected.
    # Row 2: two tokens are each exactly one std from the mean (not strictly below): nothing,
    # so the fallback picks ln 0.4.
    out = run("seul", batch())
    assert out.token_weights.tolist() == [[0, 1, 0], [0, 1, 0]]
    assert out.loss.item() == pytest.approx((LN(0.2) + LN(0.4)) / 2, rel=1e-6)
    assert out.parts["seul/frac_selected"] == pytest.approx(2 / 5)


def span_batch(span) -> ForgetBatch:
    return batch(span_mask=torch.tensor(span, dtype=torch.float32))


def test_oracle_mask_golden():
    span = [[0, 1, 1], [1, 0, 1]]  # the span label on padding must be ignored
    out = run("oracle_mask", span_batch(span))
    assert out.loss.item() == pytest.approx(mean([LN(0.2), LN(0.9), LN(0.7)]), rel=1e-6)
    assert out.token_weights.tolist() == [[0, 1, 1], [1, 0, 0]]
    sat = run("oracle_mask", span_batch(span), saturate=True, beta=2.0)
    assert sat.loss.item() == pytest.approx(mean(p**2 * LN(p) for p in (0.2, 0.9, 0.7)), rel=1e-6)


def test_oracle_mask_without_spans_is_zero():
    b = span_batch([[0, 0, 0], [0, 0, 1]])
    out = run("oracle_mask", b)
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert b.logp.grad is None or float(b.logp.grad.abs().sum()) == 0.0


def scorer_batch(g=G, **extra) -> ForgetBatch:
    return batch(scorer_weights=grid(g, pad=0.5), **extra)


@pytest.mark.parametrize(
    ("saturation", "factor"),
    [
        ("scaled", lambda p, g, b: p ** (b * g)),
        ("plain", lambda p, g, b: p**b),
        ("none", lambda p, g, b: 1.0),
    ],
)
def test_atwu_golden(saturation, factor):
    beta = 5.0
    out = run("atwu", scorer_batch(), saturation=saturation)
    pairs = list(zip(tokens(P), tokens(G), strict=True))
    # L_f = -mean_t g ℓ sg[p^(βg)] = mean_t g·factor·ln p
    want = mean(g * factor(p, g, beta) * LN(p) for p, g in pairs)
    assert out.loss.item() == pytest.approx(want, rel=1e-5)
    assert out.token_weights[0].tolist() == pytest.approx([0.9, 0.1, 0.5])
    assert out.token_weights[1, 2].item() == 0.0


def test_atwu_golden_number_written_out():
    # One token by hand: g = 0.5, p = 0.5, β = 5 -> contribution -(0.5·ℓ·p^2.5) with ℓ = ln 2.
    b = batch(
        logp=torch.tensor([[LN(0.5)]], requires_grad=True),
        mask=torch.ones(1, 1),
        scorer_weights=torch.full((1, 1), 0.5),
    )
    out = run("atwu", b)
    assert out.loss.item() == pytest.approx(-(0.5 * math.log(2) * 0.5**2.5), rel=1e-6)
    out.loss.backward()
    assert b.logp.grad.item() == pytest.approx(0.5 * 0.5**2.5, rel=1e-6)  # saturation is sg[·]


def test_atwu_invalid_saturation_lists_choices():
    with pytest.raises(ValueError, match=r"saturation='bogus'.*scaled.*plain.*none"):
        run("atwu", scorer_batch(), saturation="bogus")


HALF = ((0.5, 0.5, 0.5), (0.5, 0.5))


@pytest.mark.parametrize(
    ("plugin", "base", "needs_ref"),
    [("atwu_npo", "npo", True), ("atwu_simnpo", "simnpo", False), ("atwu_wga", "wga", False)],
)
@pytest.mark.parametrize("beta", [0.3, 2.0])
def test_plugins_with_half_weights_equal_their_base_exactly(plugin, base, needs_ref, beta):
    extra = {"ref_logp": grid(P_REF, LN)} if needs_ref else {}
    got = run(plugin, scorer_batch(HALF, **extra), beta=beta)
    want = run(base, batch(**extra), beta=beta)
    assert torch.equal(got.loss, want.loss)
    assert torch.equal(got.token_weights, torch.where(MASK > 0, 1.0, 0.0))


def test_atwu_npo_golden():
    """w = 2g renormalised per sequence to sum to its token count, then NPO on Σ w·log-ratio."""
    beta = 0.5
    out = run("atwu_npo", scorer_batch(ref_logp=grid(P_REF, LN)), beta=beta)
    # Row 1: 2g = (1.8, 0.2, 1.0) sums to 3 = its length, unchanged. Row 2: 2g = (1.0, 1.4) sums
    # to 2.4, rescaled by 2 / 2.4 to (0.8333, 1.1667).
    w = ((1.8, 0.2, 1.0), (1.0 * 2 / 2.4, 1.4 * 2 / 2.4))
    rows = zip(P, P_REF, w, strict=True)
    ratios = [sum(wt * (LN(p) - LN(q)) for p, q, wt in zip(*row, strict=True)) for row in rows]
    want = (2 / beta) * mean(math.log1p(math.exp(beta * r)) for r in ratios)
    assert out.loss.item() == pytest.approx(want, rel=1e-5)
    assert out.token_weights[0].tolist() == pytest.approx([1.8, 0.2, 1.0])
    assert out.token_weights[1, :2].tolist() == pytest.approx([2 / 2.4, 2.8 / 2.4])
    assert out.token_weights[1, 2].item() == 0.0  # padding


def test_atwu_npo_all_zero_weights_stay_zero():
    g = ((0.0, 0.0, 0.0), (0.5, 0.5))
    out = run("atwu_npo", scorer_batch(g, ref_logp=grid(P_REF, LN)), beta=0.5)
    assert out.token_weights[0].tolist() == [0.0, 0.0, 0.0]
    assert math.isfinite(out.loss.item())


def test_atwu_simnpo_golden():
    beta, delta = 4.5, 0.2
    out = run("atwu_simnpo", scorer_batch(), beta=beta, delta=delta)
    nlls = [
        -sum(2 * g * LN(p) for p, g in zip(pr, gr, strict=True)) / len(pr)
        for pr, gr in zip(P, G, strict=True)
    ]
    want = -(2 / beta) * mean(log_sigmoid(beta * (n - delta)) for n in nlls)
    assert out.loss.item() == pytest.approx(want, rel=1e-5)


def test_atwu_wga_golden():
    """The weight enters only the exponent: -mean_t ℓ_t·sg[p_t^(β·2g_t)], no extra factor w."""
    beta = 1.5
    out = run("atwu_wga", scorer_batch(), beta=beta)
    pairs = zip(tokens(P), tokens(G), strict=True)
    want = mean(p ** (beta * 2 * g) * LN(p) for p, g in pairs)
    assert out.loss.item() == pytest.approx(want, rel=1e-5)
    assert out.token_weights[0].tolist() == pytest.approx([1.8, 0.2, 1.0])


def test_atwu_frozen_is_atwu_at_half_and_ignores_any_scorer():
    beta = 5.0
    out = run("atwu_frozen", batch(), beta=beta)
    want = mean(0.5 * p ** (beta * 0.5) * LN(p) for p in tokens(P))
    assert out.loss.item() == pytest.approx(want, rel=1e-6)
    assert torch.equal(out.loss, run("atwu", scorer_batch(HALF), beta=beta).loss)
    assert out.token_weights.tolist() == [[0.5, 0.5, 0.5], [0.5, 0.5, 0.0]]
    assert get_method("atwu_frozen").needs == frozenset()  # no scorer, no reference model


def test_oracle_saturated_golden():
    """g = span mask; averaged over ALL answer tokens (5), unlike oracle_mask (over span tokens)."""
    span = [[0, 1, 1], [1, 0, 1]]  # the span label on padding must be ignored
    beta = 2.0
    out = run("oracle_saturated", span_batch(span), beta=beta)
    want = sum(p**beta * LN(p) for p in (0.2, 0.9, 0.7)) / 5
    assert out.loss.item() == pytest.approx(want, rel=1e-6)
    assert out.token_weights.tolist() == [[0, 1, 1], [1, 0, 0]]
    g = ((0.0, 1.0, 1.0), (1.0, 0.0))
    same = run("atwu", scorer_batch(g), beta=beta)
    assert out.loss.item() == pytest.approx(same.loss.item(), rel=1e-6)


# --------------------------------------------------------------------------------------------
# Hyperparameters and batch validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hp", "match"),
    [
        ("npo", {"beta": 0.0}, r"beta=0.0 must be > 0"),
        ("simnpo", {"beta": -1.0}, r"beta=-1.0 must be > 0"),
        ("idk_dpo", {"beta": 0.0}, r"must be > 0"),
        ("seul", {"max_gap": -1}, r"max_gap=-1 must be >= 0"),
        ("rmu", {"steering_coeff": 0.0}, r"steering_coeff"),
        ("wga", {"beta": -0.5}, r"beta=-0.5"),
        ("satimp", {"beta2": -1.0}, r"beta2"),
    ],
)
def test_out_of_range_hparams_raise(name, hp, match):
    spec = get_method(name)
    b, _ = synthetic_batch(spec.needs)
    with pytest.raises(ValueError, match=match):
        spec.fn(b, **resolve_hparams(name, hp))


def test_resolve_hparams_casts_strings():
    assert resolve_hparams("atwu", {"beta": "2.5", "saturation": "plain"}) == {
        "beta": 2.5,
        "saturation": "plain",
    }
    assert resolve_hparams("oracle_mask", {"saturate": "true"})["saturate"] is True
    assert resolve_hparams("seul", {"max_gap": "3"})["max_gap"] == 3
    with pytest.raises(ValueError, match="not a valid float"):
        resolve_hparams("npo", {"beta": "lots"})


def test_missing_need_names_the_field():
    with pytest.raises(ValueError, match=r"'npo'.*ref_logp is None"):
        run("npo", batch())
    with pytest.raises(ValueError, match=r"'atwu'.*scorer_weights is None"):
        run("atwu", batch())


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"mask": torch.ones(2, 4)}, r"mask has shape \(2, 4\)"),
        ({"mask": torch.full((2, 3), 0.5)}, r"only 0 and 1"),
        ({"mask": MASK > 0}, r"mask must be a float tensor of 0/1, got dtype torch.bool"),
        ({"logp": torch.zeros(6)}, r"logp must be \(B, T\)"),
        ({"scorer_weights": torch.full((2, 3), 1.5)}, r"scorer_weights must lie in \[0, 1\]"),
        ({"scorer_weights": torch.full((3, 3), 0.5)}, r"scorer_weights has shape \(3, 3\)"),
    ],
)
def test_batch_validation(fields, match):
    fields.setdefault("scorer_weights", torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match=match):
        run("atwu", batch(**fields))


def test_scorer_weights_off_the_answer_are_not_checked():
    g = grid(G, pad=NAN)  # NaN on padding: never read, so accepted
    assert math.isfinite(run("atwu", batch(scorer_weights=g)).loss.item())


def test_alt_fields_must_agree():
    b = idk_batch((0.3, 0.6, 0.8), (0.2, 0.5, 0.9))
    b.alt_mask = torch.ones(2, 5)
    with pytest.raises(ValueError, match=r"alt_logp/alt_mask/alt_ref_logp"):
        run("idk_dpo", b)


# --------------------------------------------------------------------------------------------
# Entropy-guided token weighting (etw) and TokenUnlearn, on hand-made logits
# --------------------------------------------------------------------------------------------


def two_way_logits(probs) -> torch.Tensor:
    """(1, T, 2) logits whose softmax puts `p` on class 0 at each position (label 0)."""
    return torch.tensor([[[LN(p / (1 - p)), 0.0] for p in probs]], requires_grad=True)


def binary_entropy_nats(p: float) -> float:
    return -(p * LN(p) + (1 - p) * LN(1 - p))


def two_way_batch(probs, **extra) -> ForgetBatch:
    logits = two_way_logits(probs)
    labels = torch.zeros(1, len(probs), dtype=torch.long)
    logp, mask = token_logp(logits, labels)
    return ForgetBatch(logp=logp, mask=mask, labels=labels, logits=logits, **extra)


@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_etw_golden(gamma):
    probs = (0.5, 0.75, 0.9)  # H = ln 2 = 0.6931, 0.5623, 0.3251 nats (Σ 1.5805)
    out = run("etw", two_way_batch(probs), gamma=gamma)
    h = [binary_entropy_nats(p) ** gamma for p in probs]
    w = [3 * x / sum(h) for x in h]  # mean 1 over the 3 answer tokens
    assert out.token_weights[0].tolist() == pytest.approx(w, rel=1e-5)
    assert out.loss.item() == pytest.approx(
        mean(wt * LN(p) for wt, p in zip(w, probs, strict=True)), rel=1e-5
    )
    assert out.parts["etw/entropy"] == pytest.approx(mean(map(binary_entropy_nats, probs)))
    if gamma == 1.0:  # the numbers by hand
        assert w == pytest.approx([1.3156, 1.0673, 0.6170], abs=1e-4)


def test_etw_weights_follow_entropy_not_padding():
    """The 2×3 grid's padding (NaN logits) changes nothing; a certain token gets weight ~0."""
    b = two_way_batch((0.5, 0.9999999, 0.5))
    out = run("etw", b)
    assert out.token_weights[0, 1].item() < 1e-4
    assert out.token_weights[0].sum().item() == pytest.approx(3.0, rel=1e-5)
    logits = torch.cat([b.logits.detach(), torch.full((1, 1, 2), NAN)], dim=1)
    padded = ForgetBatch(
        logp=torch.cat([b.logp.detach(), torch.tensor([[NAN]])], dim=1).requires_grad_(),
        mask=torch.tensor([[1.0, 1.0, 1.0, 0.0]]),
        logits=logits,
    )
    out2 = run("etw", padded)
    assert out2.token_weights[0, :3].tolist() == pytest.approx(out.token_weights[0].tolist())
    assert out2.token_weights[0, 3].item() == 0.0


TU_PROBS = (0.5, 0.9, 0.75, 0.99)
TU_DELTA = (2.0, 0.0, 1.0, 0.5)  # log p(y|x) - log p(y|x̃): min-max → (1, 0, 0.5, 0.25)


def tu_batch() -> ForgetBatch:
    b = two_way_batch(TU_PROBS)
    b.ctx_masked_logp = b.logp.detach() - torch.tensor([TU_DELTA])
    return b


def tu_scores(lam):
    h = [binary_entropy_nats(p) for p in TU_PROBS]
    nh = [(x - min(h)) / (max(h) - min(h)) for x in h]  # (1, 0.4224, 0.7948, 0)
    nd = [(d - min(TU_DELTA)) / (max(TU_DELTA) - min(TU_DELTA)) for d in TU_DELTA]
    return [lam * a + (1 - lam) * c for a, c in zip(nd, nh, strict=True)]


@pytest.mark.parametrize("lam", [0.5, 0.0, 1.0])
def test_token_unlearn_soft_golden(lam):
    out = run("token_unlearn", tu_batch(), lam=lam, mode="soft")
    s = tu_scores(lam)
    w = [4 * x / sum(s) for x in s]
    assert out.token_weights[0].tolist() == pytest.approx(w, rel=1e-5, abs=1e-6)
    assert out.loss.item() == pytest.approx(
        mean(a * LN(p) for a, p in zip(w, TU_PROBS, strict=True)), rel=1e-5
    )
    assert out.parts["token_unlearn/delta"] == pytest.approx(mean(TU_DELTA), rel=1e-5)
    if lam == 0.5:  # by hand: s = (1, 0.2112, 0.6474, 0.125), Σ = 1.9836
        assert w == pytest.approx([2.0165, 0.4259, 1.3055, 0.2521], abs=1e-3)


@pytest.mark.parametrize(
    ("lam", "r", "want"),
    [
        (0.5, 0.5, [1, 0, 1, 0]),  # s = (1, 0.21, 0.65, 0.125): top ⌈2⌉
        (0.5, 0.25, [1, 0, 0, 0]),
        (0.0, 0.75, [1, 1, 1, 0]),  # entropy only: the certain last token drops
        (1.0, 0.75, [1, 0, 1, 1]),  # Δ only: the context-free second token drops
        (0.5, 0.3, [1, 0, 1, 0]),  # ⌈1.2⌉ = 2
    ],
)
def test_token_unlearn_top_r_golden(lam, r, want):
    out = run("token_unlearn", tu_batch(), lam=lam, mode="top_r", r=r)
    assert out.token_weights[0].tolist() == want
    kept = [LN(p) for p, k in zip(TU_PROBS, want, strict=True) if k]
    assert out.loss.item() == pytest.approx(sum(kept) / 4, rel=1e-5)


def test_token_unlearn_top_r_counts_answer_tokens_and_breaks_ties_early():
    """⌈r·n⌉ per sequence over its own answer (n = 10 → 3, not 4), ties to the earlier token."""
    b = ForgetBatch(
        logp=torch.full((2, 10), -1.0, requires_grad=True),
        mask=torch.tensor([[1.0] * 10, [0.0] * 2 + [1.0] * 5 + [0.0] * 3]),
        logits=torch.zeros(2, 10, 3),  # constant entropy: the score is Δ alone
        ctx_masked_logp=torch.full((2, 10), -1.0),
    )
    out = run("token_unlearn", b, mode="top_r", r=0.3)
    assert out.token_weights.sum(dim=-1).tolist() == [3.0, 2.0]  # all scores tie
    assert out.token_weights[0, :3].tolist() == [1.0] * 3
    assert out.token_weights[1].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
    soft = run("token_unlearn", b, mode="soft")  # constant scores: uniform, like plain ascent
    assert soft.token_weights.tolist() == b.mask.tolist()


def test_mask_question_keeps_answer_and_last_prompt_token():
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 1, 1]])
    labels = torch.tensor([[-100, -100, -100, 8, 9, 10], [-100, -100, 13, 14, -100, -100]])
    masked = mask_question({"input_ids": ids, "labels": labels}, pad_id=1)
    assert masked.tolist() == [[1, 1, 7, 8, 9, 10], [1, 12, 13, 14, 1, 1]]
    no_answer = torch.full_like(labels, -100)
    assert torch.equal(mask_question({"input_ids": ids, "labels": no_answer}, pad_id=1), ids)


def test_forward_fills_ctx_masked_logp_with_the_masked_prompt():
    """The loop's need: answer log-probs with the question masked, current model, detached."""
    model = random_llama(40, max_positions=32).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 0, 0]])
    attn = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])
    labels = torch.tensor([[-100] * 4 + [9, 10, 11], [-100] * 3 + [15, 16, -100, -100]])
    batch_in = {
        "input_ids": ids,
        "attention_mask": attn,
        "labels": labels,
        "span_labels": torch.zeros(2, 7),
    }
    spec = get_method("token_unlearn")
    fwd = Forward(spec, resolve_hparams("token_unlearn", {}), model, None, None, pad_id=0)
    fb, _ = fwd(batch_in)
    assert fb.ctx_masked_logp is not None and not fb.ctx_masked_logp.requires_grad
    masked_ids = torch.tensor([[0, 0, 0, 8, 9, 10, 11], [0, 0, 14, 15, 16, 0, 0]])
    with torch.no_grad():
        logits = model(input_ids=masked_ids, attention_mask=attn).logits[:, :-1]
    want, mask = token_logp(logits, labels[:, 1:])
    keep = mask > 0
    assert torch.allclose(fb.ctx_masked_logp[keep], want[keep], atol=1e-5)
    assert not torch.allclose(fb.ctx_masked_logp[keep], fb.logp.detach()[keep], atol=1e-3)
    out = spec.fn(fb, **resolve_hparams("token_unlearn", {}))
    assert torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="pad_id"):
        Forward(spec, {}, model, None, None)(batch_in)


def test_registry_has_one_method_per_file():
    """Every file of atwu_core/methods/ but base.py registers the method it is named after."""
    from pathlib import Path

    import atwu_core.methods as package

    files = {p.stem for p in Path(package.__file__).parent.glob("*.py")} - {"__init__", "base"}
    assert files == set(REGISTRY)
    for name in ("atwu", "atwu_frozen", "oracle_saturated", "wga", "satimp", "seul"):
        assert name in REGISTRY
    assert get_method("grad_ascent").retain == "none"
    assert get_method("rmu").retain == "hidden" and get_method("rmu").needs_reference
    assert get_method("npo").needs_reference and not get_method("grad_diff").needs_reference
    assert not get_method("atwu").needs_reference and get_method("atwu_npo").needs_reference
    with pytest.raises(ValueError, match="available: atwu, atwu_frozen, atwu_npo"):
        get_method("nope")


# --------------------------------------------------------------------------------------------
# Every registered method, on a synthetic batch with prompt, padding and NaN garbage
# --------------------------------------------------------------------------------------------

B, T, V, D, T_ALT = 3, 5, 7, 6, 4
SYN_MASK = torch.tensor(
    [[0.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0]]
)


def synthetic_batch(needs) -> tuple[ForgetBatch, torch.Tensor]:
    """A batch holding `needs`, NaN wherever the mask is 0, and the `logits` leaf behind `logp`."""
    gen = torch.Generator().manual_seed(0)
    keep = SYN_MASK > 0

    def garbage(x: torch.Tensor) -> torch.Tensor:
        k = keep.reshape(*keep.shape, *([1] * (x.dim() - 2)))
        return torch.where(k, x, torch.full_like(x, NAN))

    logits = torch.randn(B, T, V, generator=gen).requires_grad_()
    labels = torch.where(keep, torch.randint(0, V, (B, T), generator=gen), -100)
    logp = garbage(token_logp(logits, labels)[0])  # (B, T), in the graph of `logits`
    fields = {"logp": logp, "mask": SYN_MASK.clone(), "labels": labels, "logits": None}
    if "ref_logp" in needs:
        fields["ref_logp"] = garbage(logp.detach() + 0.3 * torch.randn(B, T, generator=gen))
    if "logits" in needs:
        fields["logits"] = logits
    if "ref_logits" in needs:
        fields["ref_logits"] = garbage(logits.detach() + torch.randn(B, T, V, generator=gen))
    if "hidden" in needs:
        fields["hidden"] = garbage(torch.randn(B, T, D, generator=gen)).requires_grad_()
    if "ref_hidden" in needs:
        fields["ref_hidden"] = garbage(torch.randn(B, T, D, generator=gen))
    if "scorer" in needs:
        fields["scorer_weights"] = torch.rand(B, T, generator=gen)
    if "span_mask" in needs:
        fields["span_mask"] = torch.tensor(
            [[1.0, 0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0, 1.0]]
        )
    if "ctx_masked_logp" in needs:
        fields["ctx_masked_logp"] = garbage(logp.detach() - torch.rand(B, T, generator=gen))
    if "alt" in needs:
        alt_mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
        alt_keep = alt_mask > 0
        alt_logp = -torch.rand(B, T_ALT, generator=gen) * 3
        fields["alt_logp"] = torch.where(alt_keep, alt_logp, NAN).requires_grad_()
        fields["alt_mask"] = alt_mask
        fields["alt_ref_logp"] = torch.where(alt_keep, -torch.rand(B, T_ALT, generator=gen), NAN)
    return ForgetBatch(**fields), logits


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_contract(name):
    spec = REGISTRY[name]
    b, logits_leaf = synthetic_batch(spec.needs)
    out = spec.fn(b, **resolve_hparams(name, {}))

    assert out.loss.dim() == 0 and torch.isfinite(out.loss), f"{name}: loss {out.loss}"
    assert out.token_weights.shape == (B, T)
    assert not out.token_weights.requires_grad
    assert torch.isfinite(out.token_weights).all()
    assert all(math.isfinite(v) for v in out.parts.values())

    out.loss.backward()
    per_pos = torch.zeros(B, T)
    for leaf in (logits_leaf, b.hidden):
        if leaf is not None and leaf.grad is not None:
            assert torch.isfinite(leaf.grad).all(), f"{name}: NaN gradient"
            per_pos += leaf.grad.abs().sum(dim=-1)
    outside = per_pos[SYN_MASK == 0]
    assert torch.equal(outside, torch.zeros_like(outside)), f"{name}: gradient outside the mask"
    assert per_pos[SYN_MASK > 0].sum() > 0, f"{name}: no gradient inside the mask"
    if b.alt_logp is not None:
        assert torch.equal(b.alt_logp.grad[b.alt_mask == 0], torch.zeros(3))
        assert b.alt_logp.grad[b.alt_mask > 0].abs().sum() > 0


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_unknown_hparam_lists_the_allowed_names(name):
    spec = REGISTRY[name]
    with pytest.raises(ValueError, match=rf"method '{name}' has no hyperparameter not_a_param"):
        resolve_hparams(name, {"not_a_param": 1})
    try:
        resolve_hparams(name, {"not_a_param": 1})
    except ValueError as err:
        message = str(err)
    for hp in spec.hparams:
        assert f"{hp}=" in message
    if not spec.hparams:
        assert "(none)" in message


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_has_a_summary_and_cites_method_md(name):
    spec = REGISTRY[name]
    assert spec.summary and spec.summary != name and len(spec.summary) <= 100
    assert "METHOD.md §" in spec.fn.__doc__


# --------------------------------------------------------------------------------------------
# A tiny real model: one step moves each loss the right way
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm():
    """A 2-layer Llama (hidden 32, vocab 50) that has memorised two prompt+answer sequences."""
    model = random_llama(50, max_positions=32, tie_word_embeddings=True)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 50, (2, 12), generator=gen)
    labels = ids.clone()
    labels[:, :4] = -100  # prompt tokens are not in the loss
    labels[1, 10:] = -100  # a shorter second answer (padding)
    alt_ids = torch.cat([ids[:, :4], torch.randint(3, 50, (2, 5), generator=gen)], dim=1)
    alt_labels = alt_ids.clone()
    alt_labels[:, :4] = -100
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
    model.eval()
    return model, ids, labels, alt_ids, alt_labels


def lm_batch(model, ref, ids, labels, alt_ids, alt_labels, spec, hp) -> ForgetBatch:
    """What the training loop does: one forward per model, shifted, and only what `needs` asks."""

    def forward(m, input_ids, lab):
        out = m(input_ids=input_ids, output_hidden_states=True)
        logits = out.logits[:, :-1]  # (B, T-1, V): position t predicts token t+1
        logp, mask = token_logp(logits, lab[:, 1:])
        return logits, logp, mask, [h[:, :-1] for h in out.hidden_states]

    logits, logp, mask, hidden = forward(model, ids, labels)
    with torch.no_grad():
        ref_logits, ref_logp, _, _ = forward(ref, ids, labels)
    fields = {"logp": logp, "mask": mask, "labels": labels[:, 1:]}
    needs = spec.needs
    if "ref_logp" in needs:
        fields["ref_logp"] = ref_logp
    if "logits" in needs:
        fields["logits"] = logits
    if "ref_logits" in needs:
        fields["ref_logits"] = ref_logits
    if "hidden" in needs:
        fields["hidden"] = hidden[hp["layer"]]
    if "scorer" in needs:
        # fixed, varied weights in (0, 1), as a partly trained scorer would give
        w = torch.linspace(-1, 1, hidden[-1].shape[-1])
        fields["scorer_weights"] = torch.sigmoid(hidden[-1].detach() @ w)
    if "span_mask" in needs:
        span = torch.zeros_like(mask)
        span[:, 5:8] = 1.0
        fields["span_mask"] = span
    if "ctx_masked_logp" in needs:
        masked = mask_question({"input_ids": ids, "labels": labels}, pad_id=0)
        with torch.no_grad():
            _, fields["ctx_masked_logp"], _, _ = forward(model, masked, labels)
    if "alt" in needs:
        _, alt_logp, alt_mask, _ = forward(model, alt_ids, alt_labels)
        with torch.no_grad():
            _, alt_ref_logp, _, _ = forward(ref, alt_ids, alt_labels)
        fields.update(alt_logp=alt_logp, alt_mask=alt_mask, alt_ref_logp=alt_ref_logp)
    return ForgetBatch(**fields)


def one_step(name, tiny_lm, step_size):
    """Loss and answer NLL before and after one normalised gradient step on the forget loss."""
    model0, ids, labels, alt_ids, alt_labels = tiny_lm
    model, ref = copy.deepcopy(model0), model0
    spec = get_method(name)
    hp = resolve_hparams(name, {})
    b = lm_batch(model, ref, ids, labels, alt_ids, alt_labels, spec, hp)
    loss0 = spec.fn(b, **hp).loss
    nll0 = -masked_mean(b.logp, b.mask).item()
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss0, params, allow_unused=True)
    norm = torch.sqrt(sum((g**2).sum() for g in grads if g is not None))
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            if g is not None:
                p -= step_size * g / norm  # normalised step: comparable across loss scales
    b1 = lm_batch(model, ref, ids, labels, alt_ids, alt_labels, spec, hp)
    if b.scorer_weights is not None:
        b1.scorer_weights = b.scorer_weights  # the scorer is frozen during a model step
    loss1 = spec.fn(b1, **hp).loss
    nll1 = -masked_mean(b1.logp, b1.mask).item()
    return loss0.item(), loss1.item(), nll0, nll1


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_one_step_on_a_tiny_model_lowers_every_forget_loss(name, tiny_lm):
    loss0, loss1, _, _ = one_step(name, tiny_lm, step_size=1e-3)
    assert loss1 < loss0, f"{name}: {loss0} -> {loss1}"


@pytest.mark.parametrize("name", ["grad_ascent", "grad_diff", "npo", "atwu", "simnpo", "wga"])
def test_one_ascent_step_raises_the_answer_nll(name, tiny_lm):
    _, _, nll0, nll1 = one_step(name, tiny_lm, step_size=0.05)
    assert nll0 < 0.05, "the tiny model should have memorised its answers"
    assert nll1 > nll0, f"{name}: answer NLL {nll0} -> {nll1}"


def test_one_caster_for_hyperparameters_and_scorer_settings():
    from atwu_core.scorer import ScorerConfig

    assert resolve_hparams("wga", {"beta": "2"})["beta"] == 2.0
    with pytest.raises(ValueError, match=r"hyperparameter beta='inf' must be a finite number"):
        resolve_hparams("wga", {"beta": "inf"})
    with pytest.raises(ValueError, match=r"ScorerConfig.scorer_lr='nan' must be a finite number"):
        ScorerConfig.from_overrides({"scorer_lr": "nan"})
    with pytest.raises(ValueError, match=r"hyperparameter saturate='maybe' is not a valid bool"):
        resolve_hparams("oracle_mask", {"saturate": "maybe"})
    with pytest.raises(ValueError, match=r"hyperparameter max_gap=1.5 is not a valid int"):
        resolve_hparams("seul", {"max_gap": 1.5})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"needs": ("bogus",)}, "unknown inputs"),
        ({"retain": "hidden"}, "retain='hidden' goes with retain_term"),
        ({"retain_term": lambda h, r, m: h.sum()}, "retain='hidden' goes with retain_term"),
        ({"needs": ("alt",)}, "need 'alt' goes with alt_answers"),
        ({"alt_answers": ("No idea.",)}, "need 'alt' goes with alt_answers"),
        ({"layer_hparam": "depth"}, "layer_hparam 'depth' is no hyperparameter"),
        ({"retain": "rmu"}, "retain must be nll/kl/none/hidden"),
    ],
)
def test_register_refuses_a_declaration_the_loop_could_not_honour(kwargs, match):
    """What the loop prepares for a method is declared at registration and checked there."""
    from atwu_core.methods import register

    def toy(batch: ForgetBatch, *, layer: int = 1):
        raise AssertionError("never called")

    with pytest.raises(ValueError, match=match):
        register("toy_never_registered", **kwargs)(toy)
    assert "toy_never_registered" not in REGISTRY


def test_the_loop_prepares_what_rmu_and_idk_dpo_declare():
    rmu, idk = get_method("rmu"), get_method("idk_dpo")
    assert rmu.hidden_layer({"layer": 2}) == 2 and get_method("atwu").hidden_layer({}) == -1
    assert rmu.retain_term is not None and rmu.retain_term.__name__ == "rmu_retain_loss"
    assert idk.alt_answers == IDK_ANSWERS and not get_method("npo").alt_answers
