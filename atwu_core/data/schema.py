"""The QA row schema of `docs/FORMATS.md`, its JSON-lines reader/writer and benchmark folders.

No torch here: the dashboard imports this module to show benchmark rows. Every reader error is a
`ValueError` naming the file, the line, the field and the offending value, so a broken hand-edited
file is fixed in one look.

Ground-truth spans (METHOD.md §4) are half-open character intervals `[start, end)` inside `answer`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from atwu_core.fileio import atomic_write_text

SCHEMA_VERSION = 1

# The files of a benchmark folder, one per split. `real_authors` is optional (TOFU has it, the
# built-in benchmark does not); every other split file must exist, even if empty.
SPLITS = ("forget", "retain", "world_facts", "holdout", "real_authors")
REQUIRED_SPLITS = ("forget", "retain", "world_facts", "holdout")
META_FILE = "meta.json"
# Row fields holding character spans. The shared ones came with benchmark v2: a row without them
# (any file written before) reads as having none, so old folders load unchanged (schema 1).
SPAN_FIELDS = ("spans", "paraphrased_spans", "shared_spans", "paraphrased_shared_spans")
OPTIONAL_FIELDS = ("shared_spans", "paraphrased_shared_spans")


@dataclass(frozen=True)
class Span:
    """A half-open character interval `[start, end)` of a fact; `field` names it.

    In `QAItem.spans` the fact is forget-specific; in `QAItem.shared_spans` it is a value other
    authors have too (FORMATS.md)."""

    start: int
    end: int
    field: str

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            # bool is an int subclass; `True` as an offset is always a bug in the producer.
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"span {name} must be an int, got {value!r}")
        if self.start < 0:
            raise ValueError(f"span start must be >= 0, got {self.start}")
        if self.start >= self.end:
            raise ValueError(f"span start must be < end, got start={self.start}, end={self.end}")
        if not isinstance(self.field, str) or not self.field:
            raise ValueError(f"span field must be a non-empty string, got {self.field!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "field": self.field}


@dataclass
class QAItem:
    """One benchmark row (FORMATS.md "Benchmark rows"). Construction validates every field."""

    id: str
    author_id: int
    author: str
    question: str
    answer: str
    paraphrased_answer: str = ""
    paraphrased_question: str = ""
    perturbed_answer: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    paraphrased_spans: list[Span] = field(default_factory=list)
    # Optional when reading (benchmark v2): facts that recur across authors, not forget spans.
    shared_spans: list[Span] = field(default_factory=list)
    paraphrased_shared_spans: list[Span] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in (
            "id",
            "author",
            "question",
            "answer",
            "paraphrased_answer",
            "paraphrased_question",
        ):
            _check_type(name, getattr(self, name), str)
        _check_type("author_id", self.author_id, int)
        for name in ("id", "question", "answer"):
            if not getattr(self, name):
                raise ValueError(f"field {name!r} must not be empty")
        _check_type("perturbed_answer", self.perturbed_answer, list)
        for k, wrong in enumerate(self.perturbed_answer):
            _check_type(f"perturbed_answer[{k}]", wrong, str)
        _check_spans("spans", self.spans, self.answer, "answer")
        _check_spans(
            "paraphrased_spans",
            self.paraphrased_spans,
            self.paraphrased_answer,
            "paraphrased_answer",
        )
        _check_spans("shared_spans", self.shared_spans, self.answer, "answer")
        _check_spans(
            "paraphrased_shared_spans",
            self.paraphrased_shared_spans,
            self.paraphrased_answer,
            "paraphrased_answer",
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SPAN_FIELDS:
                value = [s.to_dict() for s in value]
            elif f.name == "perturbed_answer":
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, row: Any, where: str = "row") -> QAItem:
        """Build from a decoded JSON object; errors are prefixed with `where` (file and line)."""
        if not isinstance(row, dict):
            raise ValueError(
                f"{where}: expected a JSON object, got {type(row).__name__}: {_short(row)}"
            )
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in row and n not in OPTIONAL_FIELDS]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        unknown = [k for k in row if k not in names]
        if unknown:
            raise ValueError(
                f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(names)}"
            )
        kwargs = dict(row)
        try:
            for name in SPAN_FIELDS:
                if name in row:
                    kwargs[name] = _spans_from_json(name, row[name])
            return cls(**kwargs)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None


def _check_type(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(
            f"field {name!r} must be {kind.__name__}, got {type(value).__name__} {_short(value)}"
        )


def _check_spans(name: str, spans: Any, text: str, text_name: str) -> None:
    _check_type(name, spans, list)
    for k, span in enumerate(spans):
        if not isinstance(span, Span):
            raise ValueError(f"field '{name}[{k}]' must be a Span, got {_short(span)}")
        if span.end > len(text):
            raise ValueError(
                f"field '{name}[{k}]' = [{span.start}, {span.end}) ({span.field}) lies outside "
                f"{text_name} of length {len(text)}: {_short(text)}"
            )


def _spans_from_json(name: str, raw: Any) -> list[Span]:
    if not isinstance(raw, list):
        raise ValueError(f"field {name!r} must be a list, got {type(raw).__name__} {_short(raw)}")
    spans = []
    for k, obj in enumerate(raw):
        if not isinstance(obj, dict) or set(obj) != {"start", "end", "field"}:
            raise ValueError(
                f"field '{name}[{k}]' must be an object with exactly start, end, "
                f"field; got {_short(obj)}"
            )
        try:
            spans.append(Span(obj["start"], obj["end"], obj["field"]))
        except ValueError as err:
            raise ValueError(f"field '{name}[{k}]': {err}") from None
    return spans


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def iter_json_lines(path: str | os.PathLike[str]) -> Iterator[tuple[str, int, Any]]:
    """Yield `(where, line number, parsed object)` per non-blank line; a line that is not JSON is
    a `ValueError` naming the file, the line, the column and the text."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            yield where, lineno, _parse_json_line(where, line)


