"""ATWU's linear token scorer and its regularised objective (METHOD.md §1 "Scorer").

`g_t = σ(wᵀ h_t + b)` on the (detached) last-layer hidden state of each answer token. The scorer is
trained every `update_every` model steps, with the model frozen, on the same batch's cached NLLs and
hidden states, by SGD with momentum and weight decay on

    L_s = mean_t (1 - g_t)·sg[ℓ_t] + λ_H·mean_t H(g_t) + λ_P·mean_b (m̂_b - budget)² + λ_2·‖(w, b)‖².

As in the authors' code: the L2 term covers the bias too, the learning rate decays linearly over the
run's *scorer updates* (1, (N-1)/N, ..., 1/N of the base rate), and on a step where both update
the scorer steps first and the model's loss uses g recomputed from the same cached hidden states
(`atwu_core.train` calls `ScorerTrainer.step` between the forward pass and the loss).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .losses import masked_mean, mean_over_sequences, zero_outside
from .scorer_config import POSITIONS, ScorerConfig
from .space import Choice, Float, Int, LogFloat

SCORER_FORMAT = "atwu-scorer"
SCORER_SCHEMA = "1"


class TokenScorer(nn.Module):
    """`g = σ(wᵀh + b)` per token: one zero-initialised linear layer, so every g starts at 0.5."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"TokenScorer: hidden_size={hidden_size} must be >= 1")
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    @property
    def hidden_size(self) -> int:
        return self.linear.in_features

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid scores (B, T) of hidden states (B, T, D); no gradient reaches the model."""
        if hidden.dim() != 3 or hidden.shape[-1] != self.hidden_size:
            raise ValueError(
                f"TokenScorer: hidden must be (B, T, {self.hidden_size}), got {tuple(hidden.shape)}"
            )
        h = hidden.detach().to(self.linear.weight.dtype)  # (B, T, D), cut from the model graph
        return self.linear(h).squeeze(-1)  # (B, T)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Token weights g (B, T) in (0, 1)."""
        return torch.sigmoid(self.logits(hidden))


