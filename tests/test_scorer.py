"""Tests of ATWU's token scorer, its objective and its alternating trainer (METHOD.md §1)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score

from atwu_core.methods import REGISTRY
from atwu_core.scorer import (
    ScorerConfig,
    ScorerTrainer,
    TokenScorer,
    load_scorer,
    save_scorer,
    scorer_hidden,
    scorer_lr_at,
    scorer_objective,
    straight_through_above_half,
)

NAN = float("nan")


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def entropy(g: float) -> float:
    return -g * math.log(g) - (1 - g) * math.log(1 - g)


# --------------------------------------------------------------------------------------------
# TokenScorer
# --------------------------------------------------------------------------------------------


def test_zero_init_gives_half_everywhere_and_d_plus_one_parameters():
    scorer = TokenScorer(8)
    g = scorer(torch.randn(2, 5, 8))
    assert g.shape == (2, 5)
    assert torch.equal(g, torch.full((2, 5), 0.5))
    assert sum(p.numel() for p in scorer.parameters()) == 9


def test_scorer_is_detached_from_the_model():
    scorer = TokenScorer(3)
    with torch.no_grad():
        scorer.linear.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        scorer.linear.bias.fill_(0.25)
    hidden = torch.tensor([[[1.0, 1.0, 2.0]]], requires_grad=True)
    g = scorer(hidden)
    assert g.item() == pytest.approx(sigmoid(1.0 - 2.0 + 1.0 + 0.25))
    g.sum().backward()
    assert hidden.grad is None  # no gradient flows back into the model's hidden states
    assert scorer.linear.weight.grad is not None


def test_scorer_rejects_wrong_hidden_size():
    with pytest.raises(ValueError, match=r"hidden must be \(B, T, 4\)"):
        TokenScorer(4)(torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="hidden_size=0"):
        TokenScorer(0)


# --------------------------------------------------------------------------------------------
# The objective
# --------------------------------------------------------------------------------------------

Z = [[1.0, -0.5, 0.0], [2.0, -1.0, NAN]]  # g logits; the padding slot holds NaN
NLL = [[2.0, 0.5, 1.0], [3.0, 0.1, NAN]]
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
W = [0.3, -0.4]
B = 0.5  # the bias, under the L2 term too (authors' code)


def objective(cfg=None, z=Z):
    z = torch.tensor(z, requires_grad=True)
    weight = torch.tensor([W], requires_grad=True)
    bias = torch.tensor([B], requires_grad=True)
    cfg = cfg or ScorerConfig()
    loss, parts = scorer_objective(z, torch.tensor(NLL), MASK, cfg, [weight, bias])
    return z, (weight, bias), loss, parts


def test_objective_golden_value():
    _, _, loss, parts = objective()
    pairs = [(1.0, 2.0), (-0.5, 0.5), (0.0, 1.0), (2.0, 3.0), (-1.0, 0.1)]
    forget = sum((1 - sigmoid(z)) * nll for z, nll in pairs) / 5
    ent = sum(entropy(sigmoid(z)) for z, _ in pairs) / 5
    # m̂_b counts g > 0.5 strictly: row 1 has one of three (z = 0 gives g = 0.5 exactly), row 2 one
    # of two.
    budget = ((1 / 3 - 0.2) ** 2 + (1 / 2 - 0.2) ** 2) / 2
    l2 = 0.3**2 + 0.4**2 + 0.5**2
    want = forget + 1.0 * ent + 10.0 * budget + 1.0 * l2
    assert loss.item() == pytest.approx(want, rel=1e-6)
    assert parts["forget"] == pytest.approx(forget, rel=1e-6)
    assert parts["entropy"] == pytest.approx(ent, rel=1e-6)
    assert parts["budget"] == pytest.approx(budget, rel=1e-6)
    assert parts["l2"] == pytest.approx(l2, rel=1e-6)
    assert parts["frac_above_half"] == pytest.approx(2 / 5)


def test_objective_lambdas_scale_their_terms():
    cfg = ScorerConfig(lambda_h=0.0, lambda_p=2.0, lambda_2=0.5, budget=0.5)
    _, _, loss, parts = objective(cfg)
    budget = ((1 / 3 - 0.5) ** 2 + (1 / 2 - 0.5) ** 2) / 2
    want = parts["forget"] + 2.0 * budget + 0.5 * (0.3**2 + 0.4**2 + 0.5**2)
    assert loss.item() == pytest.approx(want, rel=1e-6)


def test_forget_and_l2_gradients():
    cfg = ScorerConfig(lambda_h=0.0, lambda_p=0.0, lambda_2=1.0)
    z, (weight, bias), loss, _ = objective(cfg)
    loss.backward()
    # d/dz mean_t (1 - σ(z))·ℓ = -σ(z)(1 - σ(z))·ℓ / N
    s = sigmoid(1.0)
    assert z.grad[0, 0].item() == pytest.approx(-s * (1 - s) * 2.0 / 5, rel=1e-6)
    assert z.grad[1, 2].item() == 0.0  # padding, even though it holds NaN
    assert weight.grad[0].tolist() == pytest.approx([0.6, -0.8])  # d‖w‖²/dw = 2w
    assert bias.grad.tolist() == pytest.approx([1.0])  # the bias is regularised too: 2b


def test_budget_term_straight_through_gradient():
    # Only the budget term: the forward uses the hard count, the backward σ's derivative.
    cfg = ScorerConfig(lambda_h=0.0, lambda_p=10.0, lambda_2=0.0)
    z = torch.tensor(Z, requires_grad=True)
    loss, _ = scorer_objective(z, torch.zeros(2, 3), MASK, cfg, [torch.zeros(1, 2)])
    loss.backward()
    m_hat, n = [1 / 3, 1 / 2], [3, 2]
    for b, t in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]:
        s = sigmoid(Z[b][t])
        # λ_P · (1/B) · 2(m̂_b - budget) · σ'(z) / n_b
        want = 10.0 * 0.5 * 2 * (m_hat[b] - 0.2) * s * (1 - s) / n[b]
        assert z.grad[b, t].item() == pytest.approx(want, rel=1e-5), (b, t)


def test_straight_through_forward_is_hard():
    z = torch.tensor([-2.0, 0.0, 1e-3, 3.0], requires_grad=True)
    st = straight_through_above_half(z)
    assert st.tolist() == [0.0, 0.0, 1.0, 1.0]
    st.sum().backward()
    assert z.grad.tolist() == pytest.approx([sigmoid(v) * (1 - sigmoid(v)) for v in z.tolist()])


def test_entropy_stays_finite_for_saturated_logits():
    _, _, loss, parts = objective(z=[[80.0, -80.0, 0.0], [40.0, -40.0, NAN]])
    assert math.isfinite(loss.item())
    assert parts["entropy"] == pytest.approx(math.log(2) / 5, rel=1e-4)


def test_objective_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="share one"):
        scorer_objective(torch.zeros(2, 3), torch.zeros(2, 4), MASK, ScorerConfig(), [])


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("budget", 1.5, r"budget=1.5 must be in \[0, 1\]"),
        ("budget", -0.1, r"budget=-0.1"),
        ("lambda_h", -1.0, r"lambda_h=-1.0 must be >= 0"),
        ("lambda_p", -1.0, r"lambda_p"),
        ("lambda_2", -1.0, r"lambda_2"),
        ("update_every", 0, r"update_every=0 must be >= 1"),
        ("update_every", True, r"update_every=True must be of type int"),
        ("scorer_lr", 0.0, r"scorer_lr=0.0 must be > 0"),
        ("scorer_momentum", 1.0, r"scorer_momentum"),
        ("scorer_clip", 0.0, r"scorer_clip"),
        ("freeze_after", -2, r"freeze_after=-2"),
        ("lambda_h", NAN, r"lambda_h is NaN"),
        ("lr_decay", 1, r"lr_decay=1 must be of type bool"),
        ("scorer_weight_decay", -1e-4, r"scorer_weight_decay=-0.0001 must be >= 0"),
        ("scorer_position", "next", r"scorer_position='next' must be one of \('own', 'prev'\)"),
        ("scorer_position", 1, r"scorer_position=1 must be of type str"),
        ("lambda_2", float("inf"), r"lambda_2=inf must be finite"),
        ("budget", "0.2", r"budget='0.2' must be of type float"),
    ],
)
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        ScorerConfig(**{field: value})


def test_config_defaults_and_int_to_float():
    cfg = ScorerConfig(lambda_h=2)
    assert cfg.lambda_h == 2.0 and isinstance(cfg.lambda_h, float)
    assert dataclasses.asdict(ScorerConfig()) == {
        "update_every": 5,
        "lambda_h": 1.0,
        "lambda_p": 10.0,
        "budget": 0.2,
        "lambda_2": 1.0,
        "scorer_lr": 0.05,
        "scorer_momentum": 0.9,
        "scorer_weight_decay": 1e-4,
        "scorer_clip": 1.0,
        "lr_decay": True,
        "freeze_after": -1,
        "scorer_position": "own",
    }


def test_config_from_overrides_casts_strings():
    cfg = ScorerConfig.from_overrides(
        {"update_every": "10", "lr_decay": "false", "budget": "0.3", "scorer_position": "prev"}
    )
    assert (cfg.update_every, cfg.lr_decay, cfg.budget) == (10, False, 0.3)
    assert cfg.scorer_position == "prev"
    with pytest.raises(ValueError, match=r"no field lambda_x; allowed: update_every=5"):
        ScorerConfig.from_overrides({"lambda_x": 1})
    with pytest.raises(ValueError, match=r"update_every='often' is not a valid int"):
        ScorerConfig.from_overrides({"update_every": "often"})


def test_config_names_do_not_collide_with_method_hparams():
    names = {f.name for f in dataclasses.fields(ScorerConfig)}
    for spec in REGISTRY.values():
        assert not names & set(spec.hparams), spec.name


# --------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------


def test_schedule_update_every_and_freeze_after():
    cfg = ScorerConfig(update_every=5, freeze_after=10)
    assert cfg.updates_in(20) == [5, 10]
    assert ScorerConfig(update_every=5).updates_in(20) == [5, 10, 15, 20]
    assert ScorerConfig(update_every=5).updates_in(4) == []
    assert ScorerConfig(update_every=5, freeze_after=0).updates_in(20) == []
    trainer = ScorerTrainer(TokenScorer(4), cfg, total_steps=20)
    assert [s for s in range(1, 21) if trainer.should_update(s)] == [5, 10]
    assert trainer.n_updates == 2


def test_lr_decays_linearly_over_scorer_updates_not_model_steps():
    """N = 4 updates (steps 5, 10, 15, 20 of 20): rates 1, 3/4, 2/4, 1/4 of the base, never 0."""
    cfg = ScorerConfig()
    assert [scorer_lr_at(k, cfg, 4) for k in range(4)] == pytest.approx(
        [0.05, 0.0375, 0.025, 0.0125]
    )
    assert scorer_lr_at(3, ScorerConfig(lr_decay=False), 4) == 0.05
    trainer = ScorerTrainer(TokenScorer(2), cfg, total_steps=20)
    batch = [(torch.randn(1, 2, 2), torch.rand(1, 2), torch.ones(1, 2))]
    rates = [trainer.step(batch)["lr"] for _ in range(trainer.n_updates)]
    assert rates == pytest.approx([0.05, 0.0375, 0.025, 0.0125])
    with pytest.raises(ValueError, match="total_steps=0"):
        ScorerTrainer(TokenScorer(2), cfg, total_steps=0)


def test_sgd_weight_decay_is_applied():
    """With every loss term off but λ_2 = 0, only SGD's weight decay moves (w, b): by lr·wd·θ."""
    cfg = ScorerConfig(lambda_h=0.0, lambda_p=0.0, lambda_2=0.0, scorer_weight_decay=0.1)
    trainer = ScorerTrainer(TokenScorer(2), cfg, total_steps=1)
    with torch.no_grad():
        trainer.scorer.linear.weight.copy_(torch.tensor([[1.0, -2.0]]))
        trainer.scorer.linear.bias.fill_(3.0)
    zero_nll = torch.zeros(1, 2)
    trainer.step([(torch.zeros(1, 2, 2), zero_nll, torch.ones(1, 2))])
    # forget term: (1 - g)·0 = 0; only the decay: θ ← θ - 0.05·0.1·θ
    assert trainer.scorer.linear.weight[0].tolist() == pytest.approx([0.995, -1.99])
    assert trainer.scorer.linear.bias.tolist() == pytest.approx([2.985])


