"""The built-in benchmark generator (atwu_core.data.benchmark, METHOD.md §5)."""

import math
import os
import random
import re
import subprocess
import sys
from itertools import pairwise

import pytest

from atwu_core.data.benchmark import (
    BOOK_TITLES,
    DATE_PARTS,
    FIELDS,
    GENERATOR_VERSION,
    N_PERTURBED,
    QUESTION_TYPES,
    WORLD_FACTS,
    _make_authors,
    generate_benchmark,
    render,
)
from atwu_core.data.schema import Span, load_benchmark, save_benchmark

SEEDS = [0, 1, 2, 7]  # every v2 guarantee is checked on several generator seeds

CONFIGS = [
    {},  # the defaults: 20 authors, 2 forget, 2 holdout
    {"n_authors": 2, "forget_fraction": 0.5, "n_holdout": 0, "seed": 5},  # needs decoy wrongs
    {
        "n_authors": 100,
        "forget_fraction": 0.1,
        "n_holdout": 3,
        "seed": 7,
        "questions_per_author": 9,
    },
]


@pytest.fixture(scope="module", params=range(len(CONFIGS)), ids=["default", "tiny", "n100"])
def bench(request):
    return generate_benchmark(**CONFIGS[request.param])


def authors(bench):
    return {a["author_id"]: a for a in bench.meta["authors"]}


def author_rows(bench):
    return bench.forget + bench.retain + bench.holdout


def all_spans(item, paraphrase=False):
    """Forget-specific and shared spans together, in text order."""
    if paraphrase:
        return sorted(item.paraphrased_spans + item.paraphrased_shared_spans, key=lambda s: s.start)
    return sorted(item.spans + item.shared_spans, key=lambda s: s.start)


def qtype_of(item):
    return QUESTION_TYPES[int(item.id.split("-q")[1])]


def asked_fields(qtype):
    """The span fields a wrong answer swaps: a date is asked through its three parts."""
    out = set(qtype.asked)
    if "birth_date" in out:
        out |= set(DATE_PARTS)
    return out


def skeleton(text, spans):
    """The text with every span replaced by `{field}`: the template the row was filled from."""
    out, pos = "", 0
    for span in spans:
        out += text[pos : span.start] + "{" + span.field + "}"
        pos = span.end
    return out + text[pos:]


def test_render_records_exact_spans():
    text, spans = render("{name} was born in {city}.", {"name": "Ada Voss", "city": "Lima"})
    assert text == "Ada Voss was born in Lima."
    assert spans == [Span(0, 8, "name"), Span(21, 25, "city")]


def test_every_span_is_the_authors_value_and_spans_do_not_overlap(bench):
    by_id = authors(bench)
    for item in author_rows(bench):
        values = by_id[item.author_id]
        assert item.author == values["name"]
        for text, spans, shared in (
            (item.answer, item.spans, item.shared_spans),
            (item.paraphrased_answer, item.paraphrased_spans, item.paraphrased_shared_spans),
        ):
            assert spans, item.id  # the name is in every answer and specific to its author
            for span in spans + shared:
                assert span.field in FIELDS + DATE_PARTS and span.field != "birth_date"
                assert text[span.start : span.end] == values[span.field], (item.id, span)
            ordered = sorted(spans + shared, key=lambda s: s.start)
            for left, right in pairwise(ordered):
                assert left.end <= right.start, (item.id, ordered)


def test_spans_cover_every_fact_in_the_answer(bench):
    """Blank all spans out: no attribute value of the author may remain in the text."""
    by_id = authors(bench)
    for item in author_rows(bench):
        values = by_id[item.author_id]
        for paraphrase in (False, True):
            text = item.paraphrased_answer if paraphrase else item.answer
            blanked = list(text)
            for span in all_spans(item, paraphrase):
                blanked[span.start : span.end] = "\0" * (span.end - span.start)
            rest = "".join(blanked)
            for field in FIELDS + DATE_PARTS:
                assert not re.search(rf"\b{re.escape(values[field])}\b", rest), (item.id, field)


def wrong_base(item):
    """The text and spans perturbed answers were made from: the paraphrase (same template, other
    facts), which is what the truth ratio compares them with."""
    return item.paraphrased_answer, all_spans(item, paraphrase=True)


