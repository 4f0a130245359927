"""Entropy-guided token weighting (METHOD.md §2 `etw`)."""

from __future__ import annotations

import torch

from ..losses import check_hparam, masked_mean, weighted_ascent, zero_outside
from ..space import LogFloat
from .atwu_npo import per_sequence_renormalised
from .base import ForgetBatch, MethodOutput, register


def predictive_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`H_t = -Σ_v p_v log p_v` (B, T) of the model's distribution at each answer position, in nats.

    Detached and in fp32; exact zeros off the answer (padding logits, even NaN, never reach it).
    """
    logq = torch.log_softmax(zero_outside(logits.detach().float(), mask), dim=-1)  # (B, T, V)
    return zero_outside(-(logq.exp() * logq).sum(dim=-1), mask)  # (B, T)


@register("etw", needs=("logits",), search={"gamma": LogFloat(0.25, 4.0)})
def etw(batch: ForgetBatch, *, gamma: float = 1.0) -> MethodOutput:
    """Ascend each token's NLL weighted by its predictive entropy H^γ, mean 1 per sequence.

    METHOD.md §2: `L_f = -mean_t w_t·ℓ_t` with `w_t = sg[H_t^γ]` renormalised per sequence to
    mean 1 over its answer tokens, `H_t` the entropy of the current model's next-token
    distribution at t; the loop adds the retain NLL (gradient-difference form). No reference.
    Koh et al., "Forget What Matters, Keep the Rest: Selective Unlearning of Informative Tokens",
    ACL 2026 (arXiv 2604.17785). Our reading of the paper's description, which we could not
    download: the exponent γ, the per-sequence mean-1 renormalisation (so the loss scale matches
    plain ascent), the stop-gradient on w, entropy in nats from the same logits that give ℓ_t,
    and the gradient-difference base are our choices. A sequence whose entropies are all 0 gets
    weight 0. Token weight = the renormalised w itself (mean 1, may exceed 1, like `atwu_npo`).
    """
    check_hparam("etw", "gamma", gamma, gamma > 0, "> 0")
    entropy = predictive_entropy(batch.logits, batch.mask)  # (B, T)
    weight = per_sequence_renormalised(entropy.pow(gamma), batch.mask)  # (B, T), detached
    return MethodOutput(
        loss=weighted_ascent(batch.logp, batch.mask, weight),
        token_weights=weight,
        parts={"etw/entropy": float(masked_mean(entropy, batch.mask))},
    )