def test_scorer_hidden_positions():
    states = torch.arange(4.0).reshape(1, 4, 1)  # (1, T+1, 1): input positions 0..3
    assert scorer_hidden(states, "own").flatten().tolist() == [1.0, 2.0, 3.0]
    assert scorer_hidden(states, "prev").flatten().tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="scorer_position='x'"):
        scorer_hidden(states, "x")


def test_first_step_is_clipped_sgd():
    # At z = 0 every g is 0.5: the forget term pulls w toward nll-weighted hidden states. With a
    # huge nll the gradient norm is far above 1, so the first SGD step (momentum buffer = grad)
    # moves (w, b) by exactly lr·clip.
    cfg = ScorerConfig(
        lambda_h=0.0, lambda_p=0.0, lambda_2=0.0, scorer_clip=1.0, scorer_weight_decay=0.0
    )
    trainer = ScorerTrainer(TokenScorer(2), cfg, total_steps=100)
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2, 2)
    nll = torch.tensor([[400.0, 0.0]])
    out = trainer.step([(hidden, nll, torch.ones(1, 2))])
    # dL/dw = -mean_t σ'(0)·ℓ_t·h_t = -(0.25·400·[1, 0]) / 2 = [-50, 0]; dL/db = -50
    assert out["grad_norm"] == pytest.approx(math.hypot(50.0, 50.0), rel=1e-6)
    step = 0.05 / math.sqrt(2)
    assert trainer.scorer.linear.weight[0].tolist() == pytest.approx([step, 0.0], rel=1e-5)
    assert trainer.scorer.linear.bias.tolist() == pytest.approx([step], rel=1e-5)


