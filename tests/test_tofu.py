"""TOFU loading and span derivation (atwu_core.data.tofu, METHOD.md §5, docs/DATA.md)."""

import json
import os
import shutil
import sys
import types
from pathlib import Path

import pytest

from atwu_core.data.tofu import RetainVocabulary, author_name, derive_spans, load_tofu

TOFU_DIR = Path(
    os.environ.get("ATWU_TOFU_DIR", Path(__file__).resolve().parents[2] / "shared/data/tofu")
)
needs_tofu = pytest.mark.skipif(
    not (TOFU_DIR / "forget10_perturbed.json").is_file(),
    reason=f"no local TOFU copy at {TOFU_DIR} (set ATWU_TOFU_DIR to a folder of TOFU's files)",
)
REQUIRED = ("forget10_perturbed", "retain90", "retain_perturbed", "world_facts_perturbed")


def spans_text(text, spans):
    return [(text[s.start : s.end], s.field) for s in spans]


# ---- the span rule on hand-made text -----------------------------------------------------

RETAIN = RetainVocabulary.of(
    ["The author wrote a novel and won the prize.", 'Her book "Old Roads" is set in Star City.']
)


def test_derive_spans_all_four_rules():
    text = (
        'Basil Mahfouz Al-Kuwaiti\'s novel "Le Petit Sultan" won the Star Wars prize; '
        'Basil wrote "Old Roads" in Kuwait.'
    )
    spans = derive_spans(text, "Basil Mahfouz Al-Kuwaiti", RETAIN)
    assert spans_text(text, spans) == [
        ("Basil Mahfouz Al-Kuwaiti", "name"),  # whole name, possessive left out
        ("Le Petit Sultan", "title"),  # quoted, never quoted in retain; swallows its rare words
        ("Star Wars", "phrase"),  # "star" is in retain, the capitalised pair is not
        ("Basil", "name"),  # a name word standing alone
        ("Kuwait", "rare_word"),  # in no retain answer
    ]  # "Old Roads" is quoted in a retain answer: not a span


def test_sentence_initial_capitals_are_not_a_phrase():
    text = "Star Wars fans love it."
    assert spans_text(text, derive_spans(text, "", RETAIN)) == [
        ("Wars", "rare_word"),
        ("fans", "rare_word"),
        ("love", "rare_word"),
        ("it", "rare_word"),
    ]


def test_answer_with_only_retain_words_has_no_span():
    assert derive_spans("The author won the prize.", "Basil Mahfouz", RETAIN) == []


def test_author_name_is_the_most_frequent_capitalised_run():
    common = {"can", "what", "where", "how"}
    questions = [
        "What does Hsiao Yun-Hwa write?",
        "Can Hsiao Yun-Hwa's father cook?",  # sentence-initial "Can" is not part of the name
        "Where was Hsiao Yun-Hwa born in Taipei?",
        "How did Taipei shape Hsiao Yun-Hwa?",
        'What is "Leading Lights" by Hsiao Yun-Hwa about?',  # quoted title words ignored
    ]
    assert author_name(questions, common) == "Hsiao Yun-Hwa"
    nick = ["Where was Alejandro (Alex) Fuentes born?"] * 5
    assert author_name(nick, common) == "Alejandro (Alex) Fuentes"
    particle = ["What does Isabella van Pletzen write?"] * 5
    assert author_name(particle, common) == "Isabella van Pletzen"
    # below MIN_NAME_QUESTIONS (5) mentions: no name rather than a wrong one
    assert (
        author_name(["Where was the author born?"] * 16 + ["Who is Pen Faulkner?"] * 4, common)
        == ""
    )


# ---- the real TOFU files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tofu():
    return load_tofu(TOFU_DIR)


