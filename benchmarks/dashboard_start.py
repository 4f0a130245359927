"""How fast does the dashboard open on the token view, and does it stay torch-free?

    .venv/bin/python benchmarks/dashboard_start.py [--runs DIR] [--repeat 3] [--browser]

1. Script cold start: a fresh Python process imports streamlit, runs dashboard/app.py once with
   AppTest and checks that the token view rendered and that neither torch nor transformers got
   imported. Timed: imports, first run, total. (AppTest's per-run scan of installed packages for
   Streamlit components is switched off: a real server does it once at start-up, not per page.)
2. With --browser (needs /usr/bin/chromium and the playwright package): `streamlit run` on a
   free port; timed: server start until /_stcore/health answers, then page load until the first
   coloured token is visible in headless Chromium.

Runs over `--runs` (default: sample_data/runs when it holds runs, else fake runs written to a
temporary folder by tests/fake_runs.py). Prints the numbers; exits 1 if torch was imported or the
token view did not render.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
BUDGET_S = 3.0

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from streamlit.components.v2 import manifest_scanner
from streamlit.testing.v1 import AppTest
manifest_scanner.scan_component_manifests = lambda: []
from streamlit import config as st_config
st_config.set_option("server.address", "localhost")  # as dashboard/.streamlit/config.toml
t1 = time.perf_counter()
at = AppTest.from_file({app!r}, default_timeout=60).run()
t2 = time.perf_counter()
print(json.dumps({{
    "import_s": t1 - t0,
    "first_run_s": t2 - t1,
    "total_s": t2 - t0,
    "token_view": any("atwu-tok" in h.value for h in at.html),
    "exceptions": [e.value for e in at.exception],
    "torch": "torch" in sys.modules,
    "transformers": "transformers" in sys.modules,
    "sklearn": "sklearn" in sys.modules,
}}))
"""


def script_cold_start(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(app=str(APP))],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def browser_start(env: dict[str, str]) -> dict:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)]
    cmd += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://localhost:{port}"
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("streamlit did not start within 60 s") from None
                time.sleep(0.1)
        t1 = time.perf_counter()
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
        args += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page()
            t2 = time.perf_counter()
            page.goto(url)
            page.wait_for_selector(".atwu-tok", timeout=60_000)
            t3 = time.perf_counter()
            # A second session: imports and caches are warm, the browser has the JS cached.
            page.goto("about:blank")
            t4 = time.perf_counter()
            page.goto(url)
            page.wait_for_selector(".atwu-tok", timeout=60_000)
            t5 = time.perf_counter()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return {
        "server_start_s": t1 - t0,
        "page_to_first_token_s": t3 - t2,
        "second_page_to_first_token_s": t5 - t4,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()

    runs_dir = args.runs
    sample = REPO / "sample_data" / "runs"
    if runs_dir is None and sample.is_dir() and any(sample.glob("*/run.json")):
        runs_dir = sample
    if runs_dir is None:
        sys.path.insert(0, str(REPO / "tests"))
        from fake_runs import write_fake_benchmark, write_fake_runs

        tmp = Path(tempfile.mkdtemp(prefix="atwu-bench-"))
        write_fake_runs(tmp / "runs")
        write_fake_benchmark(tmp / "bench")
        runs_dir = tmp / "runs"
        os.environ.setdefault("ATWU_BENCHMARK_DIR", str(tmp / "bench"))
    env = {**os.environ, "ATWU_RUNS_DIRS": str(runs_dir)}
    env.setdefault("ATWU_NEW_RUNS_DIR", tempfile.mkdtemp(prefix="atwu-new-"))
    print(f"runs: {runs_dir}")

    results = [script_cold_start(env) for _ in range(args.repeat)]
    for key in ("import_s", "first_run_s", "total_s"):
        values = [r[key] for r in results]
        print(
            f"script cold start {key:<12} median {statistics.median(values):.2f} s "
            f"(runs: {', '.join(f'{v:.2f}' for v in values)})"
        )
    first = results[0]
    print(
        f"token view rendered: {first['token_view']}; imported torch: {first['torch']}, "
        f"transformers: {first['transformers']}, sklearn: {first['sklearn']}"
    )
    failed = any(
        r["torch"] or r["transformers"] or not r["token_view"] or r["exceptions"] for r in results
    )
    total = statistics.median(r["total_s"] for r in results)
    if total > BUDGET_S:
        print(
            f"NOTE: median cold start {total:.2f} s is over the {BUDGET_S:.0f} s budget "
            f"(load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
    if args.browser:
        b = browser_start(env)
        print(
            f"browser: server start {b['server_start_s']:.2f} s, page load to first coloured "
            f"token {b['page_to_first_token_s']:.2f} s (a second session, everything warm: "
            f"{b['second_page_to_first_token_s']:.2f} s)"
        )
    if failed:
        print("FAILED: torch/transformers imported, an exception, or no token view:", results)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
