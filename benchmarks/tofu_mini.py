"""TOFU-mini end to end, timed: prepare + one ATWU run + TOFU evaluation (target <= 10 min).

    python benchmarks/tofu_mini.py [--tofu-dir DIR] [--out DIR]

Builds into a temporary folder by default, so the committed sample_data/tofu_mini/ is left alone.
Prints each stage's seconds, peak RSS, and the run's forget quality, model utility and span AUROC
next to those of the full model (before unlearning) and the retain model (the target).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from atwu_core.cli import _quiet_transformers
from atwu_core.compare import reference_evals
from atwu_core.config import UnlearnConfig
from atwu_core.prepare import prepare_tofu_mini
from atwu_core.runs import eval_value, load_run
from atwu_core.train import unlearn

LOCAL_TOFU = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu"
BUDGET_S = 600
KEYS = ("forget_quality", "model_utility", "span/auroc", "forget/rouge", "retain/rouge")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = str(LOCAL_TOFU) if LOCAL_TOFU.is_dir() else "hf:locuslab/TOFU"
    parser.add_argument("--tofu-dir", default=default, help=f"default: {default}")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    _quiet_transformers()
    out = Path(args.out or tempfile.mkdtemp(prefix="atwu-tofu-mini-"))
    times: dict[str, float] = {}

    start = time.perf_counter()
    report = prepare_tofu_mini(out, args.tofu_dir)
    times["prepare"] = time.perf_counter() - start

    t = time.perf_counter()
    config = UnlearnConfig(
        method="atwu", model=str(out / "models" / "full"), data=str(out / "benchmark")
    )
    run = load_run(unlearn(config, runs_dir=out / "runs", evaluate=True))
    times["atwu unlearn + eval"] = time.perf_counter() - t
    total = time.perf_counter() - start

    t = time.perf_counter()
    refs = reference_evals(config)  # the retain model's eval is cached by now
    times["full-model eval (context)"] = time.perf_counter() - t

    # Training runs in child processes: report the larger of parent and child peaks.
    peak_mb = max(
        resource.getrusage(who).ru_maxrss / 1024
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    for stage, seconds in {**report["timings"], **times}.items():
        print(f"{stage:<28} {seconds:7.1f} s")
    print(f"{'prepare + ATWU + eval':<28} {total:7.1f} s   (target <= {BUDGET_S} s)")
    print(f"{'peak RSS':<28} {peak_mb:7.0f} MB")
    print(f"\n{'':<24}" + "".join(f"{k:>15}" for k in KEYS))
    rows = {
        "full model (before)": refs["full"]["metrics"],
        "atwu": run.eval["metrics"],
        "retain model (target)": refs["retain"]["metrics"],
    }
    for name, metrics in rows.items():
        values = [eval_value({"metrics": metrics}, k) for k in KEYS]
        print(f"{name:<24}" + "".join(f"{'-' if v is None else f'{v:.3g}':>15}" for v in values))
    print("\nprepare quality (stored bf16 weights):")
    print(json.dumps(report["quality"], indent=2))


if __name__ == "__main__":
    main()