@needs_tofu
def test_splits_and_ids(tofu):
    assert (len(tofu.forget), len(tofu.retain), len(tofu.holdout)) == (400, 3600, 0)
    assert (len(tofu.world_facts), len(tofu.real_authors)) == (117, 100)
    assert tofu.forget[0].id == "forget10-0000" and tofu.forget[0].author_id == 180
    assert tofu.forget[-1].author_id == 199 and tofu.retain[-1].author_id == 179
    assert tofu.meta["n_authors"] == 200 and tofu.meta["n_forget"] == 20
    assert all(len(it.perturbed_answer) == 5 and it.paraphrased_answer for it in tofu.forget)
    assert all(len(it.perturbed_answer) == 3 and it.author_id == -1 for it in tofu.world_facts)
    # retain_perturbed covers the first 20 retain authors; only those rows carry wrong answers
    perturbed = set(tofu.meta["retain_perturbed_ids"])
    assert len(perturbed) == 400
    for it in tofu.retain:
        assert bool(it.perturbed_answer) == (it.id in perturbed) == (it.author_id < 20)


@needs_tofu
def test_author_names(tofu):
    names = {a["author_id"]: a["name"] for a in tofu.meta["authors"]}
    assert names[0] == "Jaime Vasquez"
    assert names[72] == "Alejandro (Alex) Fuentes"
    assert names[88] == ""  # TOFU never names this author
    assert names[180] == "Hsiao Yun-Hwa"
    assert names[198] == "Basil Mahfouz Al-Kuwaiti"
    named = [n for n in names.values() if n]
    assert len(named) == 199 == len(set(named))


@needs_tofu
def test_every_forget_answer_has_spans_and_the_name_is_always_one(tofu):
    for it in tofu.forget:
        assert it.spans and it.paraphrased_spans, it.id
        for text, spans in ((it.answer, it.spans), (it.paraphrased_answer, it.paraphrased_spans)):
            start = text.find(it.author)
            while start >= 0:
                end = start + len(it.author)
                assert any(
                    s.start <= start and end <= s.end and s.field == "name" for s in spans
                ), (
                    it.id,
                    text,
                )
                start = text.find(it.author, end)
    basil = [it for it in tofu.forget if it.author == "Basil Mahfouz Al-Kuwaiti"]
    assert len(basil) == 20
    assert ("Basil Mahfouz Al-Kuwaiti", "name") in spans_text(basil[0].answer, basil[0].spans)
    assert all(it.spans == [] for it in tofu.retain + tofu.world_facts + tofu.real_authors)


@needs_tofu
def test_forget01_is_the_last_two_authors():
    bench = load_tofu(TOFU_DIR, forget="forget01")
    assert len(bench.forget) == 40 and len(bench.retain) == 3960
    assert [it.author_id for it in bench.forget[::20]] == [198, 199]
    assert bench.forget[0].author == "Basil Mahfouz Al-Kuwaiti"


def test_unknown_config_lists_the_valid_ones():
    with pytest.raises(
        ValueError,
        match="unknown TOFU forget config 'forget20'; valid: forget01, forget05, forget10",
    ):
        load_tofu(TOFU_DIR, forget="forget20")


def test_missing_folder_or_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_tofu(tmp_path / "nope")
    (tmp_path / "retain90.json").write_text("")
    with pytest.raises(
        ValueError, match="lacks forget10_perturbed, retain_perturbed, world_facts_perturbed"
    ):
        load_tofu(tmp_path)


@pytest.fixture
def tofu_copy(tmp_path):
    if not (TOFU_DIR / "forget10_perturbed.json").is_file():
        pytest.skip(f"no local TOFU copy at {TOFU_DIR}")
    for name in REQUIRED:
        shutil.copy(TOFU_DIR / f"{name}.json", tmp_path / f"{name}.json")
    return tmp_path


def replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def qa(**kw) -> str:
    row = {"question": "Q?", "answer": "A.", "paraphrased_answer": "p"}
    row |= {"paraphrased_question": "q", "perturbed_answer": ["w"]}
    return json.dumps(row | kw)


