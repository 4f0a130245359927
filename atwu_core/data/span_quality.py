"""How good are derived TOFU forget spans? Measured against the independent entity annotation
(`atwu_core.data.entity_spans`, docs/DATA.md "TOFU spans"). Pure: no torch, no files.

The annotation marks one key entity per answer and leaves names in the answer's prefix unmarked,
so the honest numbers are recall-style. `precision` here is the share of derived-span characters
that lie in the entity or in the author's name: it under-counts true precision, because a correct
span on a second fact of the answer counts as a miss.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from atwu_core.data.schema import QAItem, Span
from atwu_core.data.span_rules import whole_word

# An entity counts as found when at least this share of its characters lies inside derived spans.
FOUND_SHARE = 0.5


def _mask(length: int, spans: Iterable[tuple[int, int]]) -> list[bool]:
    mask = [False] * length
    for start, end in spans:
        for k in range(max(start, 0), min(end, length)):
            mask[k] = True
    return mask


def _name_ranges(text: str, name: str) -> list[tuple[int, int]]:
    """The author's full name and each name word of >= 2 letters, wherever they stand alone."""
    if not name:
        return []
    words = [w.strip("()") for w in name.split()]
    phrases = [name, *(w for w in words if len(w) >= 2 and w[:1].isupper())]
    return [r for p in phrases for r in whole_word(text, p)]


@dataclass(frozen=True)
class SpanQuality:
    n_answers: int
    n_annotated: int
    entity_recall: float  # share of entities with >= FOUND_SHARE of their characters in spans
    char_recall: float  # entity characters in spans / entity characters
    marked_share: float  # answer characters in spans / answer characters
    n_name_only: int  # answers whose spans (if any) are all inside the author's name
    precision: float  # span characters in the entity or the name / span characters

    def lines(self, label: str) -> list[str]:
        return [
            f"{label}: {self.n_answers} answers, {self.n_annotated} with an annotated entity",
            f"  entity recall (>= {FOUND_SHARE:.0%} of chars in spans): {self.entity_recall:.3f}",
            f"  entity character recall:                      {self.char_recall:.3f}",
            f"  answer characters marked:                     {self.marked_share:.3f}",
            f"  answers with no span beyond the author's name: {self.n_name_only}",
            f"  'precision' (span chars in entity or name):   {self.precision:.3f}"
            "  (under-counts: one entity per answer is annotated)",
        ]


def span_quality(
    items: Sequence[QAItem], spans: Mapping[str, Sequence[Span]], entities: Mapping[str, Span]
) -> SpanQuality:
    """Quality of derived `spans` (by item id) against `entities` (one Span per annotated id).

    Items without an entity still count in `marked_share`, `n_name_only` and `precision` (their
    span characters can only be credited when they lie in the author's name).
    """
    found = ent_chars = ent_hit = marked = total = name_only = span_chars = credited = 0
    for item in items:
        text = item.answer
        derived = [(s.start, s.end) for s in spans.get(item.id, [])]
        in_span = _mask(len(text), derived)
        names = _name_ranges(text, item.author)
        in_name = _mask(len(text), names)
        entity = entities.get(item.id)
        in_entity = _mask(len(text), [(entity.start, entity.end)] if entity else [])
        total += len(text)
        marked += sum(in_span)
        span_chars += sum(in_span)
        credited += sum(s and (n or e) for s, n, e in zip(in_span, in_name, in_entity, strict=True))
        # Name-only: every marked character is a name character (or nothing is marked).
        if not any(s and not n for s, n in zip(in_span, in_name, strict=True)):
            name_only += 1
        if entity is not None:
            hit = sum(in_span[entity.start : entity.end])
            ent_chars += entity.end - entity.start
            ent_hit += hit
            found += hit >= FOUND_SHARE * (entity.end - entity.start)
    n_annotated = sum(item.id in entities for item in items)
    return SpanQuality(
        n_answers=len(items),
        n_annotated=n_annotated,
        entity_recall=found / n_annotated if n_annotated else 0.0,
        char_recall=ent_hit / ent_chars if ent_chars else 0.0,
        marked_share=marked / total if total else 0.0,
        n_name_only=name_only,
        precision=credited / span_chars if span_chars else 0.0,
    )


_ID = re.compile(r"^forget10-(\d{4})$")


def forget10_halves(items: Sequence[QAItem]) -> dict[str, list[QAItem]]:
    """forget10's rows split where the rule was tuned (idx 0-199: its first 10 authors) and where
    it was not (idx 200-399), plus all 400."""

    def idx(item: QAItem) -> int:
        m = _ID.match(item.id)
        if not m:
            raise ValueError(f"{item.id} is not a forget10 row id")
        return int(m.group(1))

    return {
        "tune (idx 0-199)": [it for it in items if idx(it) < 200],
        "held out (idx 200-399)": [it for it in items if idx(it) >= 200],
        "all (idx 0-399)": list(items),
    }
