"""UNDIAL: self-distillation with adjusted logits (METHOD.md §2 `undial`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import check_hparam, masked_mean, zero_outside
from ..space import LogFloat
from .base import ForgetBatch, MethodOutput, register


@register("undial", needs=("logits", "ref_logits"), search={"beta": LogFloat(1.0, 30.0)})
def undial(batch: ForgetBatch, *, beta: float = 10.0) -> MethodOutput:
    """Distil every answer token toward the reference distribution with the true token's logit cut.

    METHOD.md §2: target `q_t = softmax(z_ref,t - β·onehot(y_t))` (detached), loss
    `L_f = mean_t CE(q_t, softmax(z_θ,t)) = -mean_t Σ_v q_t,v·log p_θ(v | ·)`. Only the target
    token's mass moves (to the other tokens in the reference's proportions), so the loss is bounded
    below by the target's entropy and cannot run away. Dong et al., "UNDIAL: Self-Distillation with
    Adjusted Logits for Robust Unlearning in Large Language Models", NAACL 2025.
    """
    check_hparam("undial", "beta", beta, beta >= 0, ">= 0")
    if batch.labels is None:
        raise ValueError("method 'undial': ForgetBatch.labels is None, but it needs the target ids")
    mask = batch.mask
    labels = zero_outside(batch.labels, mask).clamp(min=0)  # (B, T); -100 on padding -> 0, masked
    ref = zero_outside(batch.ref_logits.detach(), mask)  # (B, T, V)
    onehot = F.one_hot(labels, ref.shape[-1]).to(ref.dtype)  # (B, T, V)
    target = torch.softmax(ref - beta * onehot, dim=-1)  # (B, T, V)
    log_q = torch.log_softmax(zero_outside(batch.logits, mask), dim=-1)  # (B, T, V)
    ce = -(target * log_q).sum(dim=-1)  # (B, T)
    return MethodOutput(loss=masked_mean(ce, mask), token_weights=mask.clone())
