"""Negative Preference Optimization (METHOD.md §2 `npo`)."""

from __future__ import annotations

from ..losses import check_hparam, npo_loss, sequence_logp
from ..space import LogFloat
from .base import ForgetBatch, MethodOutput, register


@register("npo", needs=("ref_logp",), search={"beta": LogFloat(0.02, 1.0)})
def npo(batch: ForgetBatch, *, beta: float = 0.1) -> MethodOutput:
    """Push each answer's sequence probability below the reference model's, with a bounded loss.

    METHOD.md §2: `L_f = (2/β)·mean_i log(1 + (π_θ(y_i|x_i)/π_ref(y_i|x_i))^β)` on sequence-summed
    log-probs; every answer token gets the same weight inside a sequence. Zhang et al., "Negative
    Preference Optimization: From Catastrophic Collapse to Effective Unlearning", COLM 2024.
    As β → 0 its gradient tends to gradient ascent's; the softplus keeps it from running away.
    """
    check_hparam("npo", "beta", beta, beta > 0, "> 0")
    log_ratio = sequence_logp(batch.logp, batch.mask) - sequence_logp(batch.ref_logp, batch.mask)
    return MethodOutput(
        loss=npo_loss(log_ratio, batch.mask, beta),
        token_weights=batch.mask.clone(),
        parts={"npo/log_ratio": float(log_ratio.detach().mean())},
    )
