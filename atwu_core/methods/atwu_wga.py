"""ATWU plug-in: WGA with the learned weights in the saturation exponent (METHOD.md §1)."""

from __future__ import annotations

from ..losses import check_hparam, saturation, weighted_ascent
from ..space import LogFloat
from .atwu import plugin_weights
from .base import ForgetBatch, MethodOutput, register


@register("atwu_wga", needs=("scorer",), search={"beta": LogFloat(0.2, 10.0)})
def atwu_wga(batch: ForgetBatch, *, beta: float = 1.0) -> MethodOutput:
    """WGA with w_t = 2g_t in the exponent: `-mean_t ℓ_t·sg[p_t^(β·w_t)]`.

    METHOD.md §1 plug-in form on §2's WGA: the weight enters only through the exponent (as in the
    authors' code), so a picked token (w → 2) saturates faster and an unpicked one (w → 0) keeps
    the full plain-ascent push, balanced by the retain term. With g ≡ 0.5 it is exactly `wga`.
    Token weight = w. Yüce et al., arXiv 2606.06320 (2026); WGA: Wang et al., ICLR 2025.
    """
    check_hparam("atwu_wga", "beta", beta, beta >= 0, ">= 0")
    w = plugin_weights(batch)  # (B, T)
    weight = saturation(batch.logp, beta * w)  # (B, T)
    return MethodOutput(loss=weighted_ascent(batch.logp, batch.mask, weight), token_weights=w)
