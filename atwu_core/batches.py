"""Batches and statistics shared by fine-tuning, unlearning and the checks: encoding QA rows,
endless shuffled batch streams, the shifted next-token frame, and answer-token accuracy."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import TypeVar

import torch

from atwu_core.data.encode import Encoded, collate, encode_example
from atwu_core.data.schema import QAItem
from atwu_core.losses import token_logp

T = TypeVar("T")


def flush_denormals(device: torch.device) -> None:
    """On a CPU, compute subnormal floats (|x| < 1.2e-38) as zero. Once unlearning drives a
    forget answer's probabilities towards zero, softmax and its gradient fill with subnormals,
    which x86 CPUs handle ~190x slower (measured: a 1024x576 @ 576x576 matmul, 0.17 s -> 32 s);
    SmolLM2 LoRA steps slowed from 14 s to 40-100 s as the forget NLL passed ~20. Such values
    are far below anything a loss or weight can resolve. A process-wide setting; no-op off CPU."""
    if device.type == "cpu":
        torch.set_flush_denormal(True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def encode_items(
    tokenizer, items: Sequence[QAItem], max_length: int | None = None, answer: str = "answer"
) -> list[Encoded]:
    """Encode QA rows; `answer="paraphrased_answer"` encodes the paraphrase with its spans.

    Shared values (the benchmark's `shared_spans`: a gender, a year other authors have too) are
    named per token (`Encoded.span_field`) but are not forget spans."""
    prefix = "" if answer == "answer" else "paraphrased_"
    return [
        encode_example(
            tokenizer,
            item.question,
            getattr(item, answer),
            spans=getattr(item, f"{prefix}spans"),
            shared_spans=getattr(item, f"{prefix}shared_spans"),
            id=item.id,
            max_length=max_length,
        )
        for item in items
    ]


def rows_stream(
    rows: Sequence[T], batch_size: int, generator: torch.Generator
) -> Iterator[list[T]]:
    """Endless batches of exactly `batch_size` rows: shuffled epochs, each row once per epoch.

    A batch never comes up short at an epoch's end (it continues into the next permutation), so
    every batch splits evenly over data-parallel processes and accumulation micro-batches.
    """
    buffer: list[T] = []
    while True:
        order = torch.randperm(len(rows), generator=generator).tolist()
        buffer.extend(rows[j] for j in order)
        while len(buffer) >= batch_size:
            yield buffer[:batch_size]
            del buffer[:batch_size]


def shift(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets aligned with predictions: position t of the result is token t+1 of the input."""
    labels = batch["labels"][:, 1:]  # (B, T)
    mask = (labels != -100).float()  # (B, T)
    spans = batch["span_labels"][:, 1:].float() * mask  # (B, T)
    return labels, mask, spans


def gather_logp(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(label) (B, T) in fp32 (bf16 log-probs are too coarse for saturation factors)."""
    return token_logp(logits.float(), labels)[0]


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def warmup_decay(step: int, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up, then cosine decay to `floor` x the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def answer_stats(
    model: torch.nn.Module, encoded: Sequence[Encoded], pad_id: int, batch_size: int = 64
) -> dict[str, float]:
    """Teacher-forced answer NLL, probability exp(-NLL) and token accuracy, pooled over tokens.

    `span_acc` / `other_acc` split the accuracy into ground-truth forget-span tokens and the rest
    (template words): a token-level method should drive the first down and leave the second.
    """
    device = next(model.parameters()).device
    sums = dict.fromkeys(("nll", "correct", "count", "prob", "span_ok", "span_n", "other_ok"), 0.0)
    for i in range(0, len(encoded), batch_size):
        batch = to_device(collate(list(encoded[i : i + batch_size]), pad_id), device)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels, mask, spans = shift(batch)
        logp = gather_logp(logits[:, :-1], labels)  # (B, T)
        correct = (logits[:, :-1].argmax(-1) == labels).float() * mask  # (B, T)
        seq_nll = -(logp * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B,)
        sums["nll"] += -(logp * mask).sum().item()
        sums["correct"] += correct.sum().item()
        sums["count"] += mask.sum().item()
        sums["prob"] += torch.exp(-seq_nll).sum().item()
        sums["span_ok"] += (correct * spans).sum().item()
        sums["span_n"] += spans.sum().item()
        sums["other_ok"] += (correct * (1 - spans)).sum().item()
    n, n_span = sums["count"], sums["span_n"]
    stats = {
        "nll": sums["nll"] / n,
        "acc": sums["correct"] / n,
        "prob": sums["prob"] / len(encoded),
    }
    if n_span > 0:
        stats["span_acc"] = sums["span_ok"] / n_span
    if n - n_span > 0:
        stats["other_acc"] = sums["other_ok"] / (n - n_span)
    return stats
