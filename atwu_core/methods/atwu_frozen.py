"""Control: ATWU's loss with the scorer frozen at g = 0.5 (METHOD.md §1 "Controls")."""

from __future__ import annotations

import torch

from ..space import LogFloat
from .atwu import saturated_ascent
from .base import ForgetBatch, MethodOutput, register


@register("atwu_frozen", search={"beta": LogFloat(0.5, 20.0)})
def atwu_frozen(
    batch: ForgetBatch, *, beta: float = 5.0, saturation: str = "scaled"
) -> MethodOutput:
    """ATWU's saturated ascent with g fixed at 0.5 for every token: what saturation alone gives.

    METHOD.md §1 "Controls": `L_f = -mean_t[0.5·ℓ_t·sg[p_t^(β/2)]]`, the untrained scorer kept all
    run. Any gain of `atwu` over this control is what the learned weights add. Token weight = 0.5.
    """
    g = torch.full_like(batch.mask, 0.5)  # (B, T)
    return saturated_ascent("atwu_frozen", batch, g, beta, saturation)
