"""An independent ground truth for TOFU forget10: one key entity per answer (docs/DATA.md,
"Independent entity spans (TOFU forget10)").

The annotation ships in `atwu_core/data/tofu_entity_spans/` (Apache-2.0, from
gnueaj/unlearning-depth-score commit fc31639, see its NOTICE.md): 367 of forget10's 400 answers,
each with the `entity` it states. It marks one fact per answer and leaves names in the prefix
unmarked, so it is **not** a complete set of forget-specific tokens: the only honest numbers
against it are recall-style (is the entity weighted above the rest of its answer?).

This module
- loads and validates the file (`load_entity_annotation`): every error is a ValueError naming
  the file, the row's idx, the field and the value; character offsets are recomputed with
  `answer.find(entity)` (the file's Llama-3 token positions are ignored);
- maps it onto our TOFU forget rows (`map_entity_spans`, `apply_entity_spans`): row
  `forget10-0012` is forget10 idx 12, and forget05/forget01 are forget10's last 200/40 rows, so
  `forget05-0003` is idx 203 and `forget01-0003` is idx 363; question and answer text must match
  the annotation exactly;
- scores a run's token weights against it (`entity_alignment`): pure, no torch.

Rows without an annotation (33 of 400; 2 of forget01's 40) get no spans: `entity_alignment`
leaves them out and counts them, `apply_entity_spans` lists them in the benchmark's meta.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from atwu_core.data.schema import Benchmark, QAItem, Span

ANNOTATION_DIR = Path(__file__).resolve().parent / "tofu_entity_spans"
ANNOTATION_FILE = ANNOTATION_DIR / "forget10_filtered.json"
ATTRIBUTION = (
    "gnueaj/unlearning-depth-score tofu_data/forget10_filtered.json @ fc31639 "
    "(Apache-2.0; arXiv 2605.24614)"
)
ENTITY_FIELD = "entity"
SPAN_SOURCE = "entity"  # the `+entity` of `--data tofu:<split>+entity` (atwu_core.data.spec)
SPAN_RULE = f"entity-spans-v1: one key entity per answer, {ATTRIBUTION}"
CAPTION = (
    "Recall-style: the annotation marks one key entity per answer and leaves names in the "
    "prefix unmarked, so these numbers say whether the entity is weighted above the rest of its "
    "answer, not how precisely a method finds every forget-specific token."
)
FORGET10_ROWS = 400
# Row index in forget10 of a split's first row: forget05 / forget01 are forget10's last authors.
FORGET10_OFFSET = {"forget10": 0, "forget05": 200, "forget01": 360}
_REQUIRED = ("idx", "question", "answer", "entity")


@dataclass(frozen=True)
class EntityRow:
    """One annotated forget10 answer; `[start, end)` are character offsets of `entity`."""

    idx: int
    question: str
    answer: str
    entity: str
    start: int
    end: int

    def span(self) -> Span:
        return Span(self.start, self.end, ENTITY_FIELD)


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_entity_annotation(rows: Any, where: str) -> dict[int, EntityRow]:
    """Validate decoded annotation rows (`where` names the file in every error); by idx."""
    if not isinstance(rows, list):
        raise ValueError(f"{where}: expected a JSON list of rows, got {type(rows).__name__}")
    out: dict[int, EntityRow] = {}
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: row {k} is not a JSON object: {_short(row)}")
        idx = row.get("idx")
        label = f"{where}: row {k} (idx {idx!r})"
        for name in _REQUIRED:
            if name not in row:
                raise ValueError(f"{label}: missing field {name!r}")
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < FORGET10_ROWS:
            raise ValueError(
                f"{label}: field 'idx' must be an int in [0, {FORGET10_ROWS}), got {_short(idx)}"
            )
        for name in ("question", "answer", "entity"):
            if not isinstance(row[name], str) or not row[name].strip():
                raise ValueError(
                    f"{label}: field {name!r} must be a non-empty string, got {_short(row[name])}"
                )
        if idx in out:
            raise ValueError(f"{label}: duplicate idx {idx} (row {k} repeats an earlier row)")
        answer, entity = row["answer"], row["entity"]
        start = answer.find(entity)
        if start < 0:
            raise ValueError(
                f"{label}: field 'entity' = {_short(entity)} is not found in "
                f"field 'answer' = {_short(answer, 160)}"
            )
        out[idx] = EntityRow(idx, row["question"], answer, entity, start, start + len(entity))
    return out


def load_entity_annotation(path: str | os.PathLike[str] = ANNOTATION_FILE) -> dict[int, EntityRow]:
    """The annotation file (default: the copy shipped in the package), validated; by idx."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    return parse_entity_annotation(rows, str(path))


