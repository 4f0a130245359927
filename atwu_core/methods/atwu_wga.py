"""ATWU plug-in: WGA with learned weights in the weight and its exponent (METHOD.md §1)."""

from __future__ import annotations

from ..losses import check_hparam, saturation, weighted_ascent
from ..space import LogFloat
from .atwu import plugin_weights
from .base import ForgetBatch, MethodOutput, register


@register("atwu_wga", needs=("scorer",), search={"beta": LogFloat(0.2, 10.0)})
def atwu_wga(batch: ForgetBatch, *, beta: float = 1.0) -> MethodOutput:
    """WGA with w_t = 2g_t: ascends -mean_t w_t·sg[p_t^(β·w_t)]·ℓ_t, on the tokens the scorer picks.

    METHOD.md §1 plug-in form on §2's WGA: a picked token (w → 2) gets twice the push and a
    sharper saturation, an unpicked one (w → 0) none. With g ≡ 0.5 it is exactly `wga`. Token
    weight = w. Yüce et al., arXiv 2606.06320 (2026); WGA: Wang et al., ICLR 2025.
    """
    check_hparam("atwu_wga", "beta", beta, beta >= 0, ">= 0")
    w = plugin_weights(batch)  # (B, T)
    weight = w * saturation(batch.logp, beta * w)  # (B, T)
    return MethodOutput(loss=weighted_ascent(batch.logp, batch.mask, weight), token_weights=w)