def test_trainer_detaches_inputs_and_works_under_no_grad():
    trainer = ScorerTrainer(TokenScorer(3), ScorerConfig(update_every=1), total_steps=5)
    hidden = torch.randn(2, 4, 3, requires_grad=True)
    nll = (hidden.sum(-1) ** 2).detach().requires_grad_()
    with torch.no_grad():
        out = trainer.step([(hidden, nll, torch.ones(2, 4))])
    assert out is not None and out["grad_norm"] > 0
    assert hidden.grad is None and nll.grad is None


def test_scorer_learns_to_rank_forgettable_tokens():
    """Tokens with a high NLL share a hidden direction: the scorer must find it (AUROC > 0.9)."""
    gen = torch.Generator().manual_seed(0)
    b, t, d = 8, 16, 16
    direction = torch.randn(d, generator=gen)
    direction /= direction.norm()
    forgettable = torch.rand(b, t, generator=gen) < 0.2  # (B, T), ≈ the default budget
    hidden = torch.randn(b, t, d, generator=gen) + 3.0 * forgettable[..., None] * direction
    nll = torch.where(
        forgettable, 4.0 + torch.rand(b, t, generator=gen), 0.3 * torch.rand(b, t, generator=gen)
    )
    mask = torch.ones(b, t)
    scorer = TokenScorer(d)
    trainer = ScorerTrainer(scorer, ScorerConfig(update_every=1), total_steps=100)
    for _ in range(100):
        trainer.step([(hidden, nll, mask)])
    g = scorer(hidden).detach()
    auroc = roc_auc_score(forgettable.flatten().numpy(), g.flatten().numpy())
    assert auroc > 0.9, auroc
    assert g[forgettable].mean() > 0.5 > g[~forgettable].mean()


