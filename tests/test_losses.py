"""Golden-number tests of the shared loss helpers (atwu_core.losses), computed by hand with math."""

from __future__ import annotations

import math

import pytest
import torch

from atwu_core import losses

NAN = float("nan")
# Two answers: probabilities (0.5, 0.2, 0.9) and (0.7, 0.4); the last slot of row 2 is padding and
# holds NaN, which must never reach a result or a gradient.
P = [[0.5, 0.2, 0.9], [0.7, 0.4]]
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def make_logp() -> torch.Tensor:
    return torch.tensor(
        [[math.log(0.5), math.log(0.2), math.log(0.9)], [math.log(0.7), math.log(0.4), NAN]],
        requires_grad=True,
    )


def test_masked_mean_golden_and_zero_grad_outside():
    logp = make_logp()
    out = losses.masked_mean(logp, MASK)
    want = sum(math.log(p) for row in P for p in row) / 5
    assert out.item() == pytest.approx(want, rel=1e-6)
    out.backward()
    assert logp.grad[1, 2].item() == 0.0
    assert torch.allclose(logp.grad[MASK > 0], torch.full((5,), 0.2))


def test_masked_mean_empty_mask():
    x = torch.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match="no tokens"):
        losses.masked_mean(x, torch.zeros(2, 3))
    zero = losses.masked_mean(x, torch.zeros(2, 3), allow_empty=True)
    assert zero.item() == 0.0 and zero.requires_grad
    with pytest.raises(ValueError, match="shape"):
        losses.masked_mean(x, torch.ones(3, 2))


def test_token_logp_gathers_log_softmax_and_masks_ignored_labels():
    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]])  # (1, 2, 3)
    labels = torch.tensor([[1, -100]])
    logp, mask = losses.token_logp(logits, labels)
    want = 2.0 - math.log(math.e**1 + math.e**2 + math.e**0)
    assert logp[0, 0].item() == pytest.approx(want, rel=1e-6)
    assert logp[0, 1].item() == 0.0
    assert mask.tolist() == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="logits"):
        losses.token_logp(logits[0], labels)


def test_sequence_logp_and_mean_nll_golden():
    logp = make_logp()
    seq = losses.sequence_logp(logp, MASK)
    assert seq.tolist() == pytest.approx([math.log(0.5 * 0.2 * 0.9), math.log(0.7 * 0.4)], rel=1e-6)
    weight = torch.tensor([[2.0, 0.0, 1.0], [0.5, 1.0, NAN]])
    weighted = losses.sequence_logp(logp, MASK, weight)
    assert weighted.tolist() == pytest.approx(
        [2 * math.log(0.5) + math.log(0.9), 0.5 * math.log(0.7) + math.log(0.4)], rel=1e-6
    )
    nll = losses.sequence_mean_nll(logp, MASK, weight)
    # normalised by the token count, not by the weights' sum
    assert nll.tolist() == pytest.approx(
        [-(2 * math.log(0.5) + math.log(0.9)) / 3, -(0.5 * math.log(0.7) + math.log(0.4)) / 2],
        rel=1e-6,
    )
    nll.sum().backward()
    assert logp.grad[1, 2].item() == 0.0
    assert logp.grad[0, 0].item() == pytest.approx(-2 / 3)
    assert logp.grad[0, 1].item() == 0.0  # weight 0


def test_mean_over_sequences_skips_empty_rows():
    values = torch.tensor([1.0, 5.0, NAN])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert losses.mean_over_sequences(values, mask).item() == 3.0
    with pytest.raises(ValueError, match="no sequence"):
        losses.mean_over_sequences(values, torch.zeros(3, 2))


def test_saturation_is_detached_power():
    logp = make_logp()
    sat = losses.saturation(logp, 2.5)
    assert not sat.requires_grad
    assert sat[0, 1].item() == pytest.approx(0.2**2.5, rel=1e-6)
    exponent = torch.tensor([[1.0, 0.0, 3.0], [0.5, 2.0, 1.0]])
    sat = losses.saturation(logp, exponent)
    assert sat[0].tolist() == pytest.approx([0.5, 1.0, 0.9**3], rel=1e-6)
    assert sat[1, :2].tolist() == pytest.approx([0.7**0.5, 0.4**2], rel=1e-6)


def test_weighted_ascent_golden_and_gradient():
    logp = make_logp()
    weight = torch.tensor([[0.5, 1.0, 0.0], [2.0, 0.25, NAN]], requires_grad=True)
    loss = losses.weighted_ascent(logp, MASK, weight)
    # -mean_t w ℓ  =  mean_t w log p, over the 5 answer tokens
    want = (0.5 * math.log(0.5) + math.log(0.2) + 2.0 * math.log(0.7) + 0.25 * math.log(0.4)) / 5
    assert loss.item() == pytest.approx(want, rel=1e-6)
    loss.backward()
    assert weight.grad is None or float(weight.grad.abs().sum()) == 0.0  # weights are constants
    assert logp.grad.tolist()[0] == pytest.approx([0.1, 0.2, 0.0])
    assert logp.grad[1].tolist() == pytest.approx([0.4, 0.05, 0.0])
    assert losses.weighted_ascent(make_logp(), MASK).item() == pytest.approx(
        sum(math.log(p) for row in P for p in row) / 5, rel=1e-6
    )


def test_npo_and_simnpo_losses_golden():
    log_ratio = torch.tensor([0.3, -1.2])
    beta = 0.5
    want = (2 / beta) * (math.log1p(math.exp(0.15)) + math.log1p(math.exp(-0.6))) / 2
    assert losses.npo_loss(log_ratio, MASK, beta).item() == pytest.approx(want, rel=1e-6)

    mean_nll = torch.tensor([1.0, 0.2])

    def log_sigmoid(x: float) -> float:
        return -math.log1p(math.exp(-x))

    want = -(2 / 4.5) * (log_sigmoid(4.5 * (1.0 - 0.1)) + log_sigmoid(4.5 * (0.2 - 0.1))) / 2
    got = losses.simnpo_loss(mean_nll, MASK, 4.5, 0.1).item()
    assert got == pytest.approx(want, rel=1e-6)


def test_check_hparam_message_names_method_and_value():
    losses.check_hparam("npo", "beta", 0.1, True, "> 0")
    with pytest.raises(ValueError, match=r"method 'npo': hyperparameter beta=0 must be > 0"):
        losses.check_hparam("npo", "beta", 0, False, "> 0")
