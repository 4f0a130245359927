"""Step time of every method on the same batches, measured side by side (issue: engine).

    python benchmarks/step_time.py [--steps 30] [--methods atwu,grad_diff] [--full-runs]

For each method: one unlearning run of `--steps` steps with snapshots and conflict switched off
(they are the same for every method), timed per step from metrics.jsonl `time_s`; methods are
interleaved in rounds so machine noise hits all of them alike. Prints the mean step time and
the ratio to grad_diff (means, not medians: ATWU's scorer step runs every 5th step and must
count). `--full-runs` also times each method's default run end to end (snapshots included, no
evaluation), the "<= 60 s on 2 cores" target.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time

from atwu_core.cli import _quiet_transformers
from atwu_core.config import UnlearnConfig
from atwu_core.methods import REGISTRY
from atwu_core.runs import load_run
from atwu_core.train import unlearn


def step_times(method: str, steps: int, runs_dir: str) -> list[float]:
    cfg = UnlearnConfig(method=method, max_steps=steps, snapshot_every=10_000, conflict=False)
    metrics = load_run(unlearn(cfg, runs_dir=runs_dir)).metrics
    # time_s of steps 1..N; drop step 1 (warm-up) and step N (it takes the final snapshot)
    t = metrics["time_s"].tolist()[1:-1]
    return [b - a for a, b in itertools.pairwise(t)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", default="all")
    parser.add_argument("--full-runs", action="store_true")
    args = parser.parse_args()
    _quiet_transformers()
    methods = sorted(REGISTRY) if args.methods == "all" else args.methods.split(",")
    if "grad_diff" not in methods:
        methods.append("grad_diff")
    samples: dict[str, list[float]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for method in methods:
                samples[method] += step_times(method, args.steps, tmp)
        base = statistics.mean(samples["grad_diff"])
        print(f"{'method':<13} {'mean step':>12} {'x grad_diff':>12}")
        for method in methods:
            mean = statistics.mean(samples[method])
            print(f"{method:<13} {mean * 1000:9.1f} ms {mean / base:11.2f}x")
        if args.full_runs:
            print(f"\n{'method':<13} {'default run':>12}  (target <= 60 s, no evaluation)")
            for method in methods:
                start = time.perf_counter()
                unlearn(UnlearnConfig(method=method), runs_dir=tmp)
                print(f"{method:<13} {time.perf_counter() - start:10.1f} s")


if __name__ == "__main__":
    main()
