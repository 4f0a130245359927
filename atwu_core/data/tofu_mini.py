"""TOFU-mini: a slice of the real TOFU files small enough for the tiny model on a laptop CPU.

forget = TOFU `forget01` (its 2 authors, 40 rows, spans derived as in `load_tofu`); retain = the
first `n_retain_authors` retain authors (TOFU's `retain_perturbed` rows, so every retain row has the
paraphrase and wrong answers a truth ratio needs); world facts = all of TOFU's; holdout = the next
`n_holdout_authors` retain authors, which neither tiny model trains on (members vs non-members for
the Min-K privacy metric). TOFU's real-author questions are left out: a model trained from scratch
has no prior knowledge of real authors to keep, and the evaluation does not score them.

Spans are derived by `span_rule` (default: `load_tofu`'s, tofu-spans-v2) against the retain
authors TOFU-mini's model trains on (`n_retain_authors`), not against all 198 retain authors of
full TOFU: what is template or shared depends on what the model saw. meta records `span_rule`
and `span_reference`. Sample data built before this (meta without `span_reference`) has
tofu-spans-v1 spans derived against all 198 retain authors, i.e. `tofu:forget01`'s.
"""

from __future__ import annotations

import os
from typing import Any

from atwu_core.data.schema import Benchmark
from atwu_core.data.tofu import DEFAULT_SPAN_RULE, SPAN_RULES, derive_forget_spans, load_tofu

FORGET_CONFIG = "forget01"
SOURCE = "tofu-mini"


def tofu_mini(
    source: str | os.PathLike[str],
    n_retain_authors: int = 10,
    n_holdout_authors: int = 2,
    span_rule: str = DEFAULT_SPAN_RULE,
) -> Benchmark:
    """The TOFU-mini benchmark from a TOFU folder or `hf:locuslab/TOFU` (see the module doc).

    Row ids, author ids and text are those of `load_tofu(source, "forget01")`, so a TOFU-mini
    row can be looked up in the full benchmark; forget spans are derived against the kept retain
    authors (the module doc). Raises ValueError when the authors asked for
    exceed the retain authors that have perturbed answers.
    """
    for name, value, low in (
        ("n_retain_authors", n_retain_authors, 1),
        ("n_holdout_authors", n_holdout_authors, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    full = load_tofu(source, forget=FORGET_CONFIG, span_rule=span_rule)
    with_perturbed = set(full.meta["retain_perturbed_ids"])
    by_author: dict[int, list] = {}
    for item in full.retain:
        by_author.setdefault(item.author_id, []).append(item)
    # Authors in TOFU order whose every row has paraphrase + wrong answers (TOFU: the first 20).
    usable = [a for a, rows in by_author.items() if all(r.id in with_perturbed for r in rows)]
    wanted = n_retain_authors + n_holdout_authors
    if wanted > len(usable):
        raise ValueError(
            f"TOFU-mini asks for {n_retain_authors} retain + {n_holdout_authors} holdout authors "
            f"but {full.meta['tofu_source']} has perturbed answers (retain_perturbed) for only "
            f"{len(usable)} retain authors; ask for at most {len(usable)} in total"
        )
    retain_authors = usable[:n_retain_authors]
    holdout_authors = usable[n_retain_authors:wanted]
    retain = [item for a in retain_authors for item in by_author[a]]
    holdout = [item for a in holdout_authors for item in by_author[a]]
    forget_authors = sorted({item.author_id for item in full.forget})
    kept = {
        **dict.fromkeys(retain_authors, "retain"),
        **dict.fromkeys(forget_authors, "forget"),
        **dict.fromkeys(holdout_authors, "holdout"),
    }
    authors: list[dict[str, Any]] = [
        {**entry, "split": kept[entry["author_id"]]}
        for entry in full.meta["authors"]
        if entry["author_id"] in kept
    ]
    n_trained = len(retain_authors) + len(forget_authors)
    meta = {
        "source": SOURCE,
        "tofu_source": full.meta["tofu_source"],
        "forget_config": FORGET_CONFIG,
        "n_authors": n_trained,
        "forget_fraction": len(forget_authors) / n_trained,
        "n_forget": len(forget_authors),
        "n_retain": len(retain_authors),
        "n_holdout": len(holdout_authors),
        "span_rule": SPAN_RULES[span_rule],
        "span_reference": f"the {len(retain_authors)} retain authors TOFU-mini trains on",
        # Every kept retain row has a truth ratio: the evaluation may use them all.
        "retain_perturbed_ids": [item.id for item in retain],
        "authors": authors,
    }
    return Benchmark(
        forget=derive_forget_spans(full.forget, retain, span_rule),
        retain=retain,
        world_facts=full.world_facts,
        holdout=holdout,
        meta=meta,
    )
