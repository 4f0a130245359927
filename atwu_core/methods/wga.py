"""Weighted gradient ascent (METHOD.md §2 `wga`)."""

from __future__ import annotations

from ..losses import check_hparam, saturation, weighted_ascent, zero_outside
from ..space import LogFloat
from .base import ForgetBatch, MethodOutput, register


@register("wga", search={"beta": LogFloat(0.2, 10.0)})
def wga(batch: ForgetBatch, *, beta: float = 1.0) -> MethodOutput:
    """Ascend each token's NLL weighted by its current probability p^β: still-known tokens first.

    METHOD.md §2: `L_f = -mean_t sg[p_t^β]·ℓ_t`; token weight `p_t^β`, so a token fades out of the
    loss as it is forgotten. Wang et al., "Rethinking LLM Unlearning Objectives: A Gradient
    Perspective and Go Beyond", ICLR 2025 (they use β = 5; β = 1 here as in METHOD.md).
    """
    check_hparam("wga", "beta", beta, beta >= 0, ">= 0")
    weight = zero_outside(saturation(batch.logp, beta), batch.mask)  # (B, T)
    return MethodOutput(loss=weighted_ascent(batch.logp, batch.mask, weight), token_weights=weight)
