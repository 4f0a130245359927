"""Fine-tuning: the full and retain models memorise the benchmark (ENVIRONMENT.md recipe)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch

from atwu_core.batches import (
    encode_items,
    gather_logp,
    rows_stream,
    seed_everything,
    shift,
    to_device,
    warmup_decay,
)
from atwu_core.config import FinetuneConfig
from atwu_core.data.encode import collate
from atwu_core.data.schema import QAItem
from atwu_core.losses import masked_mean


def finetune(
    model: torch.nn.Module,
    tokenizer,
    items: Sequence[QAItem],
    cfg: FinetuneConfig,
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, float]:
    """Answer-only NLL, AdamW, warm-up + cosine, clipping, dynamic padding (ENVIRONMENT.md)."""
    seed_everything(cfg.seed)
    device = next(model.parameters()).device
    encoded = encode_items(tokenizer, items)
    steps_per_epoch = math.ceil(len(encoded) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_decay(s, cfg.warmup_steps, total, cfg.min_lr_ratio)
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    stream = rows_stream(encoded, cfg.batch_size, gen)
    model.train()
    start, loss_value = time.perf_counter(), float("nan")
    for step in range(total):
        batch = to_device(collate(next(stream), tokenizer.pad_token_id), device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels, mask, _ = shift(batch)
        loss = -masked_mean(gather_logp(logits[:, :-1], labels), mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        sched.step()
        loss_value = loss.item()
        if progress is not None:
            progress(step + 1, total, loss_value)
    model.eval()
    return {"final_loss": loss_value, "steps": total, "seconds": time.perf_counter() - start}
