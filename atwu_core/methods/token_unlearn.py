"""TokenUnlearn: context-sensitivity and entropy token scores (METHOD.md §2 `token_unlearn`)."""

from __future__ import annotations

import torch

from ..losses import check_hparam, masked_mean, weighted_ascent, zero_outside
from ..space import Choice, Float
from .atwu_npo import per_sequence_renormalised
from .base import ForgetBatch, MethodOutput, register
from .etw import predictive_entropy


def minmax_per_sequence(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x` (B, T) min-max scaled to [0, 1] per sequence over its answer tokens; 0 where constant."""
    keep = mask > 0
    x = zero_outside(x, mask)
    lo = torch.where(keep, x, torch.inf).amin(dim=-1, keepdim=True)  # (B, 1)
    hi = torch.where(keep, x, -torch.inf).amax(dim=-1, keepdim=True)  # (B, 1)
    span = hi - lo
    ok = torch.isfinite(span) & (span > 1e-12)
    scaled = (x - torch.where(ok, lo, 0.0)) / torch.where(ok, span, 1.0)
    return zero_outside(torch.where(ok, scaled, 0.0), mask)


def top_r_mask(score: torch.Tensor, mask: torch.Tensor, r: float) -> torch.Tensor:
    """1 on the ⌈r·n⌉ highest-scored answer tokens of each sequence (n its answer length), else 0.

    Ties go to the earlier position (a stable sort), so the mask is deterministic.
    """
    keep = mask > 0
    n = mask.sum(dim=-1, keepdim=True)  # (B, 1)
    k = torch.ceil(r * n - 1e-6).clamp(min=1.0)  # (B, 1); -1e-6: 0.3·10 is 3.0000000000000004
    order = torch.sort(torch.where(keep, -score, torch.inf), dim=-1, stable=True).indices
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(score.shape[1], device=score.device).expand_as(order)
    )  # (B, T): 0 for the highest-scored answer token
    return ((rank < k) & keep).to(mask.dtype)


@register(
    "token_unlearn",
    needs=("logits", "ctx_masked_logp"),
    search={"lam": Float(0.0, 1.0), "mode": Choice(("soft", "top_r")), "r": Float(0.1, 0.9)},
)
def token_unlearn(
    batch: ForgetBatch, *, lam: float = 0.5, mode: str = "soft", r: float = 0.3
) -> MethodOutput:
    """Ascend the NLL of tokens that depend on the question and are uncertain (soft or top-r).

    METHOD.md §2: `Δ_t = log p(y_t|x, y_<t) - log p(y_t|x̃, y_<t)`, x̃ the prompt with all but its
    last token replaced by pad (the loop's "ctx_masked_logp"); `s_t = λ·norm(Δ_t) +
    (1-λ)·norm(H_t)`, norm = min-max per sequence over answer tokens (0 if constant);
    `mode="soft"`: w = s renormalised to mean 1 per sequence; `mode="top_r"`: w = 1 on the
    ⌈r·n⌉ highest-scored answer tokens, else 0; `L_f = -mean_t sg[w_t]·ℓ_t` with the loop's retain
    NLL (gradient-difference form). TokenUnlearn, arXiv 2605.00364 (2026). Our reading of its
    description, which we could not download: the masking (pad tokens, last prompt token and
    attention kept, the current model under no_grad), min-max normalisation, the mean-1
    renormalisation, the GA/gradient-difference base (no NPO variant here), and, in soft mode, a
    sequence whose scores are all 0 (e.g. one answer token) falls back to uniform weight 1.
    Token weight = w (mean 1 in soft mode, a 0/1 mask in top_r mode).
    """
    check_hparam("token_unlearn", "lam", lam, 0.0 <= lam <= 1.0, "in [0, 1]")
    check_hparam("token_unlearn", "mode", mode, mode in ("soft", "top_r"), "'soft' or 'top_r'")
    check_hparam("token_unlearn", "r", r, 0.0 < r <= 1.0, "in (0, 1]")
    mask = batch.mask
    delta = zero_outside(batch.logp.detach(), mask) - zero_outside(batch.ctx_masked_logp, mask)
    entropy = predictive_entropy(batch.logits, mask)  # (B, T)
    score = lam * minmax_per_sequence(delta, mask) + (1 - lam) * minmax_per_sequence(entropy, mask)
    if mode == "soft":
        flat = (score.sum(dim=-1, keepdim=True) <= 0).expand_as(score)  # (B, T)
        weight = per_sequence_renormalised(torch.where(flat, mask, score), mask)
    else:
        weight = top_r_mask(score, mask, r)
    weight = zero_outside(weight, mask).detach()
    return MethodOutput(
        loss=weighted_ascent(batch.logp, mask, weight),
        token_weights=weight,
        parts={
            "token_unlearn/delta": float(masked_mean(delta, mask)),
            "token_unlearn/entropy": float(masked_mean(entropy, mask)),
        },
    )
