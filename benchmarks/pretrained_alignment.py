"""Do a pretrained model's hidden states make learned token weights align better with the facts?

    .venv/bin/python benchmarks/pretrained_alignment.py [--tiny DIR] [--pretrained DIR]
                                                       [--resamples N]

Both run folders unlearn the same 40 TOFU-mini forget rows with the same methods: DIR --tiny
(default sample_data/tofu_mini/runs) on the 2 M-parameter model trained from scratch, DIR
--pretrained (default sample_data/tofu_mini_smollm2/runs) on SmolLM2-135M-Instruct fine-tuned with
LoRA (docs/RESULTS.md, "SmolLM2"). For every method run in both, the last snapshot's weights over
the whole forget set are scored against two labels:

- **derived**: the benchmark's own spans (`in_span`, rule tofu-spans-v1), pooled AUROC over the
  tokens in the loss, as the runs' `span/auroc`;
- **entity**: the independent TOFU entity annotation (`atwu_core.data.entity_spans`, one key
  entity per answer, names in prefixes unmarked: recall-style), pooled AUROC over the annotated
  rows.

The rows are the same on both models, so the difference pretrained − tiny is paired by row: its
95 % interval is a percentile bootstrap over forget rows (`--resamples`, seed 0). One training
seed per model: the interval covers which rows were drawn, not training noise. Torch-free.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sklearn.metrics import roc_auc_score  # noqa: E402
from tabulate import tabulate  # noqa: E402

from atwu_core.data import spec as data_spec  # noqa: E402
from atwu_core.data.entity_spans import CAPTION, label_entity_tokens, map_entity_spans  # noqa: E402
from atwu_core.runs import FORGET_WEIGHTS, read_info, read_token_weights, variant  # noqa: E402

LABELS = ("derived", "entity")
# The last snapshot's accuracies (metrics.jsonl): the forget answers' span and other tokens.
ACCURACIES = ("forget/acc", "forget/span_acc", "forget/other_acc", "retain/acc")


def run_label(info: dict[str, Any]) -> str:
    """The method with its scorer variant, as the seed study names rows: `atwu[scorer_position=
    prev,update_every=1,lambda_2=0.01]`."""
    changed = variant(info.get("config") or {})
    return f"{info.get('method', '?')}[{changed}]" if changed else str(info.get("method", "?"))


def token_table(folder: Path, entity_spans) -> pd.DataFrame:
    """The last snapshot's loss tokens: example_id, weight, derived (bool), entity (bool/None)."""
    df = read_token_weights(folder, FORGET_WEIGHTS)
    df = df[(df["step"] == df["step"].max()) & df["in_loss"]].reset_index(drop=True)
    entity = label_entity_tokens(df.to_dict("records"), entity_spans)
    return pd.DataFrame(
        {
            "example_id": df["example_id"],
            "weight": df["weight"].astype(float),
            "derived": df["in_span"].astype(bool),
            "entity": entity,
        }
    )


def pooled_auroc(tokens: pd.DataFrame, label: str) -> float:
    """Pooled AUROC of the weights for `label` (None labels, unannotated rows, left out); 0.5
    when every weight is equal (a constant scorer ranks nothing), nan with one class only."""
    t = tokens[tokens[label].notna()]
    y = t[label].astype(bool).to_numpy()
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, t["weight"].to_numpy()))


def _by_row(tokens: pd.DataFrame, label: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """example_id -> (weights, labels) of the tokens that have `label` (arrays: fast resampling)."""
    t = tokens[tokens[label].notna()]
    return {
        k: (g["weight"].to_numpy(float), g[label].to_numpy(bool))
        for k, g in t.groupby("example_id")
    }


def _auroc(parts: list[tuple[np.ndarray, np.ndarray]]) -> float:
    y = np.concatenate([p[1] for p in parts])
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.concatenate([p[0] for p in parts])))


def paired_difference(
    tiny: pd.DataFrame, pre: pd.DataFrame, label: str, resamples: int, seed: int = 0
) -> tuple[float, float, float]:
    """(pretrained − tiny AUROC, 2.5 %, 97.5 % bootstrap bounds), rows resampled jointly."""
    by_t, by_p = _by_row(tiny, label), _by_row(pre, label)
    rows = sorted(set(by_t) & set(by_p))
    point = pooled_auroc(pre, label) - pooled_auroc(tiny, label)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        pick = rng.choice(len(rows), size=len(rows), replace=True)
        draws.append(_auroc([by_p[rows[i]] for i in pick]) - _auroc([by_t[rows[i]] for i in pick]))
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return point, float(lo), float(hi)