# --------------------------------------------------------------------------------------------
# Save / load
# --------------------------------------------------------------------------------------------


def test_save_load_roundtrip(tmp_path):
    scorer = TokenScorer(5)
    with torch.no_grad():
        scorer.linear.weight.copy_(torch.arange(5.0).unsqueeze(0))
        scorer.linear.bias.fill_(-1.5)
    path = tmp_path / "scorer.safetensors"
    save_scorer(path, scorer)
    header_len = int.from_bytes(path.read_bytes()[:8], "little")  # safetensors, not pickle
    assert path.read_bytes()[8:9] == b"{" and header_len > 0
    loaded = load_scorer(path)
    assert loaded.hidden_size == 5
    assert torch.equal(loaded.linear.weight, scorer.linear.weight)
    assert torch.equal(loaded.linear.bias, scorer.linear.bias)


def test_load_rejects_foreign_files(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"garbage\.safetensors: not a readable safetensors"):
        load_scorer(garbage)
    with pytest.raises(ValueError, match=r"missing\.safetensors"):
        load_scorer(tmp_path / "missing.safetensors")
    foreign = tmp_path / "model.safetensors"
    save_file({"weight": torch.zeros(1, 3), "bias": torch.zeros(1)}, str(foreign))
    with pytest.raises(ValueError, match=r"model\.safetensors: metadata format=None"):
        load_scorer(foreign)
    bad_shape = tmp_path / "bad.safetensors"
    meta = {"format": "atwu-scorer", "schema": "1"}
    save_file({"weight": torch.zeros(3), "bias": torch.zeros(1)}, str(bad_shape), metadata=meta)
    with pytest.raises(ValueError, match=r"weight must be \(1, D\)"):
        load_scorer(bad_shape)