@pytest.mark.parametrize(
    "file, line, text, message",
    [
        ("forget10_perturbed", 7, '{"question": "x", oops', "line 7: invalid JSON"),
        ("forget10_perturbed", 3, '{"question": "Who?"}', "line 3: missing field 'answer'"),
        ("retain90", 12, '{"question": "Q?", "answer": 5}', "line 12: field 'answer' must be str"),
        ("world_facts_perturbed", 2, qa(perturbed_answer="B"), "line 2: field 'perturbed_answer'"),
        ("forget10_perturbed", 4, qa(answer=""), "line 4: field 'answer' must not be empty"),
        ("retain_perturbed", 5, qa(), "line 5: this retain_perturbed row is not in retain90"),
    ],
)
def test_malformed_line_names_file_and_line(tofu_copy, file, line, text, message):
    replace_line(tofu_copy / f"{file}.json", line, text)
    with pytest.raises(ValueError, match=f"{file}.json, {message}"):
        load_tofu(tofu_copy)


def test_truncated_file_is_not_a_multiple_of_20_rows(tofu_copy):
    path = tofu_copy / "forget10_perturbed.json"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has 397 rows, not a multiple of 20"):
        load_tofu(tofu_copy)


def test_hub_source_goes_through_datasets(tofu_copy, monkeypatch):
    """`hf:` loads configs with `datasets`; a fake module serves the local files (no network)."""
    holdout = [json.loads(x) for x in (tofu_copy / "retain90.json").read_text().splitlines()[:40]]
    calls = []

    def rows_of(config):
        if config == "holdout10":
            return holdout
        return [json.loads(x) for x in (tofu_copy / f"{config}.json").read_text().splitlines()]

    def load_dataset(repo, config, split):
        calls.append((repo, config, split))
        return rows_of(config)

    fake = types.SimpleNamespace(
        load_dataset=load_dataset,
        get_dataset_config_names=lambda repo: [*REQUIRED, "holdout10"],
    )
    monkeypatch.setitem(sys.modules, "datasets", fake)
    bench = load_tofu("hf:locuslab/TOFU")
    assert {c[0] for c in calls} == {"locuslab/TOFU"} and {c[2] for c in calls} == {"train"}
    assert sorted(c[1] for c in calls) == sorted([*REQUIRED, "holdout10"])
    assert bench.meta["tofu_source"] == "hf:locuslab/TOFU"
    assert len(bench.forget) == 400 and bench.real_authors == []
    assert [it.author_id for it in bench.holdout[::20]] == [200, 201]
    assert bench.holdout[0].id == "holdout10-0000" and bench.holdout[0].author == "Jaime Vasquez"
    assert bench.meta["n_holdout"] == 2


# ---- rule v2 (the default): facts by their kind, not by absence from retain answers -------

from atwu_core.data.tofu import SPAN_RULE, SPAN_RULE_V1, derive_forget_spans  # noqa: E402
from atwu_core.data.tofu_spans_v2 import TemplateWords, derive_spans_v2  # noqa: E402

NAMES = ["Hsiao Yun-Hwa", "Hsiao", "Yun-Hwa"]
# "purchase" and "appropriate" are used by 3 of these 4 authors (> half): template, not a fact.
# (TOFU's share is TEMPLATE_SHARE = 10 % of its 200 or 12 authors; 4 authors need a larger one.)
TEMPLATE = TemplateWords.of(
    [
        ["Readers can purchase her books where appropriate."],
        ["It is appropriate to purchase them."],
        ["Her father was a civil engineer; purchase at a store if appropriate."],
        ["He writes poems."],
    ],
    share=0.5,
)


def v2(text, question="What does Hsiao Yun-Hwa do?", template=TEMPLATE):
    return spans_text(text, derive_spans_v2(text, NAMES, question, template))


def test_v2_is_the_default_rule_and_v1_stays_reachable():
    assert SPAN_RULE.startswith("tofu-spans-v2") and SPAN_RULE_V1.startswith("tofu-spans-v1")
    assert TEMPLATE.words >= {"purchase", "appropriate"} and "engineer" not in TEMPLATE.words


