"""Oracle: unlearning restricted to the ground-truth forget spans (METHOD.md §2 `oracle_mask`)."""

from __future__ import annotations

from ..losses import check_hparam, masked_mean, saturation, weighted_ascent, zero_outside
from ..space import Choice, LogFloat
from .base import ForgetBatch, MethodOutput, register


@register(
    "oracle_mask",
    needs=("span_mask",),
    search={"saturate": Choice((False, True)), "beta": LogFloat(0.5, 20.0)},
)
def oracle_mask(batch: ForgetBatch, *, saturate: bool = False, beta: float = 5.0) -> MethodOutput:
    """Ascend only the tokens inside the ground-truth forget spans: the upper bound for a scorer.

    METHOD.md §2: grad_diff `-mean ℓ_t` over span tokens (answer tokens with span label 1), or with
    `saturate=True` ATWU's saturated loss with g = 1 on spans, `-mean sg[p_t^β]·ℓ_t` (§1). Token
    weight = span mask. A batch whose answers hold no span token gives a zero loss (and gradient)
    rather than an error, since derived spans (e.g. on TOFU) can be empty for some answers.
    """
    check_hparam("oracle_mask", "beta", beta, beta >= 0, ">= 0")
    chosen = zero_outside(batch.span_mask, batch.mask)  # (B, T)
    weight = saturation(batch.logp, beta) if saturate else None
    return MethodOutput(
        loss=weighted_ascent(batch.logp, chosen, weight, allow_empty=True),
        token_weights=chosen,
        parts={"oracle/frac_span": float(masked_mean(chosen, batch.mask))},
    )