def test_perturbed_answers_swap_only_the_asked_facts(bench):
    for item in author_rows(bench):
        qtype = qtype_of(item)
        assert len(item.perturbed_answer) == N_PERTURBED
        assert len(set(item.perturbed_answer)) == N_PERTURBED
        assert item.answer not in item.perturbed_answer
        # The text with each asked fact replaced by a wildcard must match every wrong answer:
        # same template, same other facts (the subject's name stays unless it is asked).
        text, spans = wrong_base(item)
        asked = asked_fields(qtype)
        pattern, pos = "", 0
        for span in spans:
            pattern += re.escape(text[pos : span.start])
            value = text[span.start : span.end]
            pattern += "(.+)" if span.field in asked else re.escape(value)
            pos = span.end
        pattern += re.escape(text[pos:])
        for wrong in item.perturbed_answer:
            assert re.fullmatch(pattern, wrong), (item.id, wrong)
            assert wrong != text


def test_paraphrases_use_another_template(bench):
    for item in author_rows(bench):
        assert item.paraphrased_answer != item.answer
        assert item.paraphrased_question != item.question
        assert item.paraphrased_question


def test_ids_unique_and_splits_follow_tofu(bench):
    meta = bench.meta
    n, n_forget, n_holdout = meta["n_authors"], meta["n_forget"], meta["n_holdout"]
    assert n_forget == round(n * meta["forget_fraction"])
    all_items = author_rows(bench) + bench.world_facts
    assert len({it.id for it in all_items}) == len(all_items)
    per_author = meta["questions_per_author"]
    assert [it.author_id for it in bench.retain] == [
        a for a in range(n - n_forget) for _ in range(per_author)
    ]
    assert [it.author_id for it in bench.forget] == [
        a for a in range(n - n_forget, n) for _ in range(per_author)
    ]
    assert [it.author_id for it in bench.holdout] == [
        a for a in range(n, n + n_holdout) for _ in range(per_author)
    ]
    assert len({a["name"] for a in meta["authors"]}) == n + n_holdout
    for it in author_rows(bench):
        assert len(it.question.split()) <= 25 and len(it.paraphrased_question.split()) <= 25
        for text in (it.answer, it.paraphrased_answer, *it.perturbed_answer):
            assert len(text.split()) <= 30, text


def test_world_facts(bench):
    assert 30 <= len(bench.world_facts) <= 60
    for item, (question, answer, wrong) in zip(bench.world_facts, WORLD_FACTS, strict=True):
        assert (item.question, item.answer, item.perturbed_answer) == (
            question,
            answer,
            list(wrong),
        )
        assert item.author_id == -1 and item.author == "" and item.spans == []
        assert len(set(wrong)) == 3 and answer not in wrong


def test_forget_facts_never_appear_in_retain_authors():
    """Pools bigger than the forget split give each forget author facts of its own."""
    meta = generate_benchmark(
        n_authors=100, forget_fraction=0.1, seed=2, questions_per_author=1
    ).meta
    # gender has three values and the debut year derives from the birth year: shared by design.
    fields = [f for f in FIELDS if f not in ("gender", "first_book_year")]
    forget = [a for a in meta["authors"] if a["split"] == "forget"]
    retain = [a for a in meta["authors"] if a["split"] == "retain"]
    for field in fields:
        assert not {a[field] for a in forget} & {a[field] for a in retain}, field
    # and within the forget split no two authors share a fact either
    for field in fields:
        assert len({a[field] for a in forget}) == len(forget), field


def test_template_words_recur_across_authors():
    """Paraphrases still vary: every non-trained answer template of a type is used somewhere."""
    bench = generate_benchmark()
    for q, qtype in enumerate(QUESTION_TYPES):
        rows = [it for it in author_rows(bench) if it.id.endswith(f"-q{q:02d}")]
        used = {skeleton(it.paraphrased_answer, all_spans(it, True)) for it in rows}
        assert len(used) == len(qtype.answers) - 1, qtype.name


def test_names_and_titles_stay_unique_at_the_largest_size():
    records = _make_authors(random.Random(0), n_forget=100, n_total=1100)
    assert len({r["name"] for r in records}) == 1100
    titles = [r[k] for r in records for k in ("book1", "book2")]
    assert len(set(titles)) == 2200 <= len(BOOK_TITLES)


def test_questions_per_author_takes_the_first_types():
    bench = generate_benchmark(questions_per_author=3)
    assert [it.id for it in bench.forget[:3]] == ["a018-q00", "a018-q01", "a018-q02"]
    assert len(bench.forget) == 2 * 3
    assert bench.forget[0].question.split()[0] in ("What", "Which", "Who")


