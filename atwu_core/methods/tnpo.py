"""Token-level NPO (METHOD.md §2 `tnpo`)."""

from __future__ import annotations

import torch

from ..losses import check_hparam, weighted_ascent, zero_outside
from ..space import LogFloat
from .base import ForgetBatch, MethodOutput, register


@register("tnpo", needs=("ref_logp",), search={"beta": LogFloat(0.5, 20.0)})
def tnpo(batch: ForgetBatch, *, beta: float = 4.0) -> MethodOutput:
    """Ascend each token's NLL weighted by 2p^β/(p^β + p_ref^β): tokens not yet below the reference.

    METHOD.md §2: `L_f = -mean_t sg[2 p_t^β / (p_t^β + p_ref,t^β)]·ℓ_t`, NPO's gradient weight taken
    per token. The weight is 1 at the start (p = p_ref) and fades as p_t drops below p_ref,t.
    Computed as `2·σ(β·(log p_t - log p_ref,t))`, the same number without overflow. Token-level NPO
    as studied in Wang et al., ICLR 2025 and Yang et al., ICML 2025.
    """
    check_hparam("tnpo", "beta", beta, beta >= 0, ">= 0")
    mask = batch.mask
    logp, ref_logp = zero_outside(batch.logp.detach(), mask), zero_outside(batch.ref_logp, mask)
    log_ratio = logp - ref_logp  # (B, T)
    weight = zero_outside(2.0 * torch.sigmoid(beta * log_ratio), mask)  # (B, T)
    return MethodOutput(loss=weighted_ascent(batch.logp, mask, weight), token_weights=weight)