def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(σ(z)) in nats, from logits: `g·softplus(-z) + (1-g)·softplus(z)`, finite for any z."""
    g = torch.sigmoid(logits)
    return g * F.softplus(-logits) + (1 - g) * F.softplus(logits)


def straight_through_above_half(logits: torch.Tensor) -> torch.Tensor:
    """`1[g > 0.5]` in the forward pass, with the gradient of `g = σ(z)` in the backward pass."""
    g = torch.sigmoid(logits)
    hard = (logits > 0).to(g.dtype)  # g > 0.5 <=> z > 0
    return hard + g - g.detach()


def scorer_objective(
    g_logits: torch.Tensor,
    nll: torch.Tensor,
    mask: torch.Tensor,
    cfg: ScorerConfig,
    params: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, dict[str, float]]:
    """The scorer loss L_s of METHOD.md §1 and its four terms (unscaled, for logging).

    The parts' keys are bare (`loss`, `forget`, ...): the loop logs them under `scorer/`.

    g_logits (B, T) = wᵀh + b; nll (B, T) = ℓ_t (treated as a constant); mask (B, T) answer tokens;
    params = the scorer's parameters (w and b), all under the L2 term. `m̂_b`, the fraction of
    sequence b's answer tokens with g > 0.5, uses a straight-through estimator so the budget term
    has a gradient.
    """
    if g_logits.shape != nll.shape or g_logits.shape != mask.shape or g_logits.dim() != 2:
        raise ValueError(
            f"scorer_objective: g_logits {tuple(g_logits.shape)}, nll {tuple(nll.shape)} and mask "
            f"{tuple(mask.shape)} must share one (B, T) shape"
        )
    z = zero_outside(g_logits, mask)  # (B, T)
    g = torch.sigmoid(z)
    nll = zero_outside(nll.detach(), mask)
    forget = masked_mean((1 - g) * nll, mask)  # weight goes where ℓ_t is high
    entropy = masked_mean(binary_entropy(z), mask)
    above = zero_outside(straight_through_above_half(z), mask)  # (B, T)
    frac = above.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)  # (B,) m̂_b
    budget = mean_over_sequences((frac - cfg.budget) ** 2, mask)
    l2 = sum(p.pow(2).sum() for p in params)
    loss = forget + cfg.lambda_h * entropy + cfg.lambda_p * budget + cfg.lambda_2 * l2
    parts = {
        "loss": float(loss.detach()),
        "forget": float(forget.detach()),
        "entropy": float(entropy.detach()),
        "budget": float(budget.detach()),
        "l2": float(l2.detach()),
        "frac_above_half": float(masked_mean(above.detach(), mask)),
        "g_mean": float(masked_mean(g.detach(), mask)),
    }
    return loss, parts


def scorer_lr_at(update: int, cfg: ScorerConfig, n_updates: int) -> float:
    """Learning rate of the scorer's `update`-th step (0-based) of `n_updates`: `lr·(N-k)/N`.

    The decay runs over scorer updates, not model steps, so the last update still learns (1/N of
    the base rate) instead of taking a step of size 0.
    """
    if not cfg.lr_decay or n_updates < 1:
        return cfg.scorer_lr
    return cfg.scorer_lr * max(0, n_updates - update) / n_updates


class ScorerTrainer:
    """Owns the scorer's optimiser and METHOD.md §1's alternating schedule.

    The loop asks `should_update(step)` once per model step; when it says yes, the loop calls
    `step` with that step's cached hidden states and NLLs *before* computing the model's loss, then
    recomputes g with the updated scorer (the authors' order). The model is frozen during the
    scorer step because everything it sees is detached.

    The scorer stays fp32 whatever the model's dtype. In a data-parallel run `sync_grads` averages
    its gradients over processes before the step, so every process keeps the same (w, b).
    """

    def __init__(
        self,
        scorer: TokenScorer,
        cfg: ScorerConfig,
        total_steps: int,
        sync_grads: Callable[[list[nn.Parameter]], None] | None = None,
    ) -> None:
        if total_steps < 1:
            raise ValueError(f"ScorerTrainer: total_steps={total_steps} must be >= 1")
        self.scorer = scorer
        self.cfg = cfg
        self.schedule = frozenset(cfg.updates_in(total_steps))
        self.n_updates = len(self.schedule)  # N, for the linear decay over updates
        self.sync_grads = sync_grads
        self.optimizer = torch.optim.SGD(
            scorer.parameters(),
            lr=cfg.scorer_lr,
            momentum=cfg.scorer_momentum,
            weight_decay=cfg.scorer_weight_decay,
        )
        self.updates = 0

    def should_update(self, model_step: int) -> bool:
        return model_step in self.schedule

    def step(
        self, micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> dict[str, float]:
        """One scorer update; its logged scalars.

        `micro_batches` holds this step's (hidden (B, T, D) last-layer states, nll (B, T) = ℓ_t,
        mask (B, T) answer tokens), one triple per gradient-accumulation micro-batch; their
        objectives are averaged, as the model's losses are.
        """
        if not micro_batches:
            raise ValueError("ScorerTrainer.step: no micro-batch to train on")
        lr = scorer_lr_at(self.updates, self.cfg, self.n_updates)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        params = list(self.scorer.parameters())
        sums: dict[str, float] = {}
        with torch.enable_grad():  # the loop may call this inside its own no_grad evaluation
            for hidden, nll, mask in micro_batches:
                z = self.scorer.logits(hidden.detach())  # (B, T)
                nll_t, mask_t = nll.detach().to(z.dtype), mask.to(z.dtype)
                loss, parts = scorer_objective(z, nll_t, mask_t, self.cfg, params)
                (loss / len(micro_batches)).backward()
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value / len(micro_batches)
        if self.sync_grads is not None:
            self.sync_grads(params)
        grad_norm = nn.utils.clip_grad_norm_(params, self.cfg.scorer_clip)
        self.optimizer.step()
        self.updates += 1
        return {**sums, "lr": lr, "grad_norm": float(grad_norm)}


def scorer_hidden(hidden_states: torch.Tensor, position: str) -> torch.Tensor:
    """The last-layer states (B, T, D) that score the targets of a shifted (B, T) frame.

    Input position t+1 holds target y_t ("own"); input position t predicts it ("prev", where
    ℓ_t is computed). `hidden_states` is the model's (B, T+1, D) last layer.
    """
    if position == "own":
        return hidden_states[:, 1:]
    if position == "prev":
        return hidden_states[:, :-1]
    raise ValueError(f"scorer_position={position!r} must be one of {POSITIONS}")


def save_scorer(path: str | Path, scorer: TokenScorer) -> None:
    """Write (w, b) as safetensors (never pickle), with the format in the metadata."""
    tensors = {
        "weight": scorer.linear.weight.detach().cpu().contiguous(),  # (1, D)
        "bias": scorer.linear.bias.detach().cpu().contiguous(),  # (1,)
    }
    meta = {
        "format": SCORER_FORMAT,
        "schema": SCORER_SCHEMA,
        "hidden_size": str(scorer.hidden_size),
    }
    save_file(tensors, str(path), metadata=meta)


def load_scorer(path: str | Path) -> TokenScorer:
    """Read a scorer written by `save_scorer`; a foreign or damaged file raises ValueError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    if meta.get("format") != SCORER_FORMAT or meta.get("schema") != SCORER_SCHEMA:
        raise ValueError(
            f"{path}: metadata format={meta.get('format')!r} schema={meta.get('schema')!r}, "
            f"expected {SCORER_FORMAT!r} schema {SCORER_SCHEMA!r} (is this a scorer file?)"
        )
    if set(tensors) != {"weight", "bias"}:
        raise ValueError(f"{path}: expected tensors 'weight' and 'bias', found {sorted(tensors)}")
    weight, bias = tensors["weight"], tensors["bias"]
    if weight.dim() != 2 or weight.shape[0] != 1 or tuple(bias.shape) != (1,):
        raise ValueError(
            f"{path}: weight must be (1, D) and bias (1,), got {tuple(weight.shape)} and "
            f"{tuple(bias.shape)}"
        )
    scorer = TokenScorer(weight.shape[1])
    with torch.no_grad():
        scorer.linear.weight.copy_(weight)
        scorer.linear.bias.copy_(bias)
    return scorer


# Where `atwu tune` searches the scorer settings, for every method whose needs include "scorer"
# (docs/TUNING.md).
SCORER_SEARCH = {
    "lambda_h": LogFloat(0.1, 10.0),
    "lambda_p": LogFloat(1.0, 100.0),
    "budget": Float(0.05, 0.5),
    "lambda_2": LogFloat(0.01, 10.0),
    "scorer_lr": LogFloat(0.005, 0.5),
    "update_every": Int(1, 10),
    "scorer_position": Choice(POSITIONS),
}