def test_same_seed_same_benchmark_other_seed_other_benchmark():
    assert generate_benchmark(seed=3, n_authors=6) == generate_benchmark(seed=3, n_authors=6)
    assert generate_benchmark(seed=3).forget != generate_benchmark(seed=4).forget


def test_byte_identical_across_processes(tmp_path):
    """A fresh interpreter with another hash seed writes the very same bytes."""
    here = tmp_path / "here"
    there = tmp_path / "there"
    save_benchmark(here, generate_benchmark(n_authors=12, forget_fraction=0.25, seed=11))
    assert load_benchmark(here).meta["generator_version"] == GENERATOR_VERSION == 2
    code = (
        "import sys; from atwu_core.data import generate_benchmark, save_benchmark; "
        "save_benchmark(sys.argv[1], generate_benchmark(n_authors=12, forget_fraction=0.25, "
        "seed=11))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(there)], env=env, check=True)
    names = sorted(p.name for p in here.iterdir())
    assert names == sorted(p.name for p in there.iterdir())
    for name in names:
        assert (here / name).read_bytes() == (there / name).read_bytes(), name


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_authors": 1}, r"n_authors must be an integer in \[2, 1000\], got 1"),
        ({"n_authors": 1001}, r"n_authors must be an integer in \[2, 1000\], got 1001"),
        ({"n_authors": "20"}, r"n_authors must be an integer .* got '20'"),
        ({"n_authors": True}, r"n_authors must be an integer .* got True"),
        ({"forget_fraction": 0}, r"forget_fraction must be a number in \(0, 1\), got 0"),
        ({"forget_fraction": 1.0}, r"forget_fraction must be a number in \(0, 1\), got 1.0"),
        ({"forget_fraction": math.nan}, r"forget_fraction must be a number in \(0, 1\), got nan"),
        ({"forget_fraction": "0.1"}, r"forget_fraction must be a number in \(0, 1\), got '0.1'"),
        (
            {"n_authors": 4, "forget_fraction": 0.1},
            r"forget_fraction=0.1 of n_authors=4 gives 0 forget",
        ),
        (
            {"n_authors": 4, "forget_fraction": 0.9},
            r"forget_fraction=0.9 of n_authors=4 gives 0 retain",
        ),
        ({"n_holdout": -1}, r"n_holdout must be an integer in \[0, 100\], got -1"),
        (
            {"questions_per_author": 0},
            r"questions_per_author must be an integer in \[1, 20\], got 0",
        ),
        (
            {"questions_per_author": 21},
            r"questions_per_author must be an integer in \[1, 20\], got 21",
        ),
        ({"seed": 1.5}, r"seed must be an integer, got 1.5"),
    ],
)
def test_invalid_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_benchmark(**kwargs)


# ---- benchmark v2 (docs/DATA.md "What v2 changed") -----------------------------------------


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def seeded(request):
    return generate_benchmark(seed=request.param)


def template_words(items):
    return {w for it in items for w in re.findall(r"\w+", skeleton(it.answer, all_spans(it)))}


def test_trained_answers_of_one_type_share_one_template(seeded):
    """Outside its spans, every trained answer of a question type is the same text: a forget
    answer has no word that the retain answers of that type lack."""
    for q, qtype in enumerate(QUESTION_TYPES):
        rows = [it for it in author_rows(seeded) if it.id.endswith(f"-q{q:02d}")]
        skeletons = {skeleton(it.answer, all_spans(it)) for it in rows}
        assert len(skeletons) == 1, (qtype.name, skeletons)
        n_retain = seeded.meta["n_retain"]
        forget_words = template_words(it for it in rows if it.author_id >= n_retain)
        retain_words = template_words(it for it in rows if it.author_id < n_retain)
        assert forget_words <= retain_words, qtype.name
        # paraphrases use another template than the trained one
        for it in rows:
            assert skeleton(it.paraphrased_answer, all_spans(it, True)) not in skeletons, it.id


def test_no_article_depends_on_the_author(seeded):
    """'a' before a vowel would need 'an' for some authors only: a template word that differs."""
    for it in author_rows(seeded):
        for text in (it.answer, it.paraphrased_answer, *it.perturbed_answer):
            assert not re.search(r"\b[Aa] [aeiouAEIOU]", text), text


