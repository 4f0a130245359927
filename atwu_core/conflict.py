"""Retain conflict of each forget token: `cos(∇θ ℓ_t, ∇θ L_r)` on the starting model.

This is the quantity ATWU's scorer learns to avoid without ever computing it (METHOD.md §1). Ascent
on `ℓ_t` moves θ along `∇θ ℓ_t`, which changes `L_r` by about `η·∇θ ℓ_t·∇θ L_r`: a clearly positive
cosine means raising `ℓ_t` also raises the retain loss (a token shared with retain data, like
template words, that `L_r` pulls back), a cosine near 0 means the token can be forgotten on its own
(forget-specific). It is too expensive to train with (one backward per token), but cheap enough
for a handful of probe examples, where it is a per-token reference the learned weights can be
compared against (the `conflict` column of `token_weights.parquet`, docs/FORMATS.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from atwu_core.batches import to_device
from atwu_core.cache import cached_value
from atwu_core.data.encode import collate
from atwu_core.losses import token_logp

_KEYS = ("input_ids", "attention_mask", "labels")


def _check_batch(batch: Mapping[str, torch.Tensor], name: str) -> None:
    for key in _KEYS:
        if key not in batch:
            raise ValueError(f"{name} lacks {key!r} (expected a collate() dict with {_KEYS})")
    shape = batch["input_ids"].shape
    if len(shape) != 2:
        raise ValueError(f"{name}['input_ids'] must be (B, T), got shape {tuple(shape)}")
    for key in _KEYS[1:]:
        if batch[key].shape != shape:
            raise ValueError(
                f"{name}[{key!r}] has shape {tuple(batch[key].shape)}, input_ids has {tuple(shape)}"
            )
    attn = batch["attention_mask"]
    lengths = attn.sum(dim=1, keepdim=True)  # (B, 1)
    right_padded = torch.arange(shape[1], device=attn.device).unsqueeze(0) < lengths  # (B, T)
    if not torch.equal(attn.bool(), right_padded):
        raise ValueError(f"{name}['attention_mask'] must be right-padded (ones, then zeros)")
    # Position 0 has no preceding token to predict it from, so only labels from 1 on count.
    if not (batch["labels"][:, 1:] != -100).any():
        raise ValueError(f"{name} has no answer token (every label is -100)")


def _token_nll(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token `ℓ_t` for the labels of input positions 1..T-1, and their answer mask (bool).

    Labels are unshifted (collate's convention): label t is predicted by the logits at t-1.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, T, V)
    logp, mask = token_logp(logits[:, :-1].float(), labels[:, 1:])  # (B, T-1) each
    return -logp, mask > 0


def retain_conflict(
    model: torch.nn.Module,
    forget_batch: Mapping[str, torch.Tensor],
    retain_batch: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """Cosine between each forget answer token's gradient and the retain-loss gradient.

    Both batches are `atwu_core.data.encode.collate` dicts (right-padded, labels -100 outside the
    answer). `L_r` is the mean NLL over all answer tokens of `retain_batch` (METHOD.md notation).
    Returns a (B, T) float tensor aligned with `forget_batch["labels"]`: entry `[b, t]` is
    `cos(∇θ ℓ, ∇θ L_r)` for the answer token at input position t, and 0 where the label is -100.
    Gradients are over every parameter with `requires_grad`; the model's `.grad` fields and its
    train/eval mode are left as they were. A token whose gradient vanishes gets 0.
    """
    _check_batch(forget_batch, "forget_batch")
    _check_batch(retain_batch, "retain_batch")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameter with requires_grad=True: no gradient to compare")
    device = params[0].device

    def flat_grad(loss: torch.Tensor, retain_graph: bool) -> torch.Tensor:
        grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
        return torch.cat(
            [
                (torch.zeros_like(p) if g is None else g).reshape(-1)
                for g, p in zip(grads, params, strict=True)
            ]
        )  # (P,)

    was_training = model.training
    # eval(): no dropout, so the gradient is a property of the starting model, not of a mask draw.
    model.eval()
    try:
        with torch.enable_grad():
            nll_r, mask_r = _token_nll(
                model, *(retain_batch[k].to(device) for k in _KEYS)
            )  # (B_r, T_r-1)
            grad_r = flat_grad(nll_r[mask_r].mean(), retain_graph=False)  # (P,)
            norm_r = grad_r.norm()

            ids, attn, labels = (forget_batch[k].to(device) for k in _KEYS)
            out = torch.zeros(ids.shape, dtype=torch.float32, device=device)  # (B, T)
            for b in range(ids.shape[0]):
                # One example at a time, cut to its length: each backward then costs one
                # sequence's graph instead of the whole padded batch's.
                length = int(attn[b].sum())
                nll_b, mask_b = _token_nll(
                    model,
                    ids[b : b + 1, :length],
                    attn[b : b + 1, :length],
                    labels[b : b + 1, :length],
                )  # (1, length-1)
                positions = mask_b[0].nonzero().flatten().tolist()
                for i, t in enumerate(positions):
                    grad_t = flat_grad(nll_b[0, t], retain_graph=i < len(positions) - 1)  # (P,)
                    denom = grad_t.norm() * norm_r
                    if denom > 0:
                        # Label index t+1: nll position t predicts the token at input position t+1.
                        out[b, t + 1] = torch.dot(grad_t, grad_r) / denom
    finally:
        model.train(was_training)
    return out.clamp(-1.0, 1.0)


def probe_conflict(model, probe, retain_watch, pad, config) -> dict[tuple[str, int], float]:
    """Retain conflict cos(∇θ ℓ_t, ∇θ L_r) of each probe answer token on the starting model.

    It depends only on the starting model and the probe/retain rows, not on the method, so it is
    cached by content hash next to the reference evaluations (a few seconds saved per run).
    """

    def compute() -> dict[str, Any]:
        device = next(model.parameters()).device
        fbatch = to_device(collate(probe, pad), device)
        rbatch = to_device(collate(list(retain_watch), pad), device)
        cos = retain_conflict(model, fbatch, rbatch).cpu()  # (B, L) aligned with labels
        return {
            f"{enc.id}\t{pos}": cos[b, enc.answer_start + pos].item()
            for b, enc in enumerate(probe)
            for pos in range(len(enc.input_ids) - enc.answer_start)
        }

    settings = {"conflict": [e.id for e in probe], "retain": [e.id for e in retain_watch]}
    values = cached_value(config.model, config.data, settings, compute)
    return {(k.split("\t")[0], int(k.split("\t")[1])): v for k, v in values.items()}
