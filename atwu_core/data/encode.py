"""Tokenisation and batching for training and evaluation, for any Hugging Face fast tokenizer.

A row becomes `chat_template(question) + answer tokens + end token`. The answer is tokenised on
its own (no special tokens) so its tokens carry character offsets into `answer`: that is what
maps ground-truth character spans to token labels (METHOD.md §4: a token is positive if it
overlaps a span). Only answer tokens and the end token are in the loss (METHOD.md notation:
prompt and padding are masked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import torch

from atwu_core.data.schema import Span

IGNORE_INDEX = -100  # label of positions outside the loss (prompt, padding): torch CE's default


@dataclass
class Encoded:
    """One tokenised QA row. `answer_offsets` and `in_span` have one entry per answer token."""

    id: str
    input_ids: list[int]  # prompt ids + answer ids (+ end id)
    answer_start: int  # index in input_ids of the first answer token
    answer_offsets: list[tuple[int, int]]  # char offsets of each answer token inside `answer`;
    # the appended end token gets (len(answer), len(answer))
    in_span: list[bool]  # per answer token: overlaps any span (half-open intervals)
    # per answer token: the field of the span it overlaps ("" for template words); shared values
    # (a field other authors have too) are named but not in `in_span`
    span_field: list[str] = dataclass_field(default_factory=list)
    is_end: list[bool] = dataclass_field(default_factory=list)  # per answer token: the end token


def token_span_labels(
    offsets: Sequence[tuple[int, int]], spans: Sequence[Span | tuple[int, int]]
) -> list[bool]:
    """Per token: does `[start, end)` share at least one character with a span `[a, b)`?

    Half-open overlap is `max(start, a) < min(end, b)`: a token that only touches a span's
    boundary, or has no width (special tokens, the end token), is negative. METHOD.md §4.
    """
    bounds = [(s.start, s.end) if isinstance(s, Span) else (s[0], s[1]) for s in spans]
    return [any(max(start, a) < min(end, b) for a, b in bounds) for start, end in offsets]


def token_span_fields(
    offsets: Sequence[tuple[int, int]],
    spans: Sequence[Span],
    shared_spans: Sequence[Span] = (),
) -> list[str]:
    """Per token: the `field` of the first span it overlaps (forget spans first, then shared
    spans), or "" for a token outside every span. Same overlap rule as `token_span_labels`."""
    out = []
    for start, end in offsets:
        hit = next(
            (s.field for s in (*spans, *shared_spans) if max(start, s.start) < min(end, s.end)),
            "",
        )
        out.append(hit)
    return out


def _as_id_list(out: Any) -> list[int]:
    """`apply_chat_template(tokenize=True)` output as a flat list of ints.

    transformers v5 returns a `BatchEncoding` (a Mapping with "input_ids"); v4 a list; either may
    be nested one level for a batch of one, or be a tensor.
    """
    if isinstance(out, Mapping):
        out = out["input_ids"]
    if hasattr(out, "tolist"):
        out = out.tolist()
    out = list(out)
    if out and isinstance(out[0], (list, tuple)):
        if len(out) != 1:
            raise ValueError(f"expected the ids of one conversation, got a batch of {len(out)}")
        out = list(out[0])
    return [int(i) for i in out]


def _check_fast(tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{type(tokenizer).__name__} is not a fast tokenizer: character offsets (needed to "
            "map spans to tokens) require a fast tokenizer; load it with use_fast=True or wrap a "
            "`tokenizers.Tokenizer` in PreTrainedTokenizerFast"
        )


def prompt_ids(tokenizer: Any, question: str) -> list[int]:
    """The chat-formatted user turn plus the generation prompt (the assistant header)."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"{type(tokenizer).__name__} has no chat template: set tokenizer.chat_template "
            "(a Jinja string) before encoding"
        )
    out = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True
    )
    return _as_id_list(out)


def encode_example(
    tokenizer: Any,
    question: str,
    answer: str,
    spans: Sequence[Span | tuple[int, int]] = (),
    id: str = "",
    add_end: bool = True,
    max_length: int | None = None,
    shared_spans: Sequence[Span] = (),
) -> Encoded:
    """Tokenise one QA row; truncation drops answer tokens from the end to fit `max_length`.

    A truncated answer also loses its end token: the model must not learn to stop mid-answer.
    """
    _check_fast(tokenizer)
    if max_length is not None and (
        not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1
    ):
        raise ValueError(f"{id or 'row'}: max_length must be a positive int, got {max_length!r}")
    prompt = prompt_ids(tokenizer, question)
    enc = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    answer_ids = [int(i) for i in enc["input_ids"]]
    offsets = [(int(s), int(e)) for s, e in enc["offset_mapping"]]
    is_end = [False] * len(answer_ids)
    if add_end:
        if tokenizer.eos_token_id is None:
            raise ValueError(f"{id or 'row'}: add_end=True but the tokenizer has no eos_token")
        answer_ids.append(int(tokenizer.eos_token_id))
        offsets.append((len(answer), len(answer)))
        is_end.append(True)
    if max_length is not None:
        keep = max_length - len(prompt)
        if keep < 1:
            raise ValueError(
                f"{id or 'row'}: max_length={max_length} leaves no room for the answer after a "
                f"{len(prompt)}-token prompt"
            )
        answer_ids, offsets, is_end = answer_ids[:keep], offsets[:keep], is_end[:keep]
    return Encoded(
        id=id,
        input_ids=prompt + answer_ids,
        answer_start=len(prompt),
        answer_offsets=offsets,
        in_span=token_span_labels(offsets, spans),
        span_field=token_span_fields(
            offsets, [s for s in spans if isinstance(s, Span)], shared_spans
        ),
        is_end=is_end,
    )


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch. Labels are the input ids on answer (+ end) tokens, -100 elsewhere.

    Returns "input_ids", "attention_mask", "labels" (long) and "span_labels" (float, 1 on answer
    tokens inside a span), all (B, L) and aligned on input positions; the training loop shifts
    labels and span_labels by one for next-token prediction.
    """
    if not batch:
        raise ValueError("collate: empty batch")
    width = max(len(ex.input_ids) for ex in batch)  # L
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, L)
    attention = torch.zeros((len(batch), width), dtype=torch.long)  # (B, L)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)  # (B, L)
    span_labels = torch.zeros((len(batch), width), dtype=torch.float)  # (B, L)
    for b, ex in enumerate(batch):
        n, start = len(ex.input_ids), ex.answer_start
        if len(ex.in_span) != n - start:
            raise ValueError(
                f"collate: example {ex.id!r} has {len(ex.in_span)} span labels for "
                f"{n - start} answer tokens"
            )
        ids = torch.tensor(ex.input_ids, dtype=torch.long)  # (n,)
        input_ids[b, :n] = ids
        attention[b, :n] = 1
        labels[b, start:n] = ids[start:]
        span_labels[b, start:n] = torch.tensor(ex.in_span, dtype=torch.float)
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "span_labels": span_labels,
    }
