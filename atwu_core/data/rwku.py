"""Load RWKU (Real-World Knowledge Unlearning, `jinzhuoran/RWKU`, CC BY 4.0) as a `Benchmark`.

Source: a local folder holding RWKU's files under their hub names (`intro.json`,
`forget_level1.json`, `positive.json`, ... directly or under `All/`, as in a snapshot of the hub
repository) or, only when asked for with `hf:jinzhuoran/RWKU`, the Hugging Face hub through
`datasets` (imported lazily: heavy, and it talks to the network). The config -> file map and
every field checked here are documented, with where they come from, in docs/DATA.md ("RWKU").

RWKU gives unlearning *targets* (200 real people) and probes, no forget or retain training set.
How it becomes a `Benchmark` the training loop runs unchanged:

- forget: every passage of the chosen targets in a forget-corpus config (default
  `train_positive_llama3`, the corpus RWKU's own GA/NPO scripts train on), as a QA row whose
  question is the instruction the passage was generated from (`BIOGRAPHY_PROMPT`);
- retain: passages of the *other* targets of the same corpus, round-robin over targets, as many
  as forget rows (same genre, disjoint people; RWKU's probes stay evaluation-only);
- probes: the chosen targets' rows of every evaluation config, in `meta["rwku"]["probes"]`
  (consumed by `atwu_core.evaluation.rwku`).

Spans of forget passages (METHOD.md §4 ground truth), rule `SPAN_RULE`:

1. name: the target's name wherever it appears whole, the part before a comma ("Prince Harry" of
   "Prince Harry, Duke of Sussex"), and each name word of >= 3 letters that starts upper-case and
   is in no other target's name ("Quenby"; not "Vance" when two targets are called Vance);
2. alias: a double-quoted phrase of the target's `intro` ("King of Horror");
3. fact: a word with a digit, or a capitalised word not at a sentence start, that appears in no
   other target's passage (case-insensitive, possessive "'s" removed).

Overlaps merge into one span whose field is that of its longest member.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from itertools import zip_longest
from pathlib import Path
from typing import Any

from atwu_core.data.schema import SCHEMA_VERSION, Benchmark, QAItem, Span, iter_json_lines
from atwu_core.data.source import HUB_PREFIX, Row, Source, hub_source
from atwu_core.data.span_rules import POSSESSIVE, QUOTED, merge_spans, whole_word, word_key

HUB_REPO = "jinzhuoran/RWKU"
# Hub config -> file name in the repository's `All/` folder (dataset card, commit d72f493).
CONFIG_FILES = {
    "forget_target": "intro.json",
    "forget_level1": "forget_level1.json",
    "forget_level2": "forget_level2.json",
    "forget_level3": "forget_level3.json",
    "neighbor_level1": "neighbor_level1.json",
    "neighbor_level2": "neighbor_level2.json",
    "mia_forget": "forget_mia.json",
    "mia_retain": "retain_mia.json",
    "utility_general": "retain_mmlu.json",
    "utility_reason": "retain_bbh.json",
    "utility_truthfulness": "truthful.json",
    "utility_factuality": "triviaqa.json",
    "utility_fluency": "fluency.json",
    "train_original_passage": "passage.json",
    "train_positive_llama3": "positive.json",
    "train_negative_llama3": "negative.json",
    "train_pair_llama3": "pair.json",
    "train_refusal_llama3": "reject.json",
    "train_positive_phi3": "positive_phi.json",
    "train_negative_phi3": "negative_phi.json",
    "train_pair_phi3": "pair_phi.json",
    "train_refusal_phi3": "reject_phi.json",
}
_OBJ = "object"  # a nested JSON object (TruthfulQA's mc1_targets / mc2_targets)
# Required fields and their JSON types, per config; extra fields are allowed and ignored.
FIELDS: dict[str, dict[str, Any]] = {
    "forget_target": {"target": str, "intro": str},
    **{
        f"{kind}_level{n}": {"subject": str, "query": str, "answer": str, "level": str, "type": str}
        for kind, levels in (("forget", (1, 2, 3)), ("neighbor", (1, 2)))
        for n in levels
    },
    "mia_forget": {"text": str, "subject": str},
    "mia_retain": {"text": str, "subject": str},
    "utility_general": {"question": str, "choices": list, "answer": int, "subject": str},
    "utility_reason": {"task": str, "cot": str, "question": str, "answer": str, "subject": str},
    "utility_truthfulness": {
        "question": str,
        "mc1_targets": _OBJ,
        "mc2_targets": _OBJ,
        "subject": str,
    },
    "utility_factuality": {"question": str, "answers": list, "subject": str},
    "utility_fluency": {"instruction": str, "subject": str},
    "train_original_passage": {"text": str, "subject": str},
    **{
        f"train_{kind}_{model}": {"text": str, "subject": str}
        for kind in ("positive", "negative")
        for model in ("llama3", "phi3")
    },
    **{
        f"train_pair_{model}": {"prompt": str, "response": list, "subject": str}
        for model in ("llama3", "phi3")
    },
    **{
        f"train_refusal_{model}": {"instruction": str, "output": str, "subject": str}
        for model in ("llama3", "phi3")
    },
}
# Passages usable as the forget corpus: one text per row.
CORPUS_CONFIGS = (
    "train_positive_llama3",
    "train_positive_phi3",
    "train_original_passage",
    "train_negative_llama3",
    "train_negative_phi3",
)
DEFAULT_CORPUS = "train_positive_llama3"
# What `atwu_core.evaluation.rwku` evaluates: loading fails early when one is missing.
EVAL_CONFIGS = (
    "forget_level1",
    "forget_level2",
    "forget_level3",
    "neighbor_level1",
    "neighbor_level2",
    "mia_forget",
    "mia_retain",
    "utility_general",
    "utility_factuality",
)
# The instruction RWKU generated every corpus passage from (generation/pair_generation.py).
BIOGRAPHY_PROMPT = "Please write a short biography of {}."
SPAN_RULE = "rwku-spans-v1: name, alias (quoted in intro), fact (absent from other targets' text)"

_WORD = re.compile(r"\w+(?:[-'’]\w+)*")
# Text before a sentence-initial word: capitalised by grammar, so not evidence of a proper noun.
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|\n\s*|[\"“'‘(]\s*)$")
_FIELD_PRIORITY = ("name", "alias", "fact")
_BATCH = re.compile(r"first(\d+)")

# --------------------------------------------------------------------------------------------
# Reading configs
# --------------------------------------------------------------------------------------------


def open_source(source: str | os.PathLike[str]) -> Source:
    """A folder of RWKU's files, or `hf:jinzhuoran/RWKU` (the hub, only when asked for)."""
    text = os.fspath(source)
    if text.startswith(HUB_PREFIX):
        return hub_source(text[len(HUB_PREFIX) :], split_of=_hub_split)
    return _folder_source(Path(text))


