"""RWKU loading, target selection, span derivation and bad input (atwu_core.data.rwku).

The fixture tests/fixtures/rwku holds every RWKU config in the hub's file layout and field names
(docs/DATA.md "RWKU"), with invented people: Marisol Quenby, Teodor Vance, Ingrid Vance.
"""

import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest

from atwu_core.data.rwku import (
    BIOGRAPHY_PROMPT,
    CONFIG_FILES,
    EVAL_CONFIGS,
    aliases,
    derive_spans,
    load_rwku,
    name_phrases,
    open_source,
    parse_selection,
    read_config,
    select_targets,
    vocabulary,
)
from atwu_core.run_setup import load_data

FIXTURE = Path(__file__).parent / "fixtures" / "rwku"
TARGETS = ["Marisol Quenby", "Teodor Vance", "Ingrid Vance"]


def spans_text(text, spans):
    return [(text[s.start : s.end], s.field) for s in spans]


@pytest.fixture
def rwku_copy(tmp_path):
    dest = tmp_path / "rwku"
    shutil.copytree(FIXTURE, dest)
    return dest


def test_fixture_has_every_config_in_its_schema():
    source = open_source(FIXTURE)
    assert source.missing(CONFIG_FILES) == []
    for config in CONFIG_FILES:
        rows = read_config(source, config)
        assert rows, config
        if config != "forget_target":
            assert {r["subject"] for r in rows} == set(TARGETS), config


def test_first_two_targets_become_forget_and_the_third_retain():
    bench = load_rwku(FIXTURE, "first2")
    assert bench.meta["source"] == "rwku" and bench.meta["targets"] == TARGETS[:2]
    assert [it.author for it in bench.forget] == [TARGETS[0]] * 3 + [TARGETS[1]] * 3
    assert [it.author_id for it in bench.forget] == [0, 0, 0, 1, 1, 1]
    first = bench.forget[0]
    assert first.id == "train_positive_llama3-00000"
    assert first.question == BIOGRAPHY_PROMPT.format("Marisol Quenby")
    assert first.answer.startswith("Marisol Quenby was born in 1931 in Aberporth")
    # Retain: only the other target's passages (3 of them), never a forgotten target.
    assert {it.author for it in bench.retain} == {"Ingrid Vance"} and len(bench.retain) == 3
    assert not {it.id for it in bench.retain} & {it.id for it in bench.forget}
    probes = bench.meta["rwku"]["probes"]
    assert set(probes) == set(EVAL_CONFIGS)
    for config, rows in probes.items():
        assert {r["subject"] for r in rows} == set(TARGETS[:2]), config
    assert probes["forget_level1"][2]["id"] == "forget_level1-00002"
    assert probes["forget_level1"][2]["answer"] == "Tallinn"


def test_retain_is_round_robin_over_other_targets_and_as_large_as_forget():
    bench = load_rwku(FIXTURE, "Teodor Vance")
    # 3 forget passages; retain alternates Marisol (rows 0, 1, ...) and Ingrid (rows 6, 7, ...).
    assert [it.id[-2:] for it in bench.retain] == ["00", "06", "01"]


def test_corpus_choice_and_load_data_syntax():
    bench = load_data(f"rwku:Ingrid Vance@{FIXTURE}#train_original_passage")
    assert bench.meta["corpus"] == "train_original_passage"
    assert [it.id for it in bench.forget] == [f"train_original_passage-0000{i}" for i in (6, 7, 8)]
    assert parse_selection("first10@hf:jinzhuoran/RWKU") == (
        "first10",
        "hf:jinzhuoran/RWKU",
        "train_positive_llama3",
    )


def test_comma_names_and_batches_select_targets():
    names = ["Prince Harry, Duke of Sussex", "Confucius", "Bruce Lee"]
    assert select_targets("Prince Harry, Duke of Sussex,Bruce Lee", names) == [names[0], names[2]]
    assert select_targets("Confucius, Confucius", names) == ["Confucius"]
    assert select_targets("first2", names) == names[:2]


# ---- spans -------------------------------------------------------------------------------


def test_name_parts_skip_words_another_target_shares():
    assert name_phrases("Teodor Vance", TARGETS) == ["Teodor Vance", "Teodor"]
    assert name_phrases("Marisol Quenby", TARGETS) == ["Marisol Quenby", "Marisol", "Quenby"]
    # The head of a comma name is a phrase; short and lowercase words are not parts.
    others = ["Prince", "Meghan, Duchess of Sussex"]
    assert name_phrases("Prince Harry, Duke of Sussex", others) == [
        "Prince Harry, Duke of Sussex",
        "Prince Harry",
        "Harry",
        "Duke",
    ]
    assert aliases('A writer known as "King of Horror" and “Uncle Steve”.') == [
        "King of Horror",
        "Uncle Steve",
    ]


