"""Text rules shared by the loaders that derive forget spans (TOFU, RWKU): word keys, whole-word
matches, and the merge of overlapping candidate spans into the final non-overlapping ones."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from atwu_core.data.schema import Span

POSSESSIVE = re.compile(r"['’]s?$")  # "Marais's" -> "Marais"
QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”')  # straight or curly double quotes


def word_key(word: str) -> str:
    """How words are compared across texts: lowercase, possessive removed."""
    return POSSESSIVE.sub("", word).lower()


def whole_word(text: str, phrase: str) -> Iterable[tuple[int, int]]:
    """[start, end) of every occurrence of `phrase` in `text` not inside a longer word."""
    pattern = re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)")
    return ((m.start(), m.end()) for m in pattern.finditer(text))


def merge_spans(candidates: list[tuple[int, int, str]], priority: Sequence[str]) -> list[Span]:
    """Union overlapping (start, end, field) candidates; a merged span keeps the field of its
    longest member (ties: the field earlier in `priority`)."""
    ordered = sorted(candidates, key=lambda c: (c[0], -c[1], priority.index(c[2])))
    merged: list[list[Any]] = []  # [start, end, field, length of the field's member]
    for start, end, field in ordered:
        if merged and start < merged[-1][1]:
            cur = merged[-1]
            cur[1] = max(cur[1], end)
            if end - start > cur[3]:
                cur[2], cur[3] = field, end - start
        else:
            merged.append([start, end, field, end - start])
    return [Span(s, e, f) for s, e, f, _ in merged]
