"""How well do finished runs' token weights pick out the independent TOFU entity spans?

    .venv/bin/python benchmarks/entity_alignment.py [RUNS_DIR] [--data SPEC] [--step N]

For every run folder in RUNS_DIR (default: sample_data/tofu_mini/runs) that has
`forget_weights.parquet`, the last snapshot's weights (or `--step`) are scored against the entity
annotation shipped in atwu_core/data/tofu_entity_spans/ (docs/DATA.md, "Independent entity spans
(TOFU forget10)") with `atwu_core.data.entity_spans.entity_alignment`: no retraining. The forget
rows' text comes from the run's recorded `--data` (or `--data`): it is checked against the
annotation, so a run on other text is refused. Reference runs without weights are skipped.

Printed: a table with the method, entity AUROC, mean rank-percentile of entity tokens, recall@k,
the run's own `span/auroc` (eval.json) and which spans it ran with (derived, or entity for
`--data tofu:<split>+entity`), the annotated rows used and the forget rows without an
annotation, under a caption saying the measure is recall-style.
Torch-free.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tabulate import tabulate  # noqa: E402

from atwu_core.data import spec as data_spec  # noqa: E402
from atwu_core.data.entity_spans import CAPTION, entity_alignment, map_entity_spans  # noqa: E402
from atwu_core.runs import FORGET_WEIGHTS, read_eval, read_info, read_token_weights  # noqa: E402


def _resolve(data: str) -> str:
    """A relative benchmark folder recorded by a run started at the repository root."""
    parsed = data_spec.parse(data)
    if parsed.loader == "benchmark" and not Path(data).exists() and (ROOT / data).exists():
        return str(ROOT / data)
    if parsed.loader != "benchmark" and parsed.source and not parsed.is_hub:
        folder = Path(parsed.source.partition("#")[0])
        if not folder.exists() and (ROOT / folder).exists():
            return data_spec.with_folder(
                data_spec.format(
                    data_spec.DataSpec(parsed.loader, parsed.selection, "", parsed.spans)
                ),
                str(ROOT / parsed.source),
            )
    return data


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def align_runs(runs_dir: Path, data: str | None = None, step: int | None = None) -> list[dict]:
    """One result dict per run folder with forget weights (sorted by folder name)."""
    spans_by_data: dict[str, Any] = {}
    results = []
    for folder in sorted(p for p in runs_dir.iterdir() if (p / FORGET_WEIGHTS).is_file()):
        info = read_info(folder)
        source = data or (info.get("config") or {}).get("data")
        if not source:
            raise SystemExit(f"{folder}: run.json records no data; pass --data")
        if source not in spans_by_data:
            bench = data_spec.load(_resolve(source))
            spans_by_data[source] = map_entity_spans(bench.forget)
        mapping = spans_by_data[source]
        df = read_token_weights(folder, FORGET_WEIGHTS)
        at = int(df["step"].max()) if step is None else step
        rows = df[df["step"] == at].to_dict("records")
        if not rows:
            raise SystemExit(f"{folder}: no forget weights at step {at}")
        unknown = {r["example_id"] for r in rows} - set(mapping.spans) - set(mapping.unannotated)
        if unknown:
            raise SystemExit(
                f"{folder}: forget rows {sorted(unknown)[:3]} are not in {source}'s forget split"
            )
        got = entity_alignment(rows, mapping.spans)
        derived = ((read_eval(folder) or {}).get("metrics") or {}).get("span/auroc")
        results.append(
            {
                "run": folder.name,
                "method": info.get("method", "?"),
                "step": at,
                **got,
                "derived_auroc": derived["agg_value"] if derived else None,
                "span_source": data_spec.parse(source).spans or "derived",
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="?", default=str(ROOT / "sample_data/tofu_mini/runs"))
    parser.add_argument("--data", default=None, help="forget rows' source (default: the run's)")
    parser.add_argument("--step", type=int, default=None, help="snapshot step (default: last)")
    args = parser.parse_args(argv)
    results = align_runs(Path(args.runs), args.data, args.step)
    if not results:
        print(f"no run folder with {FORGET_WEIGHTS} in {args.runs}")
        return 1
    table = [
        [
            r["method"],
            _fmt(r["auroc"]),
            _fmt(r["rank_percentile"]),
            _fmt(r["recall_at_k"]),
            _fmt(r["derived_auroc"]),
            r["span_source"],
            r["n_examples"],
            r["n_unannotated"],
            r["step"],
            r["run"],
        ]
        for r in results
    ]
    headers = [
        "method",
        "entity AUROC",
        "entity rank pct",
        "entity recall@k",
        "run's span/auroc",
        "run's spans",
        "annotated rows",
        "unannotated",
        "step",
        "run",
    ]
    print(f"Entity-span alignment of {args.runs} (TOFU forget10 entity annotation).")
    print(CAPTION)
    print(
        "Entity columns: this annotation, annotated rows only, tokens in the loss (end token "
        "included, as in span/auroc); run's span/auroc: its eval.json value (all forget rows, "
        "against the spans it trained with: 'derived' = our own rule, 'entity' = this "
        "annotation with unannotated rows as negatives)."
    )
    print()
    print(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
