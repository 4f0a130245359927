"""Representation Misdirection for Unlearning (METHOD.md §2 `rmu`)."""

from __future__ import annotations

import torch

from ..losses import check_hparam, masked_mean, zero_outside
from ..space import LogFloat
from .base import ForgetBatch, MethodOutput, register


def rmu_direction(dim: int, seed: int) -> torch.Tensor:
    """The fixed random unit vector `u` (D,), float32: the same for the same (dim, seed).

    Drawn like the original RMU code (uniform in [0, 1)^D, then normalised) from a private
    generator, so it neither depends on nor disturbs the global RNG; regenerating it each step
    costs microseconds.
    """
    u = torch.rand(dim, generator=torch.Generator().manual_seed(seed))  # (D,)
    return u / u.norm()


def _mean_sq_dist(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`mean_t ‖h_t - target_t‖²`: squared L2 over D, mean over answer tokens; target broadcasts."""
    diff = zero_outside(hidden, mask) - zero_outside(target.expand_as(hidden), mask)  # (B, T, D)
    return masked_mean(diff.pow(2).sum(dim=-1), mask)  # sum over D, then mean_t


def rmu_retain_loss(
    hidden: torch.Tensor, ref_hidden: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """RMU's retain term `mean_t ‖h_θ,t - h_ref,t‖²` on retain tokens at the same layer (§2).

    The loop adds `α·rmu_retain_loss(...)` in place of the NLL retain term (registered below).
    """
    if hidden.shape != ref_hidden.shape or hidden.dim() != 3 or hidden.shape[:2] != mask.shape:
        raise ValueError(
            f"rmu_retain_loss: hidden {tuple(hidden.shape)} and ref_hidden "
            f"{tuple(ref_hidden.shape)} must both be (B, T, D) with mask (B, T) = "
            f"{tuple(mask.shape)}"
        )
    return _mean_sq_dist(hidden, ref_hidden.detach(), mask)


@register(
    "rmu",
    needs=("hidden",),
    retain="hidden",
    retain_term=rmu_retain_loss,
    layer_hparam="layer",
    search={"steering_coeff": LogFloat(1.0, 100.0)},
)
def rmu(
    batch: ForgetBatch, *, steering_coeff: float = 10.0, layer: int = 1, seed: int = 0
) -> MethodOutput:
    """Steer the hidden state of every answer token at one layer onto a fixed random vector c·u.

    METHOD.md §2: `L_f = mean_t ‖h^(l)_t - c·u‖²` (squared L2 over the hidden dimension), with the
    retain term `rmu_retain_loss` on retain tokens. Li et al., "The WMDP Benchmark: Measuring and
    Reducing Malicious Use With Unlearning", ICML 2024. `layer` indexes `outputs.hidden_states`
    (0 = embeddings, 1 = after the first block); registered as `layer_hparam`, so the loop reads
    it to pick `batch.hidden` and the retain term's states.

    Steering coefficient: the paper tunes c per model and layer (6.5 for Zephyr-7B), larger where
    activations are larger, so that the target c·u lies well away from the natural activations
    and reaching it scrambles what later layers read. On a memorised 2-layer
    Llama with hidden size 128 we measured mean token norms of about 2.6 after the first block
    (layer 1) and about 15 after the final RMSNorm (the last entry of `hidden_states`). c = 10 is
    about four times the layer-1 norm and of the order of the normalised states: the forget tokens
    are pushed far off their representation, while the loss (initially ≈ c² = 100) does not swamp
    the retain term by orders of magnitude.
    """
    check_hparam("rmu", "steering_coeff", steering_coeff, steering_coeff > 0, "> 0")
    hidden = batch.hidden  # (B, T, D)
    target = steering_coeff * rmu_direction(hidden.shape[-1], seed).to(hidden)  # (D,)
    loss = _mean_sq_dist(hidden, target, batch.mask)
    norms = zero_outside(hidden.detach(), batch.mask).norm(dim=-1)  # (B, T)
    return MethodOutput(
        loss=loss,
        token_weights=batch.mask.clone(),
        parts={"rmu/hidden_norm": float(masked_mean(norms, batch.mask))},
    )