def _parse_json_line(where: str, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{where}: invalid JSON ({err.msg} at column {err.colno}): {_short(line.rstrip())}"
        ) from None


def read_json_objects(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON-object lines of `path` and one message per other non-blank line, for readers
    that show what they can and say what they skip (the dashboard's data browser).

    Messages name the file and line like `iter_json_lines`'s errors (invalid JSON, not UTF-8,
    not an object); rows are not checked against `QAItem` (`read_jsonl` does that). A file that
    cannot be opened raises `OSError`.
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{path}, line {lineno}"
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                row = _parse_json_line(where, line)
            except UnicodeDecodeError as err:
                problems.append(f"{where}: not UTF-8 text ({err.reason} at byte {err.start})")
                continue
            except ValueError as err:
                problems.append(str(err))
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                problems.append(f"{where}: expected a JSON object, found {type(row).__name__}")
    return rows, problems


def read_jsonl(path: str | os.PathLike[str]) -> list[QAItem]:
    """Read QA rows, one JSON object per line; blank lines are skipped. Ids must be unique."""
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    for where, lineno, row in iter_json_lines(path):
        item = QAItem.from_dict(row, where)
        if item.id in seen:
            raise ValueError(f"{where}: field 'id' = {item.id!r} repeats line {seen[item.id]}")
        seen[item.id] = lineno
        items.append(item)
    return items


def write_jsonl(path: str | os.PathLike[str], items: Iterable[QAItem]) -> None:
    """Write QA rows atomically, one compact JSON object per line, keys in schema order."""
    lines = [json.dumps(item.to_dict(), ensure_ascii=False) + "\n" for item in items]
    atomic_write_text(Path(path), "".join(lines))


@dataclass
class Benchmark:
    """The splits of a benchmark folder (FORMATS.md). `holdout` authors are never trained on."""

    forget: list[QAItem]
    retain: list[QAItem]
    world_facts: list[QAItem]
    holdout: list[QAItem]
    meta: dict[str, Any]
    real_authors: list[QAItem] = field(default_factory=list)

    def split(self, name: str) -> list[QAItem]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; splits: {', '.join(SPLITS)}")
        return getattr(self, name)


def save_benchmark(folder: str | os.PathLike[str], bench: Benchmark) -> None:
    """Write every split and `meta.json` (atomically, file by file) into `folder`.

    `real_authors.jsonl` is written only when the split is non-empty (and a stale one removed), so
    the folder always reloads to the same `Benchmark`.
    """
    folder = Path(folder)
    if not isinstance(bench.meta, dict):
        raise ValueError(f"benchmark meta must be a dict, got {type(bench.meta).__name__}")
    _check_unique_ids(bench, str(folder))
    for name in SPLITS:
        path = folder / f"{name}.jsonl"
        items = bench.split(name)
        if name in REQUIRED_SPLITS or items:
            write_jsonl(path, items)
        else:
            path.unlink(missing_ok=True)
    # `schema` always comes first and always says what this code writes.
    meta = {"schema": SCHEMA_VERSION}
    meta.update((k, v) for k, v in bench.meta.items() if k != "schema")
    atomic_write_text(folder / META_FILE, json.dumps(meta, ensure_ascii=False, indent=1) + "\n")


def load_benchmark(folder: str | os.PathLike[str]) -> Benchmark:
    """Read a folder written by `save_benchmark` (or by hand). Ids must be unique across splits."""
    folder = Path(folder)
    needed = [f"{name}.jsonl" for name in REQUIRED_SPLITS] + [META_FILE]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        if not folder.is_dir():
            found = "the folder does not exist"
        else:
            names = sorted(p.name for p in folder.iterdir())
            found = "it contains: " + (", ".join(names) if names else "nothing")
        raise ValueError(f"benchmark folder {folder} is missing {', '.join(missing)}; {found}")
    meta_path = folder / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}, line {err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("schema") != SCHEMA_VERSION:
        raise ValueError(
            f"{meta_path}: field 'schema' = {meta.get('schema')!r} is not supported "
            f"(this version reads schema {SCHEMA_VERSION})"
        )
    splits = {}
    for name in SPLITS:
        path = folder / f"{name}.jsonl"
        splits[name] = read_jsonl(path) if path.is_file() else []
    bench = Benchmark(meta=meta, **splits)
    _check_unique_ids(bench, str(folder))
    return bench


def _check_unique_ids(bench: Benchmark, where: str) -> None:
    owner: dict[str, str] = {}
    for name in SPLITS:
        for item in bench.split(name):
            if item.id in owner:
                raise ValueError(
                    f"benchmark {where}: id {item.id!r} is in both {owner[item.id]} and {name}"
                )
            owner[item.id] = name
