"""Saturation-importance weighting (METHOD.md §2 `satimp`)."""

from __future__ import annotations

import torch

from ..losses import check_hparam, saturation, weighted_ascent, zero_outside
from ..space import LogFloat
from .base import ForgetBatch, MethodOutput, register


@register("satimp", search={"beta1": LogFloat(0.5, 20.0), "beta2": LogFloat(0.1, 10.0)})
def satimp(batch: ForgetBatch, *, beta1: float = 5.0, beta2: float = 1.0) -> MethodOutput:
    """Ascend each token's NLL weighted by p^β1·(1-p)^β2: favours likely but not certain tokens.

    METHOD.md §2: `L_f = -mean_t sg[p_t^β1·(1-p_t)^β2]·ℓ_t`. The p^β1 factor saturates forgotten
    tokens, the (1-p)^β2 factor down-weights tokens the model is already certain of (often shared
    template words). Yang et al., "Exploring Criteria of Loss Reweighting to Enhance LLM
    Unlearning", ICML 2025.
    """
    check_hparam("satimp", "beta1", beta1, beta1 >= 0, ">= 0")
    check_hparam("satimp", "beta2", beta2, beta2 >= 0, ">= 0")
    p = saturation(batch.logp, 1.0)  # (B, T), detached
    weight = saturation(batch.logp, beta1) * torch.pow(1.0 - p, beta2)  # (B, T)
    weight = zero_outside(weight, batch.mask)
    return MethodOutput(loss=weighted_ascent(batch.logp, batch.mask, weight), token_weights=weight)
