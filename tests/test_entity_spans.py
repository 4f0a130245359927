"""The independent TOFU forget10 entity annotation (atwu_core.data.entity_spans, docs/DATA.md)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from atwu_core.data import spec as data_spec
from atwu_core.data.entity_spans import (
    ANNOTATION_FILE,
    EntityRow,
    apply_entity_spans,
    entity_alignment,
    forget10_index,
    label_entity_tokens,
    load_entity_annotation,
    map_entity_spans,
    parse_entity_annotation,
)
from atwu_core.data.schema import QAItem, Span, load_benchmark
from tests.conftest import SAMPLE, TOFU_DIR

needs_tofu = pytest.mark.skipif(
    not (TOFU_DIR / "forget01_perturbed.json").is_file(),
    reason=f"no local TOFU copy at {TOFU_DIR}",
)


def row(idx=0, answer="The author's full name is Hsiao Yun-Hwa.", entity="Hsiao Yun-Hwa", **kw):
    return {"idx": idx, "question": "Who?", "answer": answer, "entity": entity, **kw}


def item(row_id, answer, question="Who?"):
    return QAItem(id=row_id, author_id=198, author="A", question=question, answer=answer)


# ---- loading and validation ----------------------------------------------------------------


def test_shipped_file_loads_with_recomputed_offsets():
    rows = load_entity_annotation()
    assert ANNOTATION_FILE.is_file() and (ANNOTATION_FILE.parent / "LICENSE").is_file()
    assert len(rows) == 367 and min(rows) == 0 and max(rows) == 399
    first = rows[0]
    assert first.answer[first.start : first.end] == first.entity == "Hsiao Yun-Hwa"
    assert (first.start, first.end) == (26, 39)  # characters, not the file's Llama-3 tokens
    assert all(r.answer[r.start : r.end] == r.entity for r in rows.values())


def test_offsets_are_recomputed_from_the_text():
    rows = parse_entity_annotation(
        [row(entity_span={"start": 6, "end": 12, "tokens": [1, 2]})], "f.json"
    )
    assert rows[0] == EntityRow(
        0, "Who?", "The author's full name is Hsiao Yun-Hwa.", "Hsiao Yun-Hwa", 26, 39
    )
    assert rows[0].span() == Span(26, 39, "entity")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [row(idx=7, entity="Taipei")],
            r"f\.json: row 0 \(idx 7\): field 'entity' = 'Taipei' is not found in field 'answer'",
        ),
        (
            [row(idx=3), row(idx=3)],
            r"f\.json: row 1 \(idx 3\): duplicate idx 3",
        ),
        (
            [{"idx": 4, "question": "Q", "answer": "A"}],
            r"f\.json: row 0 \(idx 4\): missing field 'entity'",
        ),
        ([row(idx=400)], r"f\.json: row 0 \(idx 400\): field 'idx' must be an int in \[0, 400\)"),
        ([row(idx=2, entity="")], r"row 0 \(idx 2\): field 'entity' must be a non-empty string"),
        ({"idx": 0}, r"f\.json: expected a JSON list of rows, got dict"),
    ],
)
def test_bad_rows_are_refused_naming_file_idx_and_field(rows, message):
    with pytest.raises(ValueError, match=message):
        parse_entity_annotation(rows, "f.json")


def test_bad_json_file_is_named(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("[{")
    with pytest.raises(ValueError, match=r"x\.json: not valid JSON"):
        load_entity_annotation(bad)
    bad.write_text(json.dumps([row(idx=1, entity="nowhere")]))
    with pytest.raises(ValueError, match=r"x\.json: row 0 \(idx 1\): field 'entity'"):
        load_entity_annotation(bad)


# ---- mapping onto our rows -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("row_id", "idx"),
    [("forget10-0012", 12), ("forget05-0003", 203), ("forget01-0000", 360), ("forget01-0039", 399)],
)
def test_forget_ids_map_to_forget10_rows(row_id, idx):
    assert forget10_index(row_id) == idx


@pytest.mark.parametrize("row_id", ["retain90-0001", "a007-q03", "forget01-0040", "forget10-x"])
def test_other_ids_are_refused(row_id):
    with pytest.raises(ValueError, match=repr(row_id)):
        forget10_index(row_id)


def test_mapping_gives_spans_counts_unannotated_and_refuses_other_text():
    annotation = parse_entity_annotation(
        [row(idx=360, answer="Born in Kuwait City.", entity="Kuwait City")], "f.json"
    )
    mapping = map_entity_spans(
        [item("forget01-0000", "Born in Kuwait City."), item("forget01-0001", "Other.")],
        annotation,
    )
    assert mapping.spans == {"forget01-0000": [Span(8, 19, "entity")]}
    assert mapping.unannotated == ["forget01-0001"]
    assert mapping.summary()["n_annotated"] == 1 and mapping.summary()["n_unannotated"] == 1
    with pytest.raises(
        ValueError,
        match=r"row forget01-0000 \(forget10 idx 360\): its answer 'Born in Kuwait\.' does not "
        r"match the entity annotation's 'Born in Kuwait City\.' \(f\.json, idx 360\)",
    ):
        map_entity_spans([item("forget01-0000", "Born in Kuwait.")], annotation, "f.json")
    with pytest.raises(ValueError, match=r"its question 'Where\?' does not match"):
        map_entity_spans(
            [item("forget01-0000", "Born in Kuwait City.", question="Where?")], annotation
        )


def test_tofu_mini_rows_match_the_shipped_annotation():
    """The committed TOFU-mini forget rows are TOFU forget01: 38 annotated, 2 not."""
    bench = load_benchmark(SAMPLE / "tofu_mini" / "benchmark")
    mapping = map_entity_spans(bench.forget)
    assert len(mapping.spans) == 38
    assert mapping.unannotated == ["forget01-0018", "forget01-0026"]  # forget10 idx 378, 386
    first = bench.forget[0]
    (span,) = mapping.spans[first.id]
    assert first.answer[span.start : span.end] == "Basil Mahfouz Al-Kuwaiti"


@needs_tofu
def test_data_spec_plus_entity_loads_tofu_with_entity_spans():
    spec = f"tofu:forget01+entity@{TOFU_DIR}"
    parsed = data_spec.parse(spec)
    assert (parsed.selection, parsed.spans) == ("forget01", "entity")
    assert data_spec.format(parsed) == spec
    assert parsed.local()[1] == "tofu:forget01+entity"  # cached apart from the derived spans
    assert data_spec.with_folder("tofu:forget01+entity", str(TOFU_DIR)) == spec
    bench = data_spec.load(spec)
    assert bench.meta["span_source"] == "entity"
    assert bench.meta["entity_spans"]["n_unannotated"] == 2
    assert all(s.field == "entity" for it in bench.forget for s in it.spans)
    assert sum(bool(it.spans) for it in bench.forget) == 38
    assert all(it.paraphrased_spans == [] for it in bench.forget)
    derived = data_spec.load(f"tofu:forget01@{TOFU_DIR}")
    assert [it.answer for it in derived.forget] == [it.answer for it in bench.forget]
    with pytest.raises(ValueError, match="unknown span source 'foo'"):
        data_spec.load(f"tofu:forget01+foo@{TOFU_DIR}")


@needs_tofu
def test_every_annotated_forget10_row_matches_tofu():
    from atwu_core.data.tofu import load_tofu

    bench = apply_entity_spans(load_tofu(TOFU_DIR, forget="forget10"))
    assert bench.meta["entity_spans"]["n_annotated"] == 367
    assert bench.meta["entity_spans"]["n_unannotated"] == 33


def test_loader_module_is_torch_free():
    import subprocess

    code = "import sys, atwu_core.data.entity_spans; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---- recall-style alignment: golden numbers on hand-made rows ------------------------------


def tokens(example_id, weights, entity_positions, in_loss=None):
    """One token per character: token p covers [p, p+1); entity tokens at `entity_positions`."""
    return [
        {
            "example_id": example_id,
            "char_start": p,
            "char_end": p + 1,
            "weight": w,
            "in_loss": True if in_loss is None else in_loss[p],
        }
        for p, w in enumerate(weights)
    ]


def test_labels_by_character_overlap():
    rows = tokens("a", [0.0] * 4, []) + tokens("b", [0.0], [])
    spans = {"a": [Span(1, 3, "entity")]}
    assert label_entity_tokens(rows, spans) == [False, True, True, False, None]
    # a token that straddles the span's edge counts; one that only touches it does not
    edge = [{"example_id": "a", "char_start": 2, "char_end": 5, "weight": 0.0}]
    touch = [{"example_id": "a", "char_start": 3, "char_end": 5, "weight": 0.0}]
    assert label_entity_tokens(edge, spans) == [True]
    assert label_entity_tokens(touch, spans) == [False]


def test_golden_alignment_numbers():
    # example a: entity = tokens 2,3 (weights 0.9, 0.4); others 0.1, 0.5, 0.2
    # example b: entity = token 0 (weight 0.3); others 0.3 (tie), 0.1
    # example c: no annotation, excluded; token 4 of a is out of the loss
    rows = (
        tokens("a", [0.1, 0.5, 0.9, 0.4, 0.2, 5.0], [2, 3], in_loss=[1, 1, 1, 1, 1, 0])
        + tokens("b", [0.3, 0.3, 0.1], [0])
        + tokens("c", [1.0, 0.0], [])
    )
    spans = {"a": [Span(2, 4, "entity")], "b": [Span(0, 1, "entity")]}
    got = entity_alignment(rows, spans)
    # pooled AUROC: positives {0.9, 0.4, 0.3}, negatives {0.1, 0.5, 0.2, 0.3, 0.1}
    # 0.9 beats 5; 0.4 beats 4 (not 0.5); 0.3 beats 0.1, 0.2, 0.1 and ties 0.3 -> 3.5
    assert got["auroc"] == pytest.approx((5 + 4 + 3.5) / 15)
    # rank percentile (share of the row's non-entity tokens below, ties half): a: 0.9 -> 3/3,
    # 0.4 -> 2/3 (above 0.1 and 0.2, not 0.5); b: 0.3 -> (1 + 0.5)/2 (above 0.1, tied with 0.3)
    assert got["rank_percentile"] == pytest.approx((3 / 3 + 2 / 3 + 1.5 / 2) / 3)
    # recall@k: a, k=2: top-2 = 0.9, 0.5 -> 1 of 2; b, k=1: top weight 0.3 tied by an entity
    # and a non-entity token -> 1/2 in expectation
    assert got["recall_at_k"] == pytest.approx((0.5 + 0.5) / 2)
    assert got["n_examples"] == 2 and got["n_unannotated"] == 1 and got["n_degenerate"] == 0
    assert (got["n_entity_tokens"], got["n_other_tokens"]) == (3, 5)


def test_constant_weights_score_chance_and_perfect_weights_score_one():
    spans = {"a": [Span(1, 3, "entity")], "b": [Span(0, 1, "entity")]}
    flat = tokens("a", [1.0] * 5, []) + tokens("b", [1.0] * 4, [])
    got = entity_alignment(flat, spans)
    assert got["auroc"] == 0.5 and got["rank_percentile"] == 0.5
    assert got["recall_at_k"] == pytest.approx((2 / 5 + 1 / 4) / 2)  # the base rates
    perfect = tokens("a", [0, 1, 1, 0, 0], []) + tokens("b", [1, 0, 0, 0], [])
    got = entity_alignment(perfect, spans)
    assert got["auroc"] == got["rank_percentile"] == got["recall_at_k"] == 1.0


def test_degenerate_and_empty_inputs():
    spans = {"a": [Span(0, 3, "entity")]}
    got = entity_alignment(tokens("a", [0.2, 0.1, 0.3], []), spans)  # all tokens are entity
    assert got["n_degenerate"] == 1 and got["n_examples"] == 0 and got["auroc"] is None
    got = entity_alignment(tokens("z", [0.2], []), spans)
    assert got["n_unannotated"] == 1 and got["recall_at_k"] is None
    assert not any(isinstance(v, float) and math.isnan(v) for v in got.values())


def test_alignment_script_on_tofu_mini_runs():
    """benchmarks/entity_alignment.py over the committed TOFU-mini runs: one line per run."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "entity_alignment.py"),
         str(SAMPLE / "tofu_mini" / "runs")],
        capture_output=True, text=True, check=True, cwd=root,
    ).stdout  # fmt: skip
    assert "recall-style" in out.lower() and "unmarked" in out
    for method in ("atwu", "oracle_saturated", "grad_diff", "npo", "wga", "satimp"):
        assert f"| {method} " in out
    assert "38" in out


def test_pyproject_ships_the_annotation_as_package_data():
    """Every file of tofu_entity_spans/ is matched by pyproject's package-data globs (a wheel
    built without them lacks the file; checked by building one when this was added)."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["atwu_core.data"]
    folder = root / "atwu_core" / "data" / "tofu_entity_spans"
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["LICENSE", "NOTICE.md", "forget10_filtered.json"]
    for name in files:
        assert any(fnmatch.fnmatch(f"tofu_entity_spans/{name}", g) for g in globs), name