# --------------------------------------------------------------------------------------------
# Mapping onto our TOFU forget rows
# --------------------------------------------------------------------------------------------


def forget10_index(row_id: str) -> int:
    """forget10 row index of a TOFU forget row id (`forget01-0003` -> 363); ValueError else."""
    config, sep, number = row_id.rpartition("-")
    if not sep or config not in FORGET10_OFFSET or not number.isdigit():
        raise ValueError(
            f"row id {row_id!r} is not a TOFU forget row (forget01-NNNN, forget05-NNNN or "
            "forget10-NNNN): the entity annotation covers TOFU's forget10 only"
        )
    idx = FORGET10_OFFSET[config] + int(number)
    if idx >= FORGET10_ROWS:
        raise ValueError(f"row id {row_id!r} lies past forget10's {FORGET10_ROWS} rows")
    return idx


@dataclass(frozen=True)
class EntityMapping:
    """Entity spans per forget row id; `unannotated` holds the row ids the file lacks."""

    spans: dict[str, list[Span]]
    unannotated: list[str]

    def summary(self) -> dict[str, Any]:
        return {
            "source": ATTRIBUTION,
            "n_annotated": len(self.spans),
            "n_unannotated": len(self.unannotated),
            "unannotated_ids": list(self.unannotated),
        }


def map_entity_spans(
    items: Iterable[QAItem],
    annotation: Mapping[int, EntityRow] | None = None,
    where: str = str(ANNOTATION_FILE),
) -> EntityMapping:
    """Entity spans for TOFU forget rows, after checking question and answer text.

    A row whose question or answer differs from the annotation's row is refused (ValueError
    naming both); a row the annotation lacks is listed in `unannotated` and gets no spans.
    """
    annotation = load_entity_annotation() if annotation is None else annotation
    spans: dict[str, list[Span]] = {}
    unannotated: list[str] = []
    for item in items:
        idx = forget10_index(item.id)
        entry = annotation.get(idx)
        if entry is None:
            unannotated.append(item.id)
            continue
        for name in ("question", "answer"):
            ours, theirs = getattr(item, name), getattr(entry, name)
            if ours != theirs:
                raise ValueError(
                    f"row {item.id} (forget10 idx {idx}): its {name} {_short(ours, 160)} does "
                    f"not match the entity annotation's {_short(theirs, 160)} ({where}, idx "
                    f"{idx}); the annotation is for TOFU's own text"
                )
        spans[item.id] = [entry.span()]
    return EntityMapping(spans, unannotated)


def apply_entity_spans(
    bench: Benchmark, annotation: Mapping[int, EntityRow] | None = None
) -> Benchmark:
    """`bench` with the entity spans as its forget spans (the `+entity` span source).

    Every forget row's `spans` become its one entity span, or [] when unannotated; its
    `paraphrased_spans` become [] (the annotation covers the answer only). Meta records
    `span_source`, `span_rule` and `entity_spans` (counts and the unannotated ids). Retain and
    other splits are unchanged (they have no forget spans).
    """
    mapping = map_entity_spans(bench.forget, annotation)
    forget = [
        replace(item, spans=mapping.spans.get(item.id, []), paraphrased_spans=[])
        for item in bench.forget
    ]
    meta = {
        **bench.meta,
        "span_source": SPAN_SOURCE,
        "span_rule": SPAN_RULE,
        "entity_spans": mapping.summary(),
    }
    return replace(bench, forget=forget, meta=meta)


