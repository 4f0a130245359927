"""`atwu study`: the science protocol in one command (the orchestration).

The protocol, its constants and the statistics of the headline table are pure and live in
`atwu_core.evaluation.study_stats`; this module prepares the benchmarks, runs the jobs (resumable,
one single-threaded process each) and collects one board row per run.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from atwu_core.config import UnlearnConfig
from atwu_core.evaluation.study_stats import (
    CORE_METHODS,
    REGIMES,
    REPORT_SEEDS,
    TUNING_SEED,
    UTILITY_KEEP,
    parse_method,
)


def board_row(path: Path, regime: str, seed: int, full_utility: float | None) -> dict[str, Any]:
    """One run folder as a study row: identity, every eval metric's agg_value, log10 FQ and
    whether it keeps UTILITY_KEEP x the full model's utility."""
    from atwu_core.runs import load_run

    run = load_run(path)
    row: dict[str, Any] = {
        "regime": regime,
        "method": run.method,
        "seed": seed,
        "run": str(path),
    }
    metrics = (run.eval or {}).get("metrics", {})
    for key, entry in metrics.items():
        if isinstance(entry, dict) and isinstance(entry.get("agg_value"), (int, float)):
            row[key] = float(entry["agg_value"])
    fq = row.get("forget_quality")
    row["log10_fq"] = math.log10(max(fq, 1e-300)) if fq is not None else math.nan
    mu = row.get("model_utility")
    row["utility_ok"] = bool(
        full_utility is not None and mu is not None and mu >= UTILITY_KEEP * full_utility
    )
    return row


def prepared_benchmark(bench_seed: int, progress: Callable[[str], None]) -> Path:
    """Folder with `benchmark/` and `models/{full,retain}` for a generator seed, built once and
    cached under `$ATWU_CACHE/study/` (a half-built folder, without its report, is rebuilt)."""
    from atwu_core.cache import cache_root
    from atwu_core.data.benchmark import GENERATOR_VERSION
    from atwu_core.prepare import prepare

    root = cache_root() / "study" / f"bench-v{GENERATOR_VERSION}-b{bench_seed}"
    if not (root / "models" / "prepare_report.json").exists():
        progress(f"prepare benchmark seed {bench_seed} (~2.5 min)")
        prepare(root, bench_seed=bench_seed, seed=0)
    return root


def run_study(
    out: str | Path,
    *,
    methods: Sequence[str] = CORE_METHODS,
    report_seeds: Sequence[int] = REPORT_SEEDS,
    regimes: Sequence[str] = ("default",),
    long_methods: Sequence[str] | None = CORE_METHODS,
    tuned: dict[str, dict[str, Any]] | None = None,
    jobs: int = 1,
    progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Run the protocol (module docstring) into `out`; returns the board (also `study.csv`).

    `tuned` maps a method label to the UnlearnConfig fields of its best tuned config (`hparams`,
    `lr`, `alpha`); methods not in it run with the defaults. `jobs` > 1 runs that many runs at
    once, each in its own single-threaded process (tiny models use one core better than two
    threads). A run whose folder already holds a finished evaluation is reused, so an interrupted
    study picks up where it stopped.
    """
    from atwu_core.evaluation.protocol import reference_evals
    from atwu_core.methods import get_method
    from atwu_core.run_setup import split_hparams

    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        raise ValueError(f"unknown regime {unknown}; one of {list(REGIMES)}")
    if TUNING_SEED in report_seeds:
        raise ValueError(f"report seeds {list(report_seeds)} include the tuning seed {TUNING_SEED}")
    if jobs < 1:
        raise ValueError(f"jobs={jobs} must be >= 1")
    tuned = tuned or {}
    for label in methods:  # a typo fails now, not after an hour of runs
        name, overrides = parse_method(label)
        split_hparams(get_method(name), overrides | tuned.get(label, {}).get("hparams", {}))
    out = Path(out)
    start = time.perf_counter()
    plan = []
    for bench_seed in report_seeds:
        root = prepared_benchmark(bench_seed, progress)
        base = UnlearnConfig(
            model=str(root / "models" / "full"), data=str(root / "benchmark"), conflict=False
        )
        full_eval = reference_evals(base).get("full")
        full_utility = full_eval["metrics"]["model_utility"]["agg_value"] if full_eval else None
        for regime in regimes:
            for label in methods:
                if regime == "long" and long_methods is not None and label not in long_methods:
                    continue
                name, overrides = parse_method(label)
                best = dict(tuned.get(label, {}))
                best["hparams"] = overrides | best.get("hparams", {})
                cfg = dataclasses.replace(base, method=name, **REGIMES[regime], **best)
                folder = out / "runs" / regime / f"b{bench_seed}" / _slug(label)
                plan.append((cfg, folder, regime, bench_seed, label, full_utility))
    rows = []
    if jobs == 1:
        for n, job in enumerate(plan, start=1):
            progress(f"[{n}/{len(plan)}] seed {job[3]} · {job[2]} · {job[4]}")
            rows.append(_run_job(job))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_one_thread) as pool:
            for n, row in enumerate(pool.map(_run_job, plan), start=1):
                progress(
                    f"[{n}/{len(plan)}] seed {row['seed']} · {row['regime']} · {row['method']}"
                )
                rows.append(row)
    board = pd.DataFrame(rows)
    board["config"] = ["tuned" if m in tuned else "default" for m in board["method"]]
    out.mkdir(parents=True, exist_ok=True)
    board.to_csv(out / "study.csv", index=False)
    board.attrs["seconds"] = time.perf_counter() - start
    return board


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _run_job(job: tuple) -> dict[str, Any]:
    """One study run (reused when its folder holds a finished evaluation) as a board row."""
    import shutil

    from atwu_core.runs import read_eval, read_info
    from atwu_core.train import unlearn

    cfg, folder, regime, bench_seed, label, full_utility = job
    done = folder.is_dir() and (folder / "run.json").exists() and (folder / "eval.json").exists()
    reused = done and read_info(folder).get("status") == "finished" and bool(read_eval(folder))
    if reused:
        path = folder
    else:
        shutil.rmtree(folder, ignore_errors=True)  # a run cut short: start it again
        path = unlearn(cfg, runs_dir=folder.parent, run_id=folder.name, evaluate=True)
    row = board_row(path, regime, bench_seed, full_utility)
    return row | {"method": label, "reused": reused}
