"""ATWU: alternating token-weighted unlearning, model step (METHOD.md §1)."""

from __future__ import annotations

import torch

from ..losses import check_hparam, masked_mean, weighted_ascent, zero_outside

# Imported under another name: `saturation` is also the hyperparameter users type.
from ..losses import saturation as saturation_factor
from ..space import LogFloat
from .base import ForgetBatch, MethodOutput, register

SATURATIONS = ("scaled", "plain", "none")


def plugin_weights(batch: ForgetBatch) -> torch.Tensor:
    """`w_t = 2·g_t` (B, T), zero off the answer: the plug-in weight, 1 for an undecided scorer.

    METHOD.md §1 "Plug-in form": the factor 2 makes the untrained scorer (g = 0.5) reproduce the
    unweighted base loss exactly.
    """
    return zero_outside(2.0 * batch.scorer_weights.detach(), batch.mask)


def saturated_ascent(
    method: str, batch: ForgetBatch, g: torch.Tensor, beta: float, saturation: str
) -> MethodOutput:
    """`L_f = -mean_t[g_t·ℓ_t·sg[p_t^(β·g_t)]]` for any token weights g (B, T) in [0, 1].

    One formula for ATWU (g learned), its frozen control (g = 0.5) and its oracle (g = span mask),
    so the three differ only in where g comes from. `saturation="plain"` uses `p_t^β`, `"none"`
    drops the factor (learned weights without saturation). Token weight = g.
    """
    check_hparam(
        method, "saturation", saturation, saturation in SATURATIONS, f"one of {SATURATIONS}"
    )
    check_hparam(method, "beta", beta, 0 <= beta < float("inf"), "finite and >= 0")
    g = zero_outside(g.detach(), batch.mask)  # (B, T)
    if saturation == "scaled":
        weight = g * saturation_factor(batch.logp, beta * g)
    elif saturation == "plain":
        weight = g * saturation_factor(batch.logp, beta)
    else:
        weight = g
    return MethodOutput(
        loss=weighted_ascent(batch.logp, batch.mask, weight),
        token_weights=g,
        parts={f"{method}/effective_weight": float(masked_mean(weight, batch.mask))},
    )


@register("atwu", needs=("scorer",), search={"beta": LogFloat(0.5, 20.0)})
def atwu(batch: ForgetBatch, *, beta: float = 5.0, saturation: str = "scaled") -> MethodOutput:
    """Ascend each token's NLL weighted by the learned g_t, fading it out once p_t is low.

    METHOD.md §1 model step: `L_f = -mean_t[g_t·ℓ_t·sg[p_t^(β·g_t)]]` with g from the frozen linear
    scorer (`atwu_core.scorer`), so tokens the scorer calls forget-specific (g → 1) are pushed and
    shared tokens (g → 0) are left to the retain term. Token weight = g.
    Yüce, Nikolaou, Flammarion, "Learning What to Forget: Improving LLM Unlearning via Learned
    Token-Level Importance", arXiv 2606.06320, 2026.
    """
    return saturated_ascent("atwu", batch, batch.scorer_weights, beta, saturation)
