"""Time every stage of `atwu prepare` and report peak memory (issue: foundation).

    python benchmarks/prepare_timing.py [--out DIR]

Builds into a temporary folder by default, so the committed sample_data/ is left alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

from atwu_core.cli import _quiet_transformers
from atwu_core.prepare import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    _quiet_transformers()
    out = args.out or tempfile.mkdtemp(prefix="atwu-prepare-")
    start = time.perf_counter()
    report = prepare(out)
    total = time.perf_counter() - start
    # The two models train in child processes: report the larger of parent and child peaks.
    peak_mb = max(
        resource.getrusage(who).ru_maxrss / 1024
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    for stage, seconds in report["timings"].items():
        print(f"{stage:<16} {seconds:7.1f} s")
    print(f"{'total':<16} {total:7.1f} s   (target <= 180 s)")
    print(f"peak RSS         {peak_mb:7.0f} MB  (target <= 1536 MB)")
    print(json.dumps(report["quality"], indent=2))


if __name__ == "__main__":
    main()
