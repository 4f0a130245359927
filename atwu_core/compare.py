"""`atwu compare`: many methods x seeds (x one swept hyperparameter), evaluated, on one leaderboard.

Writes every run folder plus `leaderboard.csv` (one row per run) and `leaderboard.md` (mean ± std
over seeds per method and swept value) into the runs folder. With `tuned` (best.json of `atwu tune`
studies, docs/TUNING.md) those methods run their tuned config; the `config` column says `default`
or `tuned` on every row.

Interrupted (Ctrl-C, SIGTERM, a cancel file) it stops as a whole: the leaderboard then holds the
runs that finished (never the interrupted one) and `board.attrs["interrupted"]` says where it
stopped.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from atwu_core.config import UnlearnConfig
from atwu_core.evaluation.protocol import reference_evals

# The columns a reader of the leaderboard wants first, in this order (FORMATS.md metric names).
LEADERBOARD_COLUMNS = (
    "forget_quality",
    "model_utility",
    "forget/rouge",
    "retain/rouge",
    "forget/prob",
    "retain/prob",
    "selectivity",
    "forget/span_token_acc",
    "forget/other_token_acc",
    "span/auroc",
    "span/no_end/auroc",
    "span/ap",
    "privacy/mink_auc",
    # RWKU runs (docs/DATA.md "RWKU"); a column no run has is left out of the summary.
    "rwku/forget_avg_rougeL",
    "rwku/neighbor_avg_rougeL",
    "rwku/mia_auc",
    "rwku/utility_general_acc",
    "run/seconds",
)


def plan(
    methods: Sequence[str], seeds: Sequence[int], sweep: tuple[str, list[str]] | None
) -> list[tuple[str, int, dict[str, str]]]:
    """Every (method, seed, hparam override) to run, in a stable order."""
    values: list[dict[str, str]] = [{}]
    if sweep is not None:
        name, vals = sweep
        values = [{name: v} for v in vals]
    return [(m, s, v) for m, v, s in itertools.product(methods, values, seeds)]


def parse_sweep(text: str | None) -> tuple[str, list[str]] | None:
    """`beta=1,2,5` -> ("beta", ["1", "2", "5"])."""
    if not text:
        return None
    name, sep, vals = text.partition("=")
    values = [v.strip() for v in vals.split(",") if v.strip()]
    if not sep or not name.strip() or not values:
        raise ValueError(f"--sweep expects name=v1,v2,..., got {text!r}")
    return name.strip(), values


def leaderboard_row(path: Path) -> dict[str, Any]:
    from atwu_core.runs import eval_value, load_run, variant

    run = load_run(path)
    cfg = run.info.get("config", {})
    # A scorer variant is its own row, named as the seed study names it: atwu[scorer_position=..]
    changed = variant(cfg)
    row: dict[str, Any] = {
        "method": f"{run.method}[{changed}]" if changed else run.method,
        "config": "default",
        "seed": cfg.get("seed"),
        "run_id": run.run_id,
        "status": run.status,
    }
    for key in LEADERBOARD_COLUMNS:
        row[key] = eval_value(run.eval, key)
    return row


REFERENCES = {"full": "full model (before)", "retain": "retain model (target)"}


def write_reference_runs(runs_dir: Path, base: UnlearnConfig, evals: dict[str, Any]) -> None:
    """Eval-only run folders `reference-full` / `reference-retain`, so every view (generations,
    trade-offs) can show the models before unlearning and the target next to the methods."""
    from atwu_core.cancel import shielded
    from atwu_core.evaluation.protocol import retain_model_for
    from atwu_core.runs import RunWriter

    models = {"full": base.model, "retain": retain_model_for(base)}
    for name, ev in evals.items():
        if (runs_dir / f"reference-{name}").exists():
            continue
        with shielded():  # a folder is written whole: never left at "running"
            writer = RunWriter.create(
                runs_dir,
                method=name,
                config={"model": models[name], "data": base.data, "seed": None, "reference": True},
                environment={},
                total_steps=0,
                run_id=f"reference-{name}",
            )
            writer.write_eval(ev)
            writer.finish("finished")


def reference_rows(evals: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, ev in evals.items():
        row: dict[str, Any] = {
            "method": REFERENCES[name],
            "config": "default",  # the untouched full / retain model
            "seed": None,
            "run_id": f"reference-{name}",
            "status": "reference",
        }
        for key in LEADERBOARD_COLUMNS:
            entry = ev["metrics"].get(key)
            row[key] = entry["agg_value"] if entry else None
        rows.append(row)
    return rows


def rebuild_leaderboard(runs_dir: str | Path) -> pd.DataFrame:
    """leaderboard.csv / .md over every evaluated, finished run folder in `runs_dir`: references
    first, then runs oldest first. For a folder filled by several `atwu compare` or `atwu unlearn
    --eval` calls, since each compare writes the board of its own runs only."""
    from atwu_core.runs import list_runs, read_eval

    runs_dir = Path(runs_dir)
    table = list_runs(runs_dir)
    table = table[table["error"].isna() & (table["status"] == "finished")]
    references, rows = [], []
    for r in table.sort_values(["created", "run_id"]).itertuples():
        path = Path(r.path)
        ev = read_eval(path)
        if not ev:
            continue
        if r.reference and r.method in REFERENCES:
            references += reference_rows({r.method: ev})
        elif not r.reference:
            rows.append(leaderboard_row(path))
    references.sort(key=lambda row: row["run_id"])
    return write_leaderboard(runs_dir, references + rows, None)


def summarise(board: pd.DataFrame, sweep_name: str | None) -> pd.DataFrame:
    """Mean and std over seeds per method (and swept value)."""
    keys = ["method", "config"] + ([sweep_name] if sweep_name else [])
    numeric = [c for c in LEADERBOARD_COLUMNS if c in board and board[c].notna().any()]
    grouped = board.groupby(keys, sort=False)[numeric]
    mean, std = grouped.mean(), grouped.std(ddof=0).fillna(0.0)
    out = mean.copy()
    for col in numeric:
        out[col] = [
            "–" if pd.isna(m) else f"{m:.3g} ± {s:.2g}"
            for m, s in zip(mean[col], std[col], strict=True)
        ]
    out["seeds"] = grouped.size()
    return out.reset_index()


def _tuned_hparams(tuned: Mapping[str, Mapping[str, Any]], method: str) -> dict[str, Any]:
    return dict(tuned[method]["hparams"]) if method in tuned else {}


def compare(
    methods: Sequence[str],
    seeds: Sequence[int],
    runs_dir: str | Path,
    base: UnlearnConfig,
    *,
    sweep: tuple[str, list[str]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    save_model_for: Sequence[str] = (),
    tuned: Mapping[str, Mapping[str, Any]] | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> pd.DataFrame:
    """Run and evaluate the whole plan; returns the per-run leaderboard (also written to disk).

    `tuned` maps a method to its best.json (`atwu_core.tune.load_tuned`): that method runs the
    tuned hparams, lr and alpha (`--set` and `sweep` values still override). Refused (ValueError)
    when `base.data` has the generator seed the study was tuned on. `callback` goes to every
    run's `unlearn` (step progress).

    `board.attrs`: `runs` (finished method runs), `references` (reference rows) and
    `interrupted` (None, or what was interrupted: the run, or the reference phase).
    """
    from atwu_core.methods import get_method
    from atwu_core.run_setup import split_hparams
    from atwu_core.train import unlearn

    tuned = dict(tuned or {})
    extra = sorted(set(tuned) - set(methods))
    if extra:
        raise ValueError(f"--tuned holds studies of {extra}, which are not in --methods")
    if tuned:
        from atwu_core.tune import check_report_data

        check_report_data(tuned, base.data)
    jobs = plan(methods, seeds, sweep)
    for method, _, override in jobs:  # fail on a typo before hours of runs, not after
        split_hparams(
            get_method(method), {**_tuned_hparams(tuned, method), **base.hparams, **override}
        )
    from atwu_core.runs import read_info

    for _, _, override in jobs:
        check_finite(override)
    check_finite(base.hparams)
    runs_dir = Path(runs_dir)
    rows: list[dict[str, Any]] = []
    interrupted: str | None = None
    for i, (method, seed, override) in enumerate(jobs):
        label = f"{method} seed={seed}" + "".join(f" {k}={v}" for k, v in override.items())
        if progress is not None:
            progress(i, len(jobs), label)
        cfg = dataclasses.replace(
            base,
            method=method,
            seed=seed,
            hparams={**_tuned_hparams(tuned, method), **base.hparams, **override},
            save_model=base.save_model or method in save_model_for,
        )
        if method in tuned:
            best = tuned[method]
            cfg = dataclasses.replace(
                cfg, lr=best["lr"], alpha=best["alpha"], tuned_from=best.get("study_dir")
            )
        try:
            path = unlearn(cfg, runs_dir=runs_dir, evaluate=True, callback=callback)
        except KeyboardInterrupt:  # before its run folder existed (loading)
            interrupted = f"run {i + 1}/{len(jobs)} ({label}), while starting"
            break
        if path is not None and read_info(path).get("status") != "finished":
            interrupted = f"run {i + 1}/{len(jobs)} ({label}, {path.name}, not counted)"
            break
        row = leaderboard_row(path)
        row["config"] = "tuned" if method in tuned else "default"
        if sweep is not None:
            row[sweep[0]] = override[sweep[0]]
        rows.append(row)
    runs_dir.mkdir(parents=True, exist_ok=True)
    evals: dict[str, dict[str, Any]] = {}
    if interrupted is None:
        if progress is not None:
            progress(len(jobs), len(jobs), "reference models")
        try:
            evals = reference_evals(base)
            write_reference_runs(runs_dir, base, evals)
        except KeyboardInterrupt:
            interrupted, evals = "the reference phase (full / retain model evaluations)", {}
    if progress is not None and interrupted is None:
        progress(len(jobs), len(jobs), "done")
    from atwu_core.cancel import shielded

    with shielded():  # the leaderboard of what finished is written whole
        board = write_leaderboard(runs_dir, reference_rows(evals) + rows, sweep)
    board.attrs.update(runs=len(rows), references=len(evals), interrupted=interrupted)
    return board


def write_leaderboard(
    runs_dir: Path, rows: list[dict[str, Any]], sweep: tuple[str, list[str]] | None
) -> pd.DataFrame:
    """leaderboard.csv (one row per run) and leaderboard.md (mean ± std over seeds)."""
    columns = ["method", "config", "seed", "run_id", "status", *LEADERBOARD_COLUMNS]
    board = pd.DataFrame(rows, columns=columns + ([sweep[0]] if sweep else []))
    board.to_csv(runs_dir / "leaderboard.csv", index=False)
    if board.empty:
        text = "No run finished: the leaderboard is empty.\n"
    else:
        text = summarise(board, sweep[0] if sweep else None).to_markdown(index=False) + "\n"
    (runs_dir / "leaderboard.md").write_text(text)
    return board


def check_finite(hparams: Mapping[str, Any]) -> None:
    """Refuse inf/nan hyperparameters (`--set beta=inf` zeroes every weight: nothing learned)."""
    import math

    for name, value in hparams.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(number):
            raise ValueError(f"--set {name}={value}: must be a finite number")
