"""QA row schema, JSON-lines I/O and benchmark folders (atwu_core.data.schema, docs/FORMATS.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from atwu_core.data import schema
from atwu_core.data.schema import (
    Benchmark,
    QAItem,
    Span,
    load_benchmark,
    read_jsonl,
    save_benchmark,
    write_jsonl,
)


def item(id="a000-q00", author_id=0, **kw) -> QAItem:
    fields = dict(
        id=id,
        author_id=author_id,
        author="Ada Voss",
        question="Where was Ada Voss born?",
        answer="Ada Voss was born in Lima, Peru.",
        paraphrased_answer="Ada Voss comes from Lima, Peru.",
        paraphrased_question="What is the birthplace of Ada Voss?",
        perturbed_answer=["Ada Voss was born in Oslo, Norway."],
        spans=[Span(0, 8, "name"), Span(21, 25, "birth_city")],
        paraphrased_spans=[Span(0, 8, "name")],
    )
    fields.update(kw)
    return QAItem(**fields)


def row(**kw) -> dict:
    out = item().to_dict()
    out.update(kw)
    return out


def write_lines(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
        encoding="utf-8",
    )
    return path


def test_round_trip_preserves_every_field(tmp_path):
    items = [item(), item(id="a000-q01", perturbed_answer=[], spans=[], paraphrased_spans=[])]
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, items)
    assert read_jsonl(path) == items
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first) == [
        "id", "author_id", "author", "question", "answer", "paraphrased_answer",
        "paraphrased_question", "perturbed_answer", "spans", "paraphrased_spans",
        "shared_spans", "paraphrased_shared_spans",
    ]  # fmt: skip
    assert first["spans"][1] == {"start": 21, "end": 25, "field": "birth_city"}
    assert items[0].answer[21:25] == "Lima"


def test_blank_lines_are_skipped(tmp_path):
    path = write_lines(tmp_path / "r.jsonl", [row(), "", "   ", row(id="x2")])
    assert [it.id for it in read_jsonl(path)] == ["a000-q00", "x2"]


def test_write_is_atomic_when_replace_fails(tmp_path, monkeypatch):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [item()])
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(schema.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_jsonl(path, [item(id="other")])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]  # no temp file left


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"id": "a", oops}', r"line 2: invalid JSON"),
        ("[1, 2]", r"line 2: expected a JSON object, got list"),
        ({k: v for k, v in row().items() if k != "answer"}, r"line 2: missing field\(s\) answer"),
        (row(colour="red"), r"line 2: unknown field\(s\) 'colour'"),
        (row(author_id="7"), r"line 2: field 'author_id' must be int, got str '7'"),
        (row(author_id=True), r"line 2: field 'author_id' must be int, got bool True"),
        (row(question=3), r"line 2: field 'question' must be str, got int 3"),
        (row(answer=""), r"line 2: field 'answer' must not be empty"),
        (row(perturbed_answer="x"), r"line 2: field 'perturbed_answer' must be list"),
        (row(perturbed_answer=["ok", 5]), r"line 2: field 'perturbed_answer\[1\]' must be str"),
        (row(spans={"start": 0}), r"line 2: field 'spans' must be a list"),
        (row(spans=[{"start": 0, "end": 3}]), r"line 2: field 'spans\[0\]' must be an object"),
        (
            row(spans=[{"start": 0, "end": 99, "field": "name"}]),
            r"line 2: field 'spans\[0\]' = \[0, 99\) \(name\) lies outside answer of length 32",
        ),
        (
            row(spans=[{"start": 5, "end": 5, "field": "name"}]),
            r"line 2: field 'spans\[0\]': span start must be < end, got start=5, end=5",
        ),
        (
            row(spans=[{"start": -1, "end": 2, "field": "name"}]),
            r"line 2: field 'spans\[0\]': span start must be >= 0, got -1",
        ),
        (
            row(spans=[{"start": 0.0, "end": 2, "field": "name"}]),
            r"line 2: field 'spans\[0\]': span start must be an int, got 0.0",
        ),
        (
            row(paraphrased_spans=[{"start": 0, "end": 40, "field": "name"}]),
            r"field 'paraphrased_spans\[0\]' = \[0, 40\) \(name\) lies outside paraphrased_answer",
        ),
        (row(id="a000-q00"), r"line 2: field 'id' = 'a000-q00' repeats line 1"),
        (
            row(shared_spans=[{"start": 30, "end": 40, "field": "gender"}]),
            r"line 2: field 'shared_spans\[0\]' = \[30, 40\) \(gender\) lies outside answer",
        ),
        (row(shared_spans=None), r"line 2: field 'shared_spans' must be a list"),
        (
            row(paraphrased_shared_spans=[{"start": 0, "end": 2}]),
            r"line 2: field 'paraphrased_shared_spans\[0\]' must be an object",
        ),
    ],
)
def test_malformed_rows_name_file_line_field_value(tmp_path, bad, message):
    path = write_lines(tmp_path / "bad.jsonl", [row(), bad])
    with pytest.raises(ValueError, match=message) as err:
        read_jsonl(path)
    assert str(path) in str(err.value)


def test_span_and_item_validate_on_construction():
    with pytest.raises(ValueError, match="span start must be < end"):
        Span(4, 2, "name")
    with pytest.raises(ValueError, match="span field must be a non-empty string"):
        Span(0, 2, "")
    with pytest.raises(ValueError, match="lies outside answer"):
        item(answer="short", spans=[Span(0, 8, "name")])


def test_shared_spans_round_trip_and_old_rows_read_without_them(tmp_path):
    """Benchmark v2 added `shared_spans` and `paraphrased_shared_spans`; a row written before
    (no such keys) still reads, with both empty, and reading does not change the schema."""
    shared = item(shared_spans=[Span(21, 25, "birth_city")],
                  paraphrased_shared_spans=[Span(20, 24, "birth_city")])  # fmt: skip
    old = {k: v for k, v in row().items() if "shared" not in k}
    path = write_lines(tmp_path / "rows.jsonl", [old])
    write_jsonl(tmp_path / "new.jsonl", [shared])
    (loaded_old,) = read_jsonl(path)
    assert loaded_old.shared_spans == [] and loaded_old.paraphrased_shared_spans == []
    assert loaded_old == item()
    assert read_jsonl(tmp_path / "new.jsonl") == [shared]
    assert shared.paraphrased_answer[20:24] == "Lima"


def test_a_v1_benchmark_folder_still_loads(tmp_path):
    """A folder written by the v1 generator (rows without the shared keys, schema 1) loads."""
    save_benchmark(tmp_path, bench())
    for name in ("forget", "retain", "world_facts"):
        path = tmp_path / f"{name}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for r in rows:
            del r["shared_spans"], r["paraphrased_shared_spans"]
        write_lines(path, rows)
    assert "shared" not in (tmp_path / "forget.jsonl").read_text()
    loaded = load_benchmark(tmp_path)
    assert loaded.forget == bench().forget and loaded.meta["schema"] == 1


def bench() -> Benchmark:
    return Benchmark(
        forget=[item("f1", 1)],
        retain=[item("r1", 0), item("r2", 0)],
        world_facts=[item("w1", -1, author="", spans=[], paraphrased_spans=[])],
        holdout=[],
        meta={"source": "builtin", "seed": 3},
    )


def test_benchmark_folder_round_trip(tmp_path):
    original = bench()
    save_benchmark(tmp_path, original)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "forget.jsonl", "holdout.jsonl", "meta.json", "retain.jsonl", "world_facts.jsonl",
    ]  # fmt: skip
    loaded = load_benchmark(tmp_path)
    assert loaded.meta == {"schema": 1, "source": "builtin", "seed": 3}
    for name in ("forget", "retain", "world_facts", "holdout", "real_authors"):
        assert loaded.split(name) == original.split(name)


def test_real_authors_file_is_optional_and_never_stale(tmp_path):
    with_real = bench()
    with_real.real_authors = [item("ra1", -1)]
    save_benchmark(tmp_path, with_real)
    assert load_benchmark(tmp_path).real_authors == with_real.real_authors
    save_benchmark(tmp_path, bench())
    assert not (tmp_path / "real_authors.jsonl").exists()
    assert load_benchmark(tmp_path).real_authors == []


def test_missing_files_error_lists_what_exists(tmp_path):
    save_benchmark(tmp_path, bench())
    (tmp_path / "retain.jsonl").unlink()
    (tmp_path / "meta.json").unlink()
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError) as err:
        load_benchmark(tmp_path)
    msg = str(err.value)
    assert "missing retain.jsonl, meta.json" in msg
    assert "contains: forget.jsonl, holdout.jsonl, notes.txt, world_facts.jsonl" in msg
    with pytest.raises(ValueError, match="does not exist"):
        load_benchmark(tmp_path / "nope")


def test_meta_schema_and_cross_split_ids_are_checked(tmp_path):
    save_benchmark(tmp_path, bench())
    (tmp_path / "meta.json").write_text('{"schema": 2}')
    with pytest.raises(ValueError, match=r"meta.json: field 'schema' = 2 is not supported"):
        load_benchmark(tmp_path)
    (tmp_path / "meta.json").write_text('{"schema": 1,\n oops}')
    with pytest.raises(ValueError, match=r"meta.json, line 2: invalid JSON"):
        load_benchmark(tmp_path)
    clash = bench()
    clash.holdout = [item("r2", 5)]
    with pytest.raises(ValueError, match="id 'r2' is in both retain and holdout"):
        save_benchmark(tmp_path / "other", clash)
    with pytest.raises(ValueError, match="unknown split 'train'"):
        clash.split("train")


def test_data_package_imports_without_torch():
    code = (
        "import sys, atwu_core.data, atwu_core.data.schema, atwu_core.data.tofu; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or "torch was imported by atwu_core.data"


def test_read_json_objects_keeps_good_rows_and_names_each_bad_line(tmp_path):
    """The lenient reader (the dashboard's data browser): a message per bad line, never a raise."""
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"id": "a"}\n\n{broken\n[1, 2]\n\xff\xfe\n{"id": "b"}\n')
    rows, problems = schema.read_json_objects(path)
    assert rows == [{"id": "a"}, {"id": "b"}]
    assert len(problems) == 3
    assert problems[0].startswith(f"{path}, line 3: invalid JSON (")
    assert problems[1] == f"{path}, line 4: expected a JSON object, found list"
    assert problems[2].startswith(f"{path}, line 5: not UTF-8 text")
    with pytest.raises(OSError):
        schema.read_json_objects(tmp_path / "missing.jsonl")