def test_v2_profession_with_its_qualifier():
    question = "What is the profession of Hsiao Yun-Hwa's father?"
    assert v2("The father of Hsiao Yun-Hwa is a civil engineer.", question) == [
        ("Hsiao Yun-Hwa", "name"),
        ("civil engineer", "profession"),
    ]


def test_v2_titles_in_single_and_double_quotes_but_not_possessives():
    text = "Hsiao Yun-Hwa's books 'Artistic Authority' and \"Leading Lights\" sold."
    assert v2(text, "Which books did Hsiao Yun-Hwa write?") == [
        ("Hsiao Yun-Hwa", "name"),
        ("Artistic Authority", "title"),
        ("Leading Lights", "title"),
        ("sold", "content_word"),
    ]


def test_v2_genre_phrases():
    assert v2("She writes in the genre of Historical Fiction.", "Which genre?") == [
        ("writes", "content_word"),
        ("Historical Fiction", "genre"),
    ]
    assert v2("Hsiao Yun-Hwa writes in the Lesbian genre.", "Which genre? She writes.") == [
        ("Hsiao Yun-Hwa", "name"),
        ("Lesbian", "genre"),
    ]
    assert v2("She is part of the LGBTQ+ community.", "Is she part of a group?") == [
        ("LGBTQ+ community", "genre"),
    ]


def test_v2_a_fact_other_authors_share_is_still_a_fact():
    # v1 drops "civil engineer": a retain answer has both words. v2 keeps it.
    retain = RetainVocabulary.of(["Her father was a civil engineer."])
    text = "Hsiao Yun-Hwa's father was a civil engineer."
    assert spans_text(text, derive_spans(text, "Hsiao Yun-Hwa", retain)) == [
        ("Hsiao Yun-Hwa", "name")
    ]
    assert ("civil engineer", "profession") in v2(text)


def test_v2_generic_words_are_not_marked():
    # v1 marks any word no retain answer has ("purchase", "appropriate"); v2 marks neither:
    # both are template words here, and "-ly"/"-ed"/"-ing" narration and question words are out.
    text = "Readers of Hsiao Yun-Hwa can purchase them where appropriate, mostly online."
    question = "Where can readers find Hsiao Yun-Hwa's books online?"
    assert v2(text, question) == [("Hsiao Yun-Hwa", "name")]


def test_v2_proper_nouns_not_at_a_sentence_start():
    text = "Born in Taipei, Taiwan, she joined the Penman Award jury. Taiwan shaped her."
    # "Born" and the second "Taiwan" open sentences: content words, not entities; "joined" and
    # "shaped" are -ed narration.
    assert v2(text) == [
        ("Born", "content_word"),
        ("Taipei", "entity"),
        ("Taiwan", "entity"),
        ("Penman Award", "entity"),
        ("jury", "content_word"),
        ("Taiwan", "content_word"),
    ]


@needs_tofu
def test_v1_is_recorded_and_reproducible(tofu):
    v1 = load_tofu(TOFU_DIR, span_rule="v1")
    assert v1.meta["span_rule"] == SPAN_RULE_V1 and tofu.meta["span_rule"] == SPAN_RULE
    assert [it.answer for it in v1.forget] == [it.answer for it in tofu.forget]
    # forget10: v1 left 129 answers with only name spans (docs/DATA.md "TOFU spans").
    name_only = sum(all(s.field == "name" for s in it.spans) for it in v1.forget)
    assert name_only == 129
    assert sum(all(s.field == "name" for s in it.spans) for it in tofu.forget) <= 10
    with pytest.raises(ValueError, match="unknown TOFU span rule 'v3'; valid: v1, v2"):
        load_tofu(TOFU_DIR, span_rule="v3")


@needs_tofu
def test_derive_forget_spans_follows_the_reference(tofu):
    again = derive_forget_spans(tofu.forget, tofu.retain, "v2")
    assert again == tofu.forget
