"""ATWU plug-in: SimNPO on the learned-weight length-normalised NLL (METHOD.md §1)."""

from __future__ import annotations

from ..losses import check_hparam, sequence_mean_nll, simnpo_loss
from ..space import Float, LogFloat
from .atwu import plugin_weights
from .base import ForgetBatch, MethodOutput, register


@register(
    "atwu_simnpo", needs=("scorer",), search={"beta": LogFloat(1.0, 10.0), "delta": Float(0.0, 2.0)}
)
def atwu_simnpo(batch: ForgetBatch, *, beta: float = 4.5, delta: float = 0.0) -> MethodOutput:
    """SimNPO on Σ_t w_t·ℓ_t / |y| with w_t = 2g_t: raises the NLL of the tokens the scorer picks.

    METHOD.md §1 plug-in form on §2's SimNPO:
    `L_f = -(2/β)·mean_i log σ(β·(Σ_t w_t ℓ_t/|y_i| - δ))`, normalised by the token count |y_i|
    (not Σ w, which would cancel the weighting's scale). With g ≡ 0.5 it is exactly `simnpo`.
    Token weight = w. Yüce et al., arXiv 2606.06320 (2026); SimNPO: Fan et al., 2024.
    """
    check_hparam("atwu_simnpo", "beta", beta, beta > 0, "> 0")
    w = plugin_weights(batch)  # (B, T)
    mean_nll = sequence_mean_nll(batch.logp, batch.mask, w)  # (B,)
    return MethodOutput(
        loss=simnpo_loss(mean_nll, batch.mask, beta, delta),
        token_weights=w,
        parts={"simnpo/mean_nll": float(mean_nll.detach().mean())},
    )
