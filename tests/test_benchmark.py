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
    FIELDS,
    QUESTION_TYPES,
    WORLD_FACTS,
    _make_authors,
    generate_benchmark,
    render,
)
from atwu_core.data.schema import Span, save_benchmark

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


def test_render_records_exact_spans():
    text, spans = render("{name} was born in {city}.", {"name": "Ada Voss", "city": "Lima"})
    assert text == "Ada Voss was born in Lima."
    assert spans == [Span(0, 8, "name"), Span(21, 25, "city")]


def test_every_span_is_the_authors_value_and_spans_do_not_overlap(bench):
    by_id = authors(bench)
    for item in author_rows(bench):
        values = by_id[item.author_id]
        assert item.author == values["name"]
        for text, spans in ((item.answer, item.spans), (item.paraphrased_answer,
                                                         item.paraphrased_spans)):  # fmt: skip
            assert spans, item.id
            for span in spans:
                assert span.field in FIELDS
                assert text[span.start : span.end] == values[span.field], (item.id, span)
            for left, right in pairwise(spans):
                assert left.end <= right.start, (item.id, spans)


def test_spans_cover_every_fact_in_the_answer(bench):
    """Blank the spans out: no attribute value of the author may remain in the text."""
    by_id = authors(bench)
    for item in author_rows(bench):
        values = by_id[item.author_id]
        for text, spans in ((item.answer, item.spans), (item.paraphrased_answer,
                                                         item.paraphrased_spans)):  # fmt: skip
            blanked = list(text)
            for span in spans:
                blanked[span.start : span.end] = "\0" * (span.end - span.start)
            rest = "".join(blanked)
            for field in FIELDS:
                assert not re.search(rf"\b{re.escape(values[field])}\b", rest), (item.id, field)


def test_perturbed_answers_swap_only_the_asked_facts(bench):
    for item in author_rows(bench):
        qtype = QUESTION_TYPES[int(item.id.split("-q")[1])]
        assert len(item.perturbed_answer) == 5
        assert len(set(item.perturbed_answer)) == 5
        assert item.answer not in item.perturbed_answer
        # The answer with each asked fact replaced by a wildcard must match every wrong answer:
        # same template, same other facts (the subject's name stays unless it is asked).
        pattern, pos = "", 0
        for span in item.spans:
            pattern += re.escape(item.answer[pos : span.start])
            value = item.answer[span.start : span.end]
            pattern += "(.+)" if span.field in qtype.asked else re.escape(value)
            pos = span.end
        pattern += re.escape(item.answer[pos:])
        for wrong in item.perturbed_answer:
            assert re.fullmatch(pattern, wrong), (item.id, wrong)


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
    bench = generate_benchmark()
    for q, qtype in enumerate(QUESTION_TYPES):
        rows = [it for it in bench.retain if it.id.endswith(f"-q{q:02d}")]
        patterns = [re.sub(r"\\\{\w+\\\}", "(.+)", re.escape(t)) for t in qtype.answers]
        used = {a for it in rows for a, p in enumerate(patterns) if re.fullmatch(p, it.answer)}
        assert len(used) >= 2, qtype.name


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