def load_runs(runs_dir: Path) -> dict[str, tuple[Path, dict]]:
    """label -> (folder, run.json) for the finished runs with forget weights (newest wins)."""
    out = {}
    for folder in sorted(p for p in runs_dir.iterdir() if (p / FORGET_WEIGHTS).is_file()):
        info = read_info(folder)
        if info.get("status") == "finished":
            out[run_label(info)] = (folder, info)
    return out


def last_snapshot(folder: Path) -> dict[str, Any]:
    """The last metrics.jsonl row that holds the snapshot accuracies, and the run's seconds."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    snap = [r for r in rows if "forget/acc" in r][-1]
    return {**{k: snap.get(k) for k in ACCURACIES}, "step": snap["step"],
            "seconds": max(r.get("time_s", 0.0) for r in rows)}  # fmt: skip


def compare(tiny_dir: Path, pre_dir: Path, resamples: int) -> list[dict[str, Any]]:
    tiny_runs, pre_runs = load_runs(tiny_dir), load_runs(pre_dir)
    spans: dict[str, Any] = {}
    results = []
    for label in [k for k in pre_runs if k in tiny_runs]:
        tables = []
        for folder, info in (tiny_runs[label], pre_runs[label]):
            data = info["config"]["data"]
            if data not in spans:
                resolved = data if Path(data).exists() else str(ROOT / data)
                spans[data] = map_entity_spans(data_spec.load(resolved).forget).spans
            tables.append(token_table(folder, spans[data]))
        tiny, pre = tables
        row: dict[str, Any] = {
            "method": label,
            "tiny_run": last_snapshot(tiny_runs[label][0]),
            "pre_run": last_snapshot(pre_runs[label][0]),
        }
        for name in LABELS:
            row[f"{name}_tiny"] = pooled_auroc(tiny, name)
            row[f"{name}_pre"] = pooled_auroc(pre, name)
            row[f"{name}_diff"] = paired_difference(tiny, pre, name, resamples)
        results.append(row)
    return results


def _cell(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def _diff(d: tuple[float, float, float]) -> str:
    point, lo, hi = d
    if np.isnan(point):
        return "n/a"
    return f"{point:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", default=str(ROOT / "sample_data/tofu_mini/runs"))
    parser.add_argument("--pretrained", default=str(ROOT / "sample_data/tofu_mini_smollm2/runs"))
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    results = compare(Path(args.tiny), Path(args.pretrained), args.resamples)
    if not results:
        print(f"no method has a finished run in both {args.tiny} and {args.pretrained}")
        return 1
    table = [
        [
            r["method"],
            *(_cell(r[f"{n}_{m}"]) for n in LABELS for m in ("tiny", "pre")),
            *(_diff(r[f"{n}_diff"]) for n in LABELS),
        ]
        for r in results
    ]
    headers = [
        "method",
        "derived: tiny",
        "derived: SmolLM2",
        "entity: tiny",
        "entity: SmolLM2",
        "derived: SmolLM2 − tiny [95 %]",
        "entity: SmolLM2 − tiny [95 %]",
    ]
    print(f"Span AUROC of the last snapshot, {args.tiny} (tiny) vs {args.pretrained} (SmolLM2).")
    print(f"Entity columns: {CAPTION}")
    print(f"Intervals: paired bootstrap over forget rows, {args.resamples} resamples.")
    print(tabulate(table, headers=headers, tablefmt="github"))
    print()
    print("Token accuracy at the last snapshot (span / other: the forget answers' derived-span")
    print("tokens and the rest), and the seconds to the last step (earlier snapshots included):")
    acc_rows = []
    for r in results:
        for model, key in (("tiny", "tiny_run"), ("SmolLM2", "pre_run")):
            run = r[key]
            acc_rows.append(
                [r["method"], model, run["step"], *(_cell(run[k]) for k in ACCURACIES),
                 f"{run['seconds']:.0f}"]
            )  # fmt: skip
    print(tabulate(acc_rows, headers=["method", "model", "step", *ACCURACIES, "seconds"],
                   tablefmt="github"))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
