"""ATWU plug-in: NPO on the learned-weight sequence log-prob (METHOD.md §1 "Plug-in form")."""

from __future__ import annotations

import torch

from ..losses import check_hparam, npo_loss, sequence_lengths, sequence_logp, zero_outside
from ..space import LogFloat
from .atwu import plugin_weights
from .base import ForgetBatch, MethodOutput, register


def per_sequence_renormalised(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`w` (B, T) rescaled per sequence so that it sums to the sequence's answer-token count.

    The learned weights then move *where* a sequence's log-ratio comes from, not its size: NPO's
    sigmoid sees sequence log-ratios on the scale of the unweighted ones. A sequence whose weights
    are all 0 keeps zeros.
    """
    w = zero_outside(w, mask)
    total = w.sum(dim=-1, keepdim=True)  # (B, 1)
    scale = torch.where(total > 0, sequence_lengths(mask)[:, None] / total.clamp(min=1e-12), 0.0)
    return w * scale  # (B, T)


@register("atwu_npo", needs=("scorer", "ref_logp"), search={"beta": LogFloat(0.02, 1.0)})
def atwu_npo(batch: ForgetBatch, *, beta: float = 0.1) -> MethodOutput:
    """NPO where each token's log-ratio counts w_t times, w = 2g renormalised per sequence.

    METHOD.md §1 plug-in form on §2's NPO: `w` is rescaled so `Σ_t w_t = |y_i|`,
    `r_i = Σ_t w_t·(log p_θ,t - log p_ref,t)`, `L_f = (2/β)·mean_i log(1 + exp(β·r_i))`. With g
    constant it is exactly `npo`. Token weight = the renormalised w.
    Yüce et al., arXiv 2606.06320 (2026); NPO: Zhang et al., COLM 2024.
    """
    check_hparam("atwu_npo", "beta", beta, beta > 0, "> 0")
    w = per_sequence_renormalised(plugin_weights(batch), batch.mask)  # (B, T)
    log_ratio = sequence_logp(batch.logp, batch.mask, w) - sequence_logp(
        batch.ref_logp, batch.mask, w
    )
    return MethodOutput(
        loss=npo_loss(log_ratio, batch.mask, beta),
        token_weights=w,
        parts={"npo/log_ratio": float(log_ratio.detach().mean())},
    )