def _wrong_values(item, wrong):
    """The asked facts of one perturbed answer, by field (birth_date as a whole)."""
    text, spans = wrong_base(item)
    asked = asked_fields(qtype_of(item))
    pattern, pos, names = "", 0, []
    for span in spans:
        pattern += re.escape(text[pos : span.start])
        if span.field in asked:
            pattern += "(.+?)"
            names.append(span.field)
        else:
            pattern += re.escape(text[span.start : span.end])
        pos = span.end
    pattern += re.escape(text[pos:])
    match = re.fullmatch(pattern, wrong)
    assert match, (item.id, wrong)
    found = dict(zip(names, match.groups(), strict=True))
    if "birth_month" in found:
        found["birth_date"] = f"{found.pop('birth_month')} {found.pop('birth_day')}, " + (
            found.pop("birth_year")
        )
    return found


def test_perturbed_answers_use_no_trained_authors_value(seeded):
    """Wrong facts are values no trained (retain or forget) author has, so a retain model has
    memorised neither the true nor the wrong answer of a forget row. Only `gender` (three
    values, all of them trained) must reuse one: never the subject's own."""
    meta = seeded.meta
    trained = [a for a in meta["authors"] if a["split"] != "holdout"]
    trained_values = {f: {a[f] for a in trained} for f in FIELDS}
    trained_values["book1"] = trained_values["book2"] = {
        a[k] for a in trained for k in ("book1", "book2")
    }
    name_words = {w for a in trained for w in a["name"].split()}
    by_id = authors(seeded)
    checked = 0
    for item in author_rows(seeded):
        own = by_id[item.author_id]
        for wrong in item.perturbed_answer:
            for field, value in _wrong_values(item, wrong).items():
                if field == "gender":
                    assert value != own["gender"], (item.id, wrong)
                    continue
                assert value not in trained_values[field], (item.id, field, value)
                if field == "name":
                    assert not set(value.split()) & name_words, (item.id, value)
                checked += 1
    assert checked > 5 * len(author_rows(seeded))


def test_wrong_value_pools_fall_back_for_large_benchmarks():
    """1000 authors use up the 36-value pools: wrong values then reuse trained ones (documented),
    still five distinct wrong answers per row and never the subject's own facts."""
    bench = generate_benchmark(n_authors=1000, n_holdout=0, seed=3, questions_per_author=6)
    assert len(bench.forget) == 100 * 6
    by_id = authors(bench)
    for item in bench.forget[:60] + bench.retain[:60]:
        assert len(set(item.perturbed_answer)) == N_PERTURBED
        own = by_id[item.author_id]
        for wrong in item.perturbed_answer:
            for field, value in _wrong_values(item, wrong).items():
                assert value != own[field], (item.id, field)
                if field == "name":  # names fall back to combinations no author has
                    assert value not in {a["name"] for a in bench.meta["authors"]}


def _other_retain_keys(meta, author_id):
    """The shared rule, written out independently: every value (and date part; a day together
    with its month) of the retain authors other than `author_id`."""
    keys = set()
    for a in meta["authors"]:
        if a["split"] == "retain" and a["author_id"] != author_id:
            keys |= {a[f] for f in FIELDS if f != "birth_date"}
            keys |= {a["birth_month"], a["birth_year"], f"{a['birth_month']} {a['birth_day']}"}
    return keys


def _key(values, field):
    if field == "birth_day":
        return f"{values['birth_month']} {values['birth_day']}"
    return values[field]


def test_shared_values_are_shared_spans_not_forget_spans(seeded):
    meta = seeded.meta
    by_id = authors(seeded)
    n_shared = 0
    for item in author_rows(seeded):
        values = by_id[item.author_id]
        others = _other_retain_keys(meta, item.author_id)
        for spans, shared in (
            (item.spans, item.shared_spans),
            (item.paraphrased_spans, item.paraphrased_shared_spans),
        ):
            for span in spans:
                assert _key(values, span.field) not in others, (item.id, span)
            for span in shared:
                assert _key(values, span.field) in others, (item.id, span)
                n_shared += 1
        fields = {s.field for s in item.shared_spans + item.paraphrased_shared_spans}
        assert fields <= set(values["shared"]), item.id
    assert n_shared > 0
    # What the rule finds at the default size: gender (3 values, 18 retain authors) is always
    # shared, and no forget author shares a name, title, award, job, ... with a retain author.
    specific = set(FIELDS) - {"gender", "first_book_year", "birth_date"}
    for a in meta["authors"]:
        if a["split"] == "forget":
            assert "gender" in a["shared"], a
            assert not specific & set(a["shared"]), a
    forget_rows = [it for it in seeded.forget if it.shared_spans]
    assert {s.field for it in forget_rows for s in it.shared_spans} >= {"gender", "birth_month"}
