"""Gradient difference (METHOD.md §2 `grad_diff`)."""

from __future__ import annotations

from ..losses import weighted_ascent
from .base import ForgetBatch, MethodOutput, register


@register("grad_diff")
def grad_diff(batch: ForgetBatch) -> MethodOutput:
    """Raise the NLL of every answer token equally while the retain NLL is kept low: -mean_t ℓ_t.

    METHOD.md §2. Gradient ascent on the forget set plus the loop's retain term α·L_r (Liu et al.,
    "Continual Learning and Private Unlearning", CoLLAs 2022; TOFU's GradDiff baseline).
    """
    return MethodOutput(
        loss=weighted_ascent(batch.logp, batch.mask), token_weights=batch.mask.clone()
    )
