"""SimNPO (METHOD.md §2 `simnpo`)."""

from __future__ import annotations

from ..losses import check_hparam, sequence_mean_nll, simnpo_loss
from ..space import Float, LogFloat
from .base import ForgetBatch, MethodOutput, register


@register("simnpo", search={"beta": LogFloat(1.0, 10.0), "delta": Float(0.0, 2.0)})
def simnpo(batch: ForgetBatch, *, beta: float = 4.5, delta: float = 0.0) -> MethodOutput:
    """Raise each answer's length-normalised NLL through a bounded, reference-free NPO loss.

    METHOD.md §2: `L_f = -(2/β)·mean_i log σ(β·(NLL_θ(y_i)/|y_i| - δ))`, all tokens of a sequence
    weighted equally. Fan et al., "Simplicity Prevails: Rethinking Negative Preference Optimization
    for LLM Unlearning", 2024 (δ is their reward margin γ, here divided by β as in open-unlearning).
    """
    check_hparam("simnpo", "beta", beta, beta > 0, "> 0")
    mean_nll = sequence_mean_nll(batch.logp, batch.mask)  # (B,)
    return MethodOutput(
        loss=simnpo_loss(mean_nll, batch.mask, beta, delta),
        token_weights=batch.mask.clone(),
        parts={"simnpo/mean_nll": float(mean_nll.detach().mean())},
    )
