"""ATWU plug-in: NPO on the learned-weight sequence log-prob (METHOD.md §1 "Plug-in form")."""

from __future__ import annotations

from ..losses import check_hparam, npo_loss, sequence_logp
from ..space import LogFloat
from .atwu import plugin_weights
from .base import ForgetBatch, MethodOutput, register


@register("atwu_npo", needs=("scorer", "ref_logp"), search={"beta": LogFloat(0.02, 1.0)})
def atwu_npo(batch: ForgetBatch, *, beta: float = 0.1) -> MethodOutput:
    """NPO where each token's log-ratio counts w_t = 2g_t times: pushes the tokens the scorer picks.

    METHOD.md §1 plug-in form on §2's NPO: `r_i = Σ_t w_t·(log p_θ,t - log p_ref,t)`,
    `L_f = (2/β)·mean_i log(1 + exp(β·r_i))`. With g ≡ 0.5 it is exactly `npo`. Token weight = w.
    Yüce et al., arXiv 2606.06320 (2026); NPO: Zhang et al., COLM 2024.
    """
    check_hparam("atwu_npo", "beta", beta, beta > 0, "> 0")
    w = plugin_weights(batch)  # (B, T)
    log_ratio = sequence_logp(batch.logp, batch.mask, w) - sequence_logp(
        batch.ref_logp, batch.mask, w
    )
    return MethodOutput(
        loss=npo_loss(log_ratio, batch.mask, beta),
        token_weights=w,
        parts={"npo/log_ratio": float(log_ratio.detach().mean())},
    )
