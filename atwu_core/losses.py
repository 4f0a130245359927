"""Pure per-token tensor helpers shared by every unlearning method (METHOD.md §1–2).

Conventions. Tensors are aligned on target positions: `logp[b, t] = log p_θ(y_t | x, y_<t)` and
`mask[b, t]` is 1 on answer tokens, 0 on prompt and padding. `mean_t` is the mean over the answer
tokens of the whole batch; `mean_i` the mean over sequences. Every helper zeroes its inputs outside
the mask with `torch.where` *before* any arithmetic, so padding values (even inf or NaN) never reach
a result and the gradient at a masked position is exactly zero.

Nothing here knows about methods; a formula used by two methods lives here once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # label value of prompt and padding positions (Hugging Face convention)


def zero_outside(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x` where `mask` is 1, exact zeros elsewhere; `mask` (B, T) broadcasts over trailing dims."""
    keep = mask > 0  # (B, T)
    keep = keep.reshape(*keep.shape, *([1] * (x.dim() - keep.dim())))  # (B, T, 1...)
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


def masked_mean(x: torch.Tensor, mask: torch.Tensor, *, allow_empty: bool = False) -> torch.Tensor:
    """`mean_t x` over the tokens where `mask` is 1 (METHOD.md notation), a scalar.

    An empty mask is a loop bug unless the caller says otherwise (`allow_empty=True` returns a zero
    that is still in the graph, for losses restricted to a subset that may be empty).
    """
    if x.shape != mask.shape:
        raise ValueError(f"masked_mean: x shape {tuple(x.shape)} != mask shape {tuple(mask.shape)}")
    count = mask.sum()
    if count == 0 and not allow_empty:
        raise ValueError("masked_mean: mask selects no tokens (a batch without answer tokens?)")
    return zero_outside(x, mask).sum() / count.clamp(min=1)


def token_logp(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each label, `(logp (B, T), mask (B, T))`; `ignore_index` positions get 0.

    `logits[b, t]` must already predict `labels[b, t]` (shift a causal LM's outputs by one first).
    Uses `cross_entropy(reduction="none")`, which never materialises the (B, T, V) log-softmax.
    """
    if logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(labels.shape):
        raise ValueError(
            f"token_logp: logits {tuple(logits.shape)} must be (B, T, V) with labels (B, T) = "
            f"{tuple(labels.shape)}"
        )
    mask = (labels != ignore_index).to(logits.dtype)  # (B, T)
    nll = F.cross_entropy(
        logits.flatten(0, 1), labels.flatten(), ignore_index=ignore_index, reduction="none"
    )  # (B*T,), 0 where ignored
    return -nll.view(labels.shape), mask


def sequence_logp(
    logp: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """`Σ_t w_t·log p_t` per sequence (B,): log π(y|x) when `weight` is None (NPO, DPO).

    `weight` (B, T) is treated as a constant (stop-gradient), as in ATWU's plug-in NPO (§1).
    """
    if weight is not None:
        logp = zero_outside(weight.detach(), mask) * zero_outside(logp, mask)
    return zero_outside(logp, mask).sum(dim=-1)  # (B,)


def sequence_lengths(mask: torch.Tensor) -> torch.Tensor:
    """Number of answer tokens per sequence (B,), at least 1 so it can divide."""
    return mask.sum(dim=-1).clamp(min=1)


def sequence_mean_nll(
    logp: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Length-normalised NLL per sequence (B,): `-Σ_t w_t·log p_t / |y|` (SimNPO, METHOD.md §2).

    With a `weight` the normaliser is still the token count |y|, not `Σ w`, so a weight scales the
    token's push instead of being renormalised away (ATWU plug-in SimNPO, §1).
    """
    return -sequence_logp(logp, mask, weight) / sequence_lengths(mask)


def mean_over_sequences(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`mean_i values_i` over the sequences that have at least one answer token, a scalar."""
    has_tokens = (mask.sum(dim=-1) > 0).to(values.dtype)  # (B,)
    if has_tokens.sum() == 0:
        raise ValueError("mean_over_sequences: no sequence has an answer token")
    return zero_outside(values, has_tokens).sum() / has_tokens.sum()


def saturation(logp: torch.Tensor, exponent: float | torch.Tensor) -> torch.Tensor:
    """`sg[p^exponent]` = `exp(exponent·log p)`, detached: the factor fading out forgotten tokens.

    `exponent` is a float (WGA's β) or a (B, T) tensor (ATWU's β·g_t, METHOD.md §1).
    """
    return torch.exp(exponent * logp.detach()).detach()


def weighted_ascent(
    logp: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    allow_empty: bool = False,
) -> torch.Tensor:
    """`-mean_t sg[w_t]·ℓ_t` = `mean_t sg[w_t]·log p_t`: the minimised token-weighted ascent loss.

    `weight=None` is plain gradient ascent (METHOD.md §2 `grad_ascent`/`grad_diff`); WGA, SatImp,
    TNPO and ATWU only differ in the (stop-gradient) weight they pass.
    """
    if weight is not None:
        logp = zero_outside(weight.detach(), mask) * zero_outside(logp, mask)
    return masked_mean(logp, mask, allow_empty=allow_empty)


def npo_loss(log_ratio: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO, `(2/β)·mean_i log(1 + exp(β·r_i))` with `r_i = log π_θ(y_i) - log π_ref(y_i)` (§2).

    `softplus` is the stable `log(1 + exp(·))`. `mask` only decides which sequences count.
    """
    return mean_over_sequences(F.softplus(beta * log_ratio), mask) * (2.0 / beta)


def simnpo_loss(
    mean_nll: torch.Tensor, mask: torch.Tensor, beta: float, delta: float
) -> torch.Tensor:
    """SimNPO, `-(2/β)·mean_i log σ(β·(NLL_i/|y_i| - δ))` on length-normalised NLLs (§2)."""
    return -mean_over_sequences(F.logsigmoid(beta * (mean_nll - delta)), mask) * (2.0 / beta)


def check_hparam(method: str, name: str, value: float, ok: bool, rule: str) -> None:
    """Raise the ValueError every method uses for an out-of-range hyperparameter."""
    if not ok:
        raise ValueError(f"method {method!r}: hyperparameter {name}={value!r} must be {rule}")
