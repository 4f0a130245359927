"""Gradient ascent (METHOD.md §2 `grad_ascent`)."""

from __future__ import annotations

from ..losses import weighted_ascent
from .base import ForgetBatch, MethodOutput, register


@register("grad_ascent", retain="none")
def grad_ascent(batch: ForgetBatch) -> MethodOutput:
    """Raise the NLL of every answer token equally, with no retain term: L_f = -mean_t ℓ_t.

    METHOD.md §2. The classic baseline (Jang et al., "Knowledge Unlearning for Mitigating Privacy
    Risks in Language Models", ACL 2023; the TOFU paper's GA). Unbounded: the loss runs away once
    the answer is forgotten, which is what saturation (§1) and the retain term are for.
    """
    return MethodOutput(
        loss=weighted_ascent(batch.logp, batch.mask), token_weights=batch.mask.clone()
    )
