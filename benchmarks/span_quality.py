"""How well do derived TOFU forget spans cover the independent entity annotation?

    .venv/bin/python benchmarks/span_quality.py [TOFU_DIR] [--rule v1|v2|all]

Loads TOFU forget10 from TOFU_DIR (default ../shared/data/tofu) with each span rule
(`atwu_core.data.tofu.SPAN_RULES`) and prints, per half of forget10 (idx 0-199, on which v2 was
tuned; idx 200-399, held out; all), the measures of `atwu_core.data.span_quality.span_quality`:
entity recall (entities with >= 50 % of their characters in spans), character recall, share of
answer characters marked, answers with no span beyond the author's name, and a weak precision
(span characters in the entity or the name; it under-counts, the annotation marks one entity per
answer). Torch-free, a few seconds per rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from atwu_core.data.entity_spans import map_entity_spans  # noqa: E402
from atwu_core.data.span_quality import forget10_halves, span_quality  # noqa: E402
from atwu_core.data.tofu import SPAN_RULES, load_tofu  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tofu_dir", nargs="?", default=str(ROOT.parent / "shared/data/tofu"))
    parser.add_argument("--rule", default="all", choices=[*SPAN_RULES, "all"])
    args = parser.parse_args(argv)
    rules = list(SPAN_RULES) if args.rule == "all" else [args.rule]
    for rule in rules:
        bench = load_tofu(args.tofu_dir, forget="forget10", span_rule=rule)
        entities = {k: v[0] for k, v in map_entity_spans(bench.forget).spans.items()}
        spans = {it.id: it.spans for it in bench.forget}
        print(f"== {bench.meta['span_rule']}")
        for label, items in forget10_halves(bench.forget).items():
            print("\n".join(span_quality(items, spans, entities).lines(label)))
        print()


if __name__ == "__main__":
    main()
