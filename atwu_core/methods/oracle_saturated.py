"""Control: ATWU's loss with g = the ground-truth span mask (METHOD.md §1 "Controls")."""

from __future__ import annotations

from ..space import LogFloat
from .atwu import saturated_ascent
from .base import ForgetBatch, MethodOutput, register


@register("oracle_saturated", needs=("span_mask",), search={"beta": LogFloat(0.5, 20.0)})
def oracle_saturated(
    batch: ForgetBatch, *, beta: float = 5.0, saturation: str = "scaled"
) -> MethodOutput:
    """ATWU's saturated ascent with g = 1 on forget-span tokens and 0 elsewhere: the best weighting.

    METHOD.md §1 "Controls": `L_f = -mean_t[m_t·ℓ_t·sg[p_t^(β·m_t)]]` with m the span mask, averaged
    over all answer tokens like ATWU's (unlike `oracle_mask`, which averages over span tokens
    only). The ceiling a learned scorer chases. Token weight = the span mask.
    """
    return saturated_ascent("oracle_saturated", batch, batch.span_mask, beta, saturation)
