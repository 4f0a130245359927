"""SeUL-style selective unlearning with an online hard mask (METHOD.md §2 `seul`)."""

from __future__ import annotations

import itertools

import torch

from ..losses import check_hparam, masked_mean, weighted_ascent
from ..space import Float, Int
from .base import ForgetBatch, MethodOutput, register


def seul_mask(logp: torch.Tensor, mask: torch.Tensor, k: float, max_gap: int) -> torch.Tensor:
    """The hard token mask (B, T) float {0, 1} SeUL ascends on, from log-probs alone.

    Per sequence, over its answer tokens in order: select tokens with `log p_t < μ - k·σ` (mean and
    population std of that sequence's answer log-probs), then fill runs of at most `max_gap`
    unselected tokens lying between two selected ones (a name split into sub-word pieces has its
    easy middle piece filled in). A sequence that selects nothing selects its lowest-log-prob token,
    so the loss is never empty. Sequences without answer tokens select nothing.
    """
    logp = logp.detach()
    out = torch.zeros_like(mask)  # (B, T)
    for b in range(logp.shape[0]):
        pos = torch.nonzero(mask[b] > 0).flatten()  # (n,) answer positions, in order
        if pos.numel() == 0:
            continue
        vals = logp[b, pos]  # (n,)
        chosen = vals < vals.mean() - k * vals.std(unbiased=False)  # (n,) bool
        if not bool(chosen.any()):
            chosen[vals.argmin()] = True
        picked = torch.nonzero(chosen).flatten().tolist()  # indices into the answer, ascending
        for left, right in itertools.pairwise(picked):
            if right - left - 1 <= max_gap:
                chosen[left + 1 : right] = True
        out[b, pos[chosen]] = 1.0
    return out


@register("seul", search={"k": Float(0.0, 2.0), "max_gap": Int(0, 3)})
def seul(batch: ForgetBatch, *, k: float = 1.0, max_gap: int = 1) -> MethodOutput:
    """Ascend only the tokens the model finds unusually hard to predict (low log p), gaps filled.

    METHOD.md §2 (hard mask): grad_diff, i.e. `-mean ℓ_t` over the selected tokens only, with the
    mask from `seul_mask` recomputed every step from the current log-probs; token weight = mask.
    After Wang et al., "Selective Forgetting: Advancing Machine Unlearning Techniques and
    Evaluation in Language Models", AAAI 2025 (arXiv 2402.05813), whose online span selection uses
    language-model probability scores: low-probability tokens carry the specific facts.
    """
    check_hparam("seul", "max_gap", max_gap, max_gap >= 0, ">= 0")
    chosen = seul_mask(batch.logp, batch.mask, k, max_gap)  # (B, T)
    return MethodOutput(
        loss=weighted_ascent(batch.logp, chosen),
        token_weights=chosen,
        parts={"seul/frac_selected": float(masked_mean(chosen, batch.mask))},
    )