# --------------------------------------------------------------------------------------------
# Recall-style alignment of token weights against the entity spans
# --------------------------------------------------------------------------------------------


def label_entity_tokens(
    rows: Sequence[Mapping[str, Any]], spans: Mapping[str, Sequence[Span]]
) -> list[bool | None]:
    """Per token row (FORMATS.md token columns): True if `[char_start, char_end)` overlaps an
    entity span of its example, False if not, None if the example has no annotation."""
    labels: list[bool | None] = []
    for r in rows:
        ex = spans.get(r["example_id"])
        if ex is None:
            labels.append(None)
            continue
        s, e = int(r["char_start"]), int(r["char_end"])
        labels.append(any(s < sp.end and e > sp.start for sp in ex))
    return labels


def entity_alignment(
    rows: Sequence[Mapping[str, Any]], spans: Mapping[str, Sequence[Span]]
) -> dict[str, Any]:
    """Recall-style alignment of one snapshot's weights with the entity spans (module doc).

    `rows` are token rows (FORMATS.md: `example_id`, `char_start`, `char_end`, `weight`,
    `in_loss`) of one step; only tokens in the loss count, as in `span/auroc`. A row whose
    example has no annotation is left out and counted; so is an annotated example where no
    token overlaps its entity or every token does (nothing to rank).

    Returns `auroc` (entity tokens against the other answer tokens of the same examples,
    pooled), `rank_percentile` (mean over entity tokens of the share of the non-entity tokens
    of the same answer weighted below it, ties half; 0.5 = no preference, 1 = above every one
    of them), `recall_at_k` (mean
    over examples of the fraction of entity tokens among the example's k top-weighted tokens,
    k = its number of entity tokens), `n_examples`, `n_entity_tokens`, `n_other_tokens`,
    `n_unannotated` and `n_degenerate` (example counts). Metrics are None with no example.
    """
    labels = label_entity_tokens(rows, spans)
    by_example: dict[str, tuple[list[float], list[bool]]] = {}
    unannotated: set[str] = set()
    for r, y in zip(rows, labels, strict=True):
        if not r.get("in_loss", True):
            continue
        if y is None:
            unannotated.add(r["example_id"])
            continue
        w, ys = by_example.setdefault(r["example_id"], ([], []))
        w.append(float(r["weight"]))
        ys.append(y)
    # lazy: sklearn/scipy take ~1.4 s to import, and this module loads with the TOFU loader
    from atwu_core.evaluation.metrics import span_alignment

    scores, flags, ids, percentiles = [], [], [], []
    degenerate = 0
    for example, (w_list, y_list) in by_example.items():
        w, y = np.array(w_list), np.array(y_list, dtype=bool)
        if y.all() or not y.any():
            degenerate += 1
            continue
        others = w[~y]
        for value in w[y]:
            below = (others < value).sum() + 0.5 * (others == value).sum()
            percentiles.append(below / len(others))
        scores += w_list
        flags += y_list
        ids += [example] * len(w_list)
    n_pos = int(sum(flags))
    used = len(set(ids))
    # Pooled AUROC and, per example, precision among its k top-weighted tokens with k = its
    # number of entity tokens (= recall@k), ties by expectation: the metrics of `span/*`.
    result = span_alignment(scores, flags, ids) if used else None
    return {
        "auroc": result["pooled"]["auroc"] if result else None,
        "rank_percentile": float(np.mean(percentiles)) if used else None,
        "recall_at_k": result["per_example"]["precision_at_k"]["agg_value"] if result else None,
        "n_examples": used,
        "n_entity_tokens": n_pos,
        "n_other_tokens": len(flags) - n_pos,
        "n_unannotated": len(unannotated),
        "n_degenerate": degenerate,
    }
