"""Opening the dashboard with Streamlit's AppTest: shared by the dashboard test files."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from fake_runs import write_fake_benchmark
from streamlit import config as st_config
from streamlit.components.v2 import manifest_scanner
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def point_app_at(monkeypatch, root: Path, runs_dir: Path) -> Path:
    """The dashboard tests' set-up: `runs_dir` listed, new runs in root/new, the fake benchmark
    in root/bench (returned), an empty root/model to start runs from; caches cleared."""
    bench = write_fake_benchmark(root / "bench")
    monkeypatch.setenv("ATWU_RUNS_DIRS", str(runs_dir))
    monkeypatch.setenv("ATWU_NEW_RUNS_DIR", str(root / "new"))
    monkeypatch.setenv("ATWU_BENCHMARK_DIR", str(bench))
    (root / "model").mkdir(exist_ok=True)
    monkeypatch.setenv("ATWU_MODEL_DIR", str(root / "model"))
    # Every AppTest run scans all installed packages for Streamlit "v2 components" (~1.4 s of
    # metadata parsing per test); the app uses none, so skip the scan.
    monkeypatch.setattr(manifest_scanner, "scan_component_manifests", lambda: [])
    st.cache_data.clear()
    return bench


def open_app(view: str | None = None) -> AppTest:
    """Run the app once (on `view` if given) and fail on any exception it raised."""
    # A real server reads dashboard/.streamlit/config.toml (localhost); AppTest reads no config,
    # and the app refuses to serve on an unset (every-interface) address.
    st_config.set_option("server.address", "localhost")
    at = AppTest.from_file(APP, default_timeout=30)
    if view:
        at.session_state["view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def html_with(at: AppTest, needle: str) -> str:
    """The first st.html element containing `needle` (fails when there is none)."""
    found = [h.value for h in at.html if needle in h.value]
    assert found, f"no st.html element contains {needle!r}"
    return found[0]


def table_with(at: AppTest, *columns: str):
    """The first st.dataframe (main area, then sidebar) holding all of `columns`."""
    for el in [*at.main.dataframe, *at.sidebar.dataframe]:
        if set(columns) <= set(el.value.columns):
            return el.value
    raise AssertionError(f"no dataframe has columns {columns}")