def test_derive_spans_all_three_rules_by_hand():
    other = vocabulary(["In Oslo she met a student. Chess was her hobby in 1990."])
    text = 'Quenby, "the Lantern", met Teodor Vance in Oslo in 1977. Later Tegwen and Chess won.'
    names = ["Teodor Vance", "Quenby"]
    assert spans_text(text, derive_spans(text, names, ["the Lantern"], other)) == [
        ("Quenby", "name"),
        ("the Lantern", "alias"),
        ("Teodor Vance", "name"),  # swallows its own capitalised words
        ("1977", "fact"),  # a number no other target's text has ("1990" would not be)
        ("Tegwen", "fact"),  # capitalised, not sentence-initial, unseen elsewhere
    ]  # "Oslo" and "Chess" occur in other targets' text; "Later" is only sentence-initial


def test_name_is_a_span_wherever_it_appears_and_every_passage_has_one():
    for subjects in ("first2", "Ingrid Vance"):
        bench = load_rwku(FIXTURE, subjects)
        for item in bench.forget:
            assert item.spans, item.id
            spanned = {(s.start, s.end) for s in item.spans}
            for m in re.finditer(re.escape(item.author), item.answer):
                assert any(a <= m.start() and m.end() <= b for a, b in spanned), (item.id, m)
    # "Vance" alone belongs to two targets: no name span on its own.
    teodor = load_rwku(FIXTURE, "Teodor Vance").forget[1]
    at = teodor.answer.index("Vance later")
    assert not any(s.start <= at < s.end for s in teodor.spans)


# ---- the hub, through a fake `datasets` --------------------------------------------------


def test_hub_source_goes_through_datasets(monkeypatch):
    calls = []

    def load_dataset(repo, config, split):
        calls.append((repo, config, split))
        return json.loads((FIXTURE / CONFIG_FILES[config]).read_text())

    fake = types.SimpleNamespace(
        load_dataset=load_dataset, get_dataset_config_names=lambda repo: list(CONFIG_FILES)
    )
    monkeypatch.setitem(sys.modules, "datasets", fake)
    bench = load_data("rwku:first1@hf:jinzhuoran/RWKU")
    assert bench.meta["rwku_source"] == "hf:jinzhuoran/RWKU"
    assert {c[0] for c in calls} == {"jinzhuoran/RWKU"}
    splits = {c[1]: c[2] for c in calls}
    assert splits["forget_target"] == splits["train_positive_llama3"] == "train"
    assert {splits[c] for c in EVAL_CONFIGS} == {"test"}
    assert len(bench.forget) == 3 and bench.forget[0].author == "Marisol Quenby"


# ---- bad input ---------------------------------------------------------------------------


def test_unknown_subject_lists_the_subjects():
    with pytest.raises(ValueError, match=r"unknown RWKU subject 'Stephen King'.*Marisol Quenby"):
        load_rwku(FIXTURE, "Teodor Vance,Stephen King")
    with pytest.raises(ValueError, match="source has 3 targets"):
        load_rwku(FIXTURE, "first4")
    with pytest.raises(ValueError, match="no other target's passages"):
        load_rwku(FIXTURE, "first3")


def test_missing_config_lists_what_the_folder_has(rwku_copy):
    (rwku_copy / "forget_level2.json").unlink()
    with pytest.raises(ValueError, match=r"lacks forget_level2 \(forget_level2.json\); it has: "):
        load_rwku(rwku_copy, "first1")
    with pytest.raises(ValueError, match="does not exist"):
        load_rwku(rwku_copy / "nope", "first1")


def test_selection_without_a_source_or_with_a_bad_corpus():
    with pytest.raises(ValueError, match="must read rwku:<subjects>@"):
        load_data("rwku:first10")
    with pytest.raises(ValueError, match="unknown RWKU corpus 'train_pair_llama3'"):
        load_data(f"rwku:first1@{FIXTURE}#train_pair_llama3")


@pytest.mark.parametrize(
    ("file", "row", "field", "value", "message"),
    [
        ("forget_level1.json", 3, "answer", 7, "must be a non-empty string, got 7"),
        ("positive.json", 1, "text", None, "missing field 'text'"),
        ("retain_mmlu.json", 0, "answer", 4, "'answer' = 4 must index one of the 4 choices"),
        ("triviaqa.json", 2, "answers", [], "must be a non-empty list of strings"),
    ],
)
def test_malformed_row_names_file_row_field_value(rwku_copy, file, row, field, value, message):
    path = rwku_copy / file
    rows = json.loads(path.read_text())
    if value is None:
        del rows[row][field]
    else:
        rows[row][field] = value
    path.write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=re.escape(f"{file}, row {row}: ") + ".*" + message):
        load_rwku(rwku_copy, "first2")


def test_not_json_and_foreign_subject_are_named(rwku_copy):
    (rwku_copy / "intro.json").write_text("target,intro\n")
    with pytest.raises(ValueError, match=r"intro.json: expected a JSON array"):
        load_rwku(rwku_copy, "first1")
    shutil.copy(FIXTURE / "intro.json", rwku_copy / "intro.json")
    rows = json.loads((rwku_copy / "positive.json").read_text())
    rows[4]["subject"] = "Stephen King"
    (rwku_copy / "positive.json").write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=r"positive.json, row 4: .*'Stephen King' is not a forget"):
        load_rwku(rwku_copy, "first1")