def _folder_source(folder: Path) -> Source:
    if not folder.is_dir():
        raise ValueError(
            f"RWKU folder {folder} does not exist; pass a folder of RWKU's files "
            f"(intro.json, forget_level1.json, ...) or 'hf:{HUB_REPO}'"
        )

    def path(config: str) -> Path | None:
        # A snapshot of the hub repo keeps the files in All/; a plain copy may not.
        for candidate in (folder / "All" / CONFIG_FILES[config], folder / CONFIG_FILES[config]):
            if candidate.is_file():
                return candidate
        return None

    def rows(config: str) -> list[Row]:
        found = path(config)
        if found is None:
            raise ValueError(f"RWKU folder {folder} has no {CONFIG_FILES[config]} ({config})")
        return _read_json_rows(found)

    return Source(str(folder), lambda config: path(config) is not None, rows)


def _read_json_rows(path: Path) -> list[Row]:
    """RWKU's files are one JSON array of objects (per-target `intro.json`: a single object);
    JSON lines are accepted too. Errors name the file and the row."""
    text = path.read_text(encoding="utf-8")
    head = text.lstrip()[:1]
    if head not in ("[", "{"):
        raise ValueError(f"{path}: expected a JSON array of objects, starts with {head!r}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if head == "{":  # not one object: JSON lines, each line checked on its own
            return [(where, row) for where, _, row in iter_json_lines(path)]
        raise ValueError(
            f"{path}: invalid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        ) from None
    items = data if isinstance(data, list) else [data]
    return [(f"{path}, row {i}", row) for i, row in enumerate(items)]


def _hub_split(config: str) -> str:
    """The hub puts the target list and the training corpora in "train", probes in "test"."""
    return "train" if config == "forget_target" or config.startswith("train_") else "test"


def _require(source: Source, configs: Iterable[str]) -> None:
    missing = source.missing(configs)
    if missing:
        present = [config for config in CONFIG_FILES if source.has(config)]
        raise ValueError(
            f"RWKU source {source.describe} lacks "
            + ", ".join(f"{c} ({CONFIG_FILES[c]})" for c in missing)
            + "; it has: "
            + (", ".join(present) if present else "no RWKU file")
        )


def read_config(source: Source, config: str) -> list[dict[str, Any]]:
    """The rows of one config, each checked against `FIELDS[config]`, with a `where` key added.

    A bad row is a `ValueError` naming the file, the row, the field and the value.
    """
    if config not in CONFIG_FILES:
        raise ValueError(f"unknown RWKU config {config!r}; configs: {', '.join(CONFIG_FILES)}")
    fields = FIELDS[config]
    out = []
    for where, row in source.rows(config):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        for name, kind in fields.items():
            if name not in row:
                raise ValueError(
                    f"{where}: missing field {name!r} ({config} rows need {', '.join(fields)})"
                )
            _check_value(where, name, row[name], kind)
        if config == "utility_general" and not 0 <= row["answer"] < len(row["choices"]) <= 4:
            raise ValueError(
                f"{where}: field 'answer' = {row['answer']!r} must index one of the "
                f"{len(row['choices'])} choices (at most 4, letters A-D)"
            )
        out.append({**row, "where": where})
    return out


def _check_value(where: str, name: str, value: Any, kind: Any) -> None:
    if kind is _OBJ:
        ok = isinstance(value, dict)
        rule = "an object"
    elif kind is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value) and bool(value)
        rule = "a non-empty list of strings"
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        rule = "an int"
    else:
        ok = isinstance(value, str) and bool(value.strip())
        rule = "a non-empty string"
    if not ok:
        raise ValueError(f"{where}: field {name!r} must be {rule}, got {value!r:.80}")


# --------------------------------------------------------------------------------------------
# Choosing targets
# --------------------------------------------------------------------------------------------


def parse_selection(spec: str) -> tuple[str, str, str]:
    """`<subjects>@<folder | hf:jinzhuoran/RWKU>[#<corpus config>]` -> (subjects, source, corpus).

    The source is required: the hub is used only when named.
    """
    subjects, at, rest = spec.partition("@")
    if not at or not rest or not subjects.strip():
        raise ValueError(
            f"RWKU data {spec!r} must read rwku:<subjects>@<folder or hf:{HUB_REPO}>, e.g. "
            f"rwku:first10@hf:{HUB_REPO} or 'rwku:Stephen King,Confucius@data/rwku'"
        )
    source, hash_, corpus = rest.rpartition("#")
    if not hash_:
        return subjects.strip(), rest, DEFAULT_CORPUS
    if corpus not in CORPUS_CONFIGS:
        raise ValueError(f"unknown RWKU corpus {corpus!r}; corpora: {', '.join(CORPUS_CONFIGS)}")
    return subjects.strip(), source, corpus


def select_targets(spec: str, targets: list[str]) -> list[str]:
    """`firstN` (RWKU's batch setting: the first N targets), or a comma list of target names.

    Names may themselves hold commas ("Prince Harry, Duke of Sussex"): comma-separated pieces are
    joined back greedily into the longest known name.
    """
    batch = _BATCH.fullmatch(spec)
    if batch:
        n = int(batch.group(1))
        if not 1 <= n <= len(targets):
            raise ValueError(f"RWKU batch {spec!r}: the source has {len(targets)} targets")
        return targets[:n]
    known = set(targets)
    pieces = [p.strip() for p in spec.split(",")]
    chosen: list[str] = []
    i = 0
    while i < len(pieces):
        for j in range(len(pieces), i, -1):
            name = ", ".join(pieces[i:j])
            if name in known:
                break
        else:
            shown = ", ".join(targets[:20]) + (" ..." if len(targets) > 20 else "")
            raise ValueError(
                f"unknown RWKU subject {pieces[i]!r}; {len(targets)} subjects: {shown} "
                "(or firstN for the first N)"
            )
        if name not in chosen:
            chosen.append(name)
        i = j
    return chosen


# --------------------------------------------------------------------------------------------
# Spans
# --------------------------------------------------------------------------------------------


def vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """Word keys (lowercase, possessive removed) of some texts: rule 3's reference."""
    return frozenset(word_key(w) for text in texts for w in _WORD.findall(text))


def name_phrases(target: str, all_targets: Iterable[str]) -> list[str]:
    """Rule 1: the whole name, the part before a comma, and each unambiguous name word."""
    others = {w for t in all_targets if t != target for w in _WORD.findall(t)}
    phrases = [target]
    head = target.split(",", 1)[0].strip()
    if head != target:
        phrases.append(head)
    for word in _WORD.findall(target):
        if len(word) >= 3 and word[0].isupper() and word not in others:
            phrases.append(word)
    return list(dict.fromkeys(phrases))


def aliases(intro: str) -> list[str]:
    """Rule 2: the quoted phrases of a target's intro ('renowned as the "King of Horror"')."""
    return [(m.group(1) or m.group(2)).strip() for m in QUOTED.finditer(intro)]


def derive_spans(
    text: str, names: list[str], alias_list: list[str], other_words: frozenset[str]
) -> list[Span]:
    """Forget spans of one passage by the module's three rules; sorted, non-overlapping."""
    candidates: list[tuple[int, int, str]] = []
    for field, phrases in (("name", names), ("alias", alias_list)):
        for phrase in phrases:
            candidates += [(s, e, field) for s, e in whole_word(text, phrase)]
    for match in _WORD.finditer(text):
        word = match.group()
        proper = word[0].isupper() and not _SENTENCE_START.search(text, 0, match.start())
        if (proper or any(c.isdigit() for c in word)) and word_key(word) not in other_words:
            end = match.start() + len(POSSESSIVE.sub("", word))
            candidates.append((match.start(), end, "fact"))
    return merge_spans(candidates, _FIELD_PRIORITY)


# --------------------------------------------------------------------------------------------
# Assembling the benchmark
# --------------------------------------------------------------------------------------------


def load_rwku_selection(spec: str) -> Benchmark:
    """`atwu unlearn --data rwku:<spec>`: see `parse_selection`."""
    subjects, source, corpus = parse_selection(spec)
    return load_rwku(source, subjects, corpus=corpus)


def load_rwku(
    source: str | os.PathLike[str], subjects: str = "first10", corpus: str = DEFAULT_CORPUS
) -> Benchmark:
    """RWKU as a `Benchmark` (module docstring): forget = the chosen targets' corpus passages."""
    if corpus not in CORPUS_CONFIGS:
        raise ValueError(f"unknown RWKU corpus {corpus!r}; corpora: {', '.join(CORPUS_CONFIGS)}")
    src = open_source(source)
    _require(src, ["forget_target", corpus, *EVAL_CONFIGS])
    target_rows = read_config(src, "forget_target")
    targets = list(dict.fromkeys(row["target"] for row in target_rows))
    intro = {row["target"]: row["intro"] for row in target_rows}
    chosen = select_targets(subjects, targets)
    passages = read_config(src, corpus)
    for row in passages:
        if row["subject"] not in intro:
            raise ValueError(
                f"{row['where']}: field 'subject' = {row['subject']!r} is not a forget_target"
            )
    target_id = {name: k for k, name in enumerate(targets)}

    def item(index: int, row: dict[str, Any], spans: list[Span] | None = None) -> QAItem:
        return QAItem(
            id=f"{corpus}-{index:05d}",
            author_id=target_id[row["subject"]],
            author=row["subject"],
            question=BIOGRAPHY_PROMPT.format(row["subject"]),
            answer=row["text"],
            spans=spans or [],
        )

    selected = set(chosen)
    others = [t for t in targets if t not in selected]
    other_words = vocabulary(r["text"] for r in passages if r["subject"] not in selected)
    forget = []
    for index, row in enumerate(passages):
        if row["subject"] in selected:
            names = name_phrases(row["subject"], targets)
            spans = derive_spans(row["text"], names, aliases(intro[row["subject"]]), other_words)
            forget.append(item(index, row, spans))
    missing = [t for t in chosen if not any(it.author == t for it in forget)]
    if missing:
        raise ValueError(f"RWKU corpus {corpus} has no passage of {', '.join(missing)}")
    # Retain: other targets' passages, one target after the other in turn, as many as forget.
    by_target: dict[str, list[QAItem]] = {t: [] for t in others}
    for index, row in enumerate(passages):
        if row["subject"] in by_target:
            by_target[row["subject"]].append(item(index, row))
    pool = [it for group in zip_longest(*by_target.values()) for it in group if it is not None]
    retain = pool[: len(forget)]
    if not retain:
        raise ValueError(
            f"RWKU selection {subjects!r} leaves no other target's passages in {corpus} for the "
            f"retain term; select fewer than all {len(targets)} targets"
        )

    probes = {
        config: [
            {**row, "id": f"{config}-{k:05d}"}
            for k, row in enumerate(read_config(src, config))
            if row["subject"] in selected
        ]
        for config in EVAL_CONFIGS
    }
    empty = [c for c, rows in probes.items() if not rows]
    if empty:
        raise ValueError(
            f"RWKU source {src.describe}: no row of {', '.join(empty)} is about the chosen "
            f"targets ({', '.join(chosen)})"
        )
    authors = [{"author_id": target_id[t], "split": "forget", "name": t} for t in chosen]
    authors += [
        {"author_id": target_id[t], "split": "retain", "name": t}
        for t in others
        if any(it.author == t for it in retain)
    ]
    meta = {
        "schema": SCHEMA_VERSION,
        "source": "rwku",
        "rwku_source": src.describe,
        "corpus": corpus,
        "targets": chosen,
        "n_forget": len(chosen),
        "n_targets": len(targets),
        "span_rule": SPAN_RULE,
        "authors": authors,
        "rwku": {"probes": probes},
    }
    return Benchmark(forget=forget, retain=retain, world_facts=[], holdout=[], meta=meta)
