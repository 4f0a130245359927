"""Load TOFU (METHOD.md §5) into the benchmark schema, deriving the forget spans TOFU lacks.

Source: a local folder of TOFU's JSON-lines files (`forget10_perturbed.json`, `retain90.json`,
`retain_perturbed.json`, `world_facts_perturbed.json`, ...) or, only when asked for with
`hf:locuslab/TOFU`, the Hugging Face hub through `datasets` (imported lazily: it is heavy and
it talks to the network).

TOFU lists 20 consecutive rows per author, and the forget split is the last authors. Spans
(METHOD.md §4 ground truth) are derived for forget rows by a fixed rule, documented in
`docs/DATA.md` ("TOFU spans") with its measured quality (`benchmarks/span_quality.py`).

The default is rule v2 (`atwu_core.data.tofu_spans_v2`): name, quoted title, profession, genre,
capitalised entity and content word, judged by the kind of words they are, not by their absence
from retain answers. Rule v1 (`load_tofu(..., span_rule="v1")`, kept to reproduce older data):

1. name: the author's name (see `author_name`) wherever it appears in full, and each word of it
   standing alone ("Jaime" in "Jaime was born to ...");
2. title: a double-quoted string (TOFU quotes book titles) that no retain answer quotes;
3. phrase: two capitalised words in a row, not at a sentence start, that are never adjacent in a
   retain answer ("Star Wars", "Penman Award");
4. rare_word: a word that appears in no retain answer (case-insensitive, possessive "'s" removed).

Overlapping candidates merge into one span whose field is that of the longest candidate.
Retain, holdout, world-fact and real-author rows get no spans.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from atwu_core.data.schema import SCHEMA_VERSION, Benchmark, QAItem, Span, iter_json_lines
from atwu_core.data.source import HUB_PREFIX, Row, Source, hub_source
from atwu_core.data.span_rules import POSSESSIVE, QUOTED, merge_spans, whole_word, word_key
from atwu_core.data.tofu_spans_v2 import TemplateWords, derive_spans_v2

# forget config -> the retain config that completes it to the full 200 authors.
TOFU_FORGET_CONFIGS = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
ROWS_PER_AUTHOR = 20
# A name must appear in at least this many of an author's questions (TOFU: usually 17-20; one
# author is never named). Below it the author gets no name rather than a wrong one.
MIN_NAME_QUESTIONS = 5
SPAN_RULE_V1 = "tofu-spans-v1: name, title, phrase and rare_word against the retain answers"
SPAN_RULE_V2 = (
    "tofu-spans-v2: name, title (single or double quotes), profession, genre, entity "
    "(capitalised run not at a sentence start), content_word (not in the question, not a stop, "
    "template or -ly/-ed/-ing word)"
)
# Short name -> full rule description (recorded in meta["span_rule"]); `load_tofu(span_rule=)`.
SPAN_RULES = {"v1": SPAN_RULE_V1, "v2": SPAN_RULE_V2}
DEFAULT_SPAN_RULE = "v2"
SPAN_RULE = SPAN_RULES[DEFAULT_SPAN_RULE]

# Lowercase name particles ("Isabella van Pletzen"): part of a name only between capitalised words.
_PARTICLES = ("van", "von", "de", "der", "den", "del", "della", "da", "di", "du", "dos", "das",
              "la", "le", "al", "el", "bin", "ibn", "ben", "y")  # fmt: skip
_WORD = re.compile(r"\w+(?:[-'’/]\w+)*")
_LETTER_WORD = re.compile(r"[^\W\d_][\w\-'’]*")
# Between two words of one name: a space, or the parentheses of a nickname ("Alejandro (Alex)").
_NAME_GAPS = (" ", " (", ") ")
_FIELD_PRIORITY = ("name", "title", "phrase", "rare_word")
# Text before a sentence-initial word: capitalised by grammar, so not evidence of a proper noun.
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|[\"“'‘(]\s*)$")


# --------------------------------------------------------------------------------------------
# Reading rows
# --------------------------------------------------------------------------------------------


def _folder_source(folder: Path) -> Source:
    if not folder.is_dir():
        raise ValueError(f"TOFU folder {folder} does not exist (or pass 'hf:locuslab/TOFU')")

    def rows(config: str) -> list[Row]:
        return [(where, row) for where, _, row in iter_json_lines(folder / f"{config}.json")]

    return Source(str(folder), lambda config: (folder / f"{config}.json").is_file(), rows)


def _require(source: Source, configs: Iterable[str]) -> None:
    missing = source.missing(configs)
    if missing:
        raise ValueError(
            f"TOFU source {source.describe} lacks {', '.join(missing)} "
            "(files <config>.json or hub configs)"
        )


def _field(where: str, row: Any, key: str, kind: type, required: bool) -> Any:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if key not in row:
        if required:
            raise ValueError(f"{where}: missing field {key!r}")
        return kind()
    value = row[key]
    if not isinstance(value, kind) or (kind is list and not all(isinstance(v, str) for v in value)):
        raise ValueError(
            f"{where}: field {key!r} must be "
            f"{'a list of strings' if kind is list else kind.__name__}, "
            f"got {value!r:.80}"
        )
    return value


def _parse(rows: list[Row], perturbed: bool, paraphrased: bool) -> list[dict[str, Any]]:
    """The QA fields of each row, type-checked; `perturbed`/`paraphrased` make those required."""
    return [
        {
            "where": where,
            "question": _field(where, row, "question", str, True),
            "answer": _field(where, row, "answer", str, True),
            "paraphrased_answer": _field(where, row, "paraphrased_answer", str, paraphrased),
            "paraphrased_question": _field(where, row, "paraphrased_question", str, paraphrased),
            "perturbed_answer": _field(where, row, "perturbed_answer", list, perturbed),
        }
        for where, row in rows
    ]


# --------------------------------------------------------------------------------------------
# Author names
# --------------------------------------------------------------------------------------------


def _blank_quotes(text: str) -> str:
    """Replace quoted titles by spaces (same length), so title words never look like a name."""
    return QUOTED.sub(lambda m: " " * len(m.group(0)), text)


def _name_candidates(question: str, common: set[str]) -> list[str]:
    """Maximal runs of capitalised words (plus inner particles) in one question, as written."""
    text = _blank_quotes(question)
    runs: list[list[tuple[int, int, str]]] = []
    run: list[tuple[int, int, str]] = []
    for match in _LETTER_WORD.finditer(text):
        raw = match.group()
        word = POSSESSIVE.sub("", raw)
        start, end = match.start(), match.start() + len(word)
        joins = bool(run) and text[run[-1][1] : start] in _NAME_GAPS
        if word[:1].isupper() or (joins and word in _PARTICLES):
            if not joins and run:
                runs.append(run)
                run = []
            run.append((start, end, word))
        elif run:
            runs.append(run)
            run = []
        if word != raw and run:  # a possessive ends the name: "Hsiao Yun-Hwa's father"
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    names = []
    for words in runs:
        while words and words[-1][2] in _PARTICLES:
            words = words[:-1]
        # The question's first word is capitalised by grammar ("Can", "Where"), not as a name.
        if words and words[0][0] == 0 and words[0][2].lower() in common:
            words = words[1:]
        if words:
            names.append(question[words[0][0] : words[-1][1]])
    return names


def author_name(questions: list[str], common: set[str]) -> str:
    """The author of a 20-row TOFU block: the capitalised run found in the most questions.

    `common` holds words seen in lowercase anywhere in the corpus, to tell a sentence-initial
    "Can" from a name. Ties go to the longer run. "" if no run is in `MIN_NAME_QUESTIONS`
    questions (TOFU has one author who is never named).
    """
    counts: dict[str, int] = {}
    for question in questions:
        for name in dict.fromkeys(_name_candidates(question, common)):
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return ""
    best = max(counts.items(), key=lambda kv: (kv[1], len(kv[0])))
    return best[0] if best[1] >= MIN_NAME_QUESTIONS else ""


def _name_parts(name: str) -> list[str]:
    """Words of a name that identify it on their own: no particles, no parentheses."""
    words = [w.strip("()") for w in name.split()]
    return [w for w in words if w and w not in _PARTICLES and len(w) >= 2]


# --------------------------------------------------------------------------------------------
# Spans
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetainVocabulary:
    """What the retain answers contain: the reference of span rules 2-4."""

    words: frozenset[str]  # word keys (lowercase, possessive removed)
    bigrams: frozenset[tuple[str, str]]  # consecutive word keys
    quoted: frozenset[str]  # lowercased quoted strings

    @classmethod
    def of(cls, answers: Iterable[str]) -> RetainVocabulary:
        words: set[str] = set()
        bigrams: set[tuple[str, str]] = set()
        quoted: set[str] = set()
        for answer in answers:
            keys = [word_key(w) for w in _WORD.findall(answer)]
            words.update(keys)
            bigrams.update(pairwise(keys))
            quoted.update(
                _clean_title(m.group(1) or m.group(2)).lower() for m in QUOTED.finditer(answer)
            )
        return cls(frozenset(words), frozenset(bigrams), frozenset(quoted))


def _clean_title(inner: str) -> str:
    return inner.strip().rstrip(".,;:!?").strip()


def derive_spans(text: str, name: str, retain: RetainVocabulary) -> list[Span]:
    """Forget spans of one TOFU answer by the module's four rules; sorted, non-overlapping.

    1 name (whole name and each name word), 2 title (quoted, never quoted in retain answers),
    3 phrase (two capitalised words in a row, not sentence-initial, never adjacent in retain
    answers: "Star Wars", "Penman Award"), 4 rare_word (a word in no retain answer).
    """
    candidates: list[tuple[int, int, str]] = []
    if name:
        for phrase in [name, *_name_parts(name)]:
            candidates += [(s, e, "name") for s, e in whole_word(text, phrase)]
    for match in QUOTED.finditer(text):
        group = 1 if match.group(1) is not None else 2
        inner = match.group(group)
        title = _clean_title(inner)
        if title and title.lower() not in retain.quoted:
            start = match.start(group) + (len(inner) - len(inner.lstrip()))
            candidates.append((start, start + len(title), "title"))
    words = list(_WORD.finditer(text))
    for left, right in pairwise(words):
        if (
            text[left.end() : right.start()] == " "
            and not POSSESSIVE.search(left.group())  # "Marais's LGBTQ+" is no phrase
            and left.group()[0].isupper()
            and right.group()[0].isupper()
            and not _SENTENCE_START.search(text, 0, left.start())
            and (word_key(left.group()), word_key(right.group())) not in retain.bigrams
        ):
            end = right.start() + len(POSSESSIVE.sub("", right.group()))
            candidates.append((left.start(), end, "phrase"))
    for match in words:
        if word_key(match.group()) not in retain.words:
            end = match.start() + len(POSSESSIVE.sub("", match.group()))
            candidates.append((match.start(), end, "rare_word"))
    return merge_spans(candidates, _FIELD_PRIORITY)


# --------------------------------------------------------------------------------------------
# Assembling the benchmark
# --------------------------------------------------------------------------------------------


def _blocks(rows: list[dict[str, Any]], config: str) -> list[list[dict[str, Any]]]:
    if len(rows) % ROWS_PER_AUTHOR:
        raise ValueError(
            f"TOFU config {config} has {len(rows)} rows, not a multiple of "
            f"{ROWS_PER_AUTHOR} (rows per author): is the file truncated?"
        )
    return [rows[i : i + ROWS_PER_AUTHOR] for i in range(0, len(rows), ROWS_PER_AUTHOR)]


def _item(row: dict[str, Any], item_id: str, author_id: int, author: str, **extra: Any) -> QAItem:
    try:
        return QAItem(
            id=item_id,
            author_id=author_id,
            author=author,
            question=row["question"],
            answer=row["answer"],
            paraphrased_answer=row["paraphrased_answer"],
            paraphrased_question=row["paraphrased_question"],
            perturbed_answer=list(row["perturbed_answer"]),
            **extra,
        )
    except ValueError as err:
        raise ValueError(f"{row['where']}: {err}") from None


def derive_forget_spans(
    forget: Sequence[QAItem], reference: Sequence[QAItem], span_rule: str = DEFAULT_SPAN_RULE
) -> list[QAItem]:
    """`forget` with `spans` and `paraphrased_spans` derived by `span_rule` ("v1" / "v2").

    `reference` = the retain rows the model trains on: v1 marks what their answers lack
    (`RetainVocabulary`); v2 counts template words over the authors of `forget` and `reference`
    together (`TemplateWords`). `load_tofu` passes all retain rows; TOFU-mini passes the few
    retain authors its model trains on.
    """
    if span_rule not in SPAN_RULES:
        raise ValueError(f"unknown TOFU span rule {span_rule!r}; valid: {', '.join(SPAN_RULES)}")
    if span_rule == "v1":
        vocabulary = RetainVocabulary.of(item.answer for item in reference)

        def spans(text: str, item: QAItem) -> list[Span]:
            return derive_spans(text, item.author, vocabulary)

    else:
        by_author: dict[int, list[str]] = {}
        for item in [*forget, *reference]:
            by_author.setdefault(item.author_id, []).append(item.answer)
        template = TemplateWords.of(by_author.values())

        def spans(text: str, item: QAItem) -> list[Span]:
            names = [item.author, *_name_parts(item.author)]
            asked = item.question + " " + item.paraphrased_question
            return derive_spans_v2(text, names, asked, template)

    return [
        replace(
            item,
            spans=spans(item.answer, item),
            paraphrased_spans=spans(item.paraphrased_answer, item),
        )
        for item in forget
    ]


def load_tofu(
    source: str | os.PathLike[str], forget: str = "forget10", span_rule: str = DEFAULT_SPAN_RULE
) -> Benchmark:
    """TOFU as a `Benchmark`: `source` is a folder of TOFU files or `hf:locuslab/TOFU`.

    forget = `forget01` / `forget05` / `forget10` (the last 2 / 10 / 20 authors); retain = the
    matching `retain99/95/90` (the rest: what a retain model trains on), with paraphrased and
    perturbed answers merged in from `retain_perturbed` for the rows it covers (their ids are in
    `meta["retain_perturbed_ids"]`: truth ratios exist only there). `holdout` comes from a
    `holdoutNN` config when the source has one (newer TOFU releases), else it is empty.
    """
    if span_rule not in SPAN_RULES:
        raise ValueError(f"unknown TOFU span rule {span_rule!r}; valid: {', '.join(SPAN_RULES)}")
    if forget not in TOFU_FORGET_CONFIGS:
        raise ValueError(
            f"unknown TOFU forget config {forget!r}; valid: {', '.join(TOFU_FORGET_CONFIGS)}"
        )
    text = os.fspath(source)
    if text.startswith(HUB_PREFIX):
        src = hub_source(text[len(HUB_PREFIX) :])
    else:
        src = _folder_source(Path(text))
    retain_config = TOFU_FORGET_CONFIGS[forget]
    holdout_config = "holdout" + forget.removeprefix("forget")
    _require(
        src, [f"{forget}_perturbed", retain_config, "retain_perturbed", "world_facts_perturbed"]
    )

    # Read and check every file first: a broken file fails fast, before any span work.
    def parse(config: str, perturbed: bool, paraphrased: bool) -> list[dict[str, Any]]:
        return _parse(src.rows(config), perturbed, paraphrased) if src.has(config) else []

    forget_rows = parse(f"{forget}_perturbed", perturbed=True, paraphrased=True)
    retain_rows = parse(retain_config, perturbed=False, paraphrased=False)
    extra_rows = parse("retain_perturbed", perturbed=True, paraphrased=True)
    world_rows = parse("world_facts_perturbed", perturbed=True, paraphrased=False)
    real_rows = parse("real_authors_perturbed", perturbed=True, paraphrased=False)
    holdout_rows = parse(holdout_config, perturbed=False, paraphrased=False)
    forget_blocks = _blocks(forget_rows, f"{forget}_perturbed")
    holdout_blocks = _blocks(holdout_rows, holdout_config)

    # Merge the perturbed retain rows into the retain split, matched on (question, answer).
    index = {(r["question"], r["answer"]): k for k, r in enumerate(retain_rows)}
    perturbed_at: dict[int, dict[str, Any]] = {}
    for row in extra_rows:
        k = index.get((row["question"], row["answer"]))
        if k is None:
            raise ValueError(
                f"{row['where']}: this retain_perturbed row is not in "
                f"{retain_config} (question {row['question'][:60]!r})"
            )
        perturbed_at[k] = row
    retain_rows = [perturbed_at.get(k, row) for k, row in enumerate(retain_rows)]
    retain_blocks = _blocks(retain_rows, retain_config)

    common = {
        word
        for r in forget_rows + retain_rows
        for word in _LETTER_WORD.findall(r["question"] + " " + r["answer"])
        if word[0].islower()
    }
    n_retain, n_forget = len(retain_blocks), len(forget_blocks)
    n_trained = n_retain + n_forget
    authors_meta: list[dict[str, Any]] = []

    def author_items(
        blocks: list[list[dict[str, Any]]], split: str, config: str, first_id: int
    ) -> list[QAItem]:
        """Items of consecutive 20-row author blocks; spans only on the forget split."""
        items = []
        for b, block in enumerate(blocks):
            author_id = first_id + b
            name = author_name([r["question"] for r in block], common)
            authors_meta.append({"author_id": author_id, "split": split, "name": name})
            for j, row in enumerate(block):
                row_id = f"{config}-{b * ROWS_PER_AUTHOR + j:04d}"
                items.append(_item(row, row_id, author_id, name))
        return items

    retain = author_items(retain_blocks, "retain", retain_config, 0)
    forget_items = derive_forget_spans(
        author_items(forget_blocks, "forget", forget, n_retain), retain, span_rule
    )
    holdout = author_items(holdout_blocks, "holdout", holdout_config, n_trained)

    def general(rows: list[dict[str, Any]], stem: str) -> list[QAItem]:
        return [_item(row, f"{stem}-{i:04d}", -1, "") for i, row in enumerate(rows)]

    meta = {
        "schema": SCHEMA_VERSION,
        "source": "tofu",
        "tofu_source": src.describe,
        "forget_config": forget,
        "retain_config": retain_config,
        "n_authors": n_trained,
        "forget_fraction": n_forget / n_trained,
        "n_forget": n_forget,
        "n_retain": n_retain,
        "n_holdout": len(holdout_blocks),
        "span_rule": SPAN_RULES[span_rule],
        "retain_perturbed_ids": [retain[k].id for k in sorted(perturbed_at)],
        "authors": authors_meta,
    }
    return Benchmark(
        forget=forget_items,
        retain=retain,
        world_facts=general(world_rows, "world_facts"),
        holdout=holdout,
        meta=meta,
        real_authors=general(real_rows, "real_authors"),
    )
