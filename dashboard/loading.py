"""Where the dashboard's files are, and cached reading of runs and benchmark rows.

Folders follow the sidebar's dataset (the built-in benchmark, TOFU-mini, or TOFU-mini on SmolLM2)
and the environment variables listed in app.py's docstring. Every read goes through
`atwu_core.runs` (run folders) and `atwu_core.data.schema` (benchmark rows); Streamlit's cache is
keyed on the files' mtimes and sizes, so a rewritten file is read again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from atwu_core import runs, viz
from atwu_core.data import schema

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Dataset:
    """One choice of the sidebar's dataset radio: its label, URL slug and widget-key suffix."""

    label: str
    slug: str  # ?dataset=<slug>
    key_suffix: str  # widgets holding this dataset's folders or runs: "<key><suffix>"


BUILTIN = "Built-in benchmark"
TOFU_MINI = "TOFU-mini (real TOFU text)"
SMOLLM2 = "TOFU-mini on SmolLM2-135M"
# The first is the default.
DATASET_INFO = (
    Dataset(BUILTIN, "builtin", ""),
    Dataset(TOFU_MINI, "tofu-mini", "_tofu_mini"),
    Dataset(SMOLLM2, "smollm2", "_smollm2"),
)
DATASETS = tuple(d.label for d in DATASET_INFO)
# How to build the SmolLM2 models new runs start from: only their runs are committed (the merged
# weights are 540 MB each).
SMOLLM2_PREPARE = (
    "atwu prepare --base smollm2 --benchmark sample_data/tofu_mini/benchmark "
    "--out prepared/smollm2_tofu_mini"
)


def dataset() -> Dataset:
    """The sidebar's dataset (every folder below follows it)."""
    chosen = st.session_state.get("dataset")
    return next((d for d in DATASET_INFO if d.label == chosen), DATASET_INFO[0])


def tofu_mini_dir() -> Path:
    return Path(os.environ.get("ATWU_TOFU_MINI_DIR", ROOT / "sample_data" / "tofu_mini"))


def smollm2_dir() -> Path:
    """The SmolLM2 dataset's committed folder: runs/ and models/prepare_report.json."""
    return Path(os.environ.get("ATWU_SMOLLM2_DIR", ROOT / "sample_data" / "tofu_mini_smollm2"))


def default_runs_dirs() -> list[str]:
    label = dataset().label
    if label == TOFU_MINI:
        return [str(tofu_mini_dir() / "runs")]
    if label == SMOLLM2:
        return [str(smollm2_dir() / "runs")]
    env = os.environ.get("ATWU_RUNS_DIRS")
    if env:
        return [d for d in env.split(os.pathsep) if d.strip()]
    return [str(ROOT / "sample_data" / "runs"), str(Path.cwd() / "runs")]


def new_runs_dir() -> Path:
    base = Path(os.environ.get("ATWU_NEW_RUNS_DIR", Path.cwd() / "runs")).resolve()
    # A sub-folder per dataset, so runs on one dataset are never listed with another's.
    return base / dataset().key_suffix.lstrip("_") if dataset().key_suffix else base


def benchmark_dir() -> Path:
    # The SmolLM2 runs unlearn TOFU-mini's benchmark (the same rows, spans and ids).
    if dataset().label in (TOFU_MINI, SMOLLM2):
        return tofu_mini_dir() / "benchmark"
    return Path(os.environ.get("ATWU_BENCHMARK_DIR", ROOT / "sample_data" / "benchmark"))


def model_dir() -> Path:
    label = dataset().label
    if label == TOFU_MINI:
        return tofu_mini_dir() / "models" / "full"
    if label == SMOLLM2:
        default = ROOT / "prepared" / "smollm2_tofu_mini" / "models" / "full"
        return Path(os.environ.get("ATWU_SMOLLM2_MODEL_DIR", default))
    return Path(os.environ.get("ATWU_MODEL_DIR", ROOT / "sample_data" / "models" / "full"))


def dataset_key(key: str) -> str:
    """The key of a widget that holds a dataset's folders or runs, one per dataset: on another
    dataset it is another widget, so the browser never sends one dataset's folders (or run
    selection) back for another's, and each keeps its own while another is shown."""
    return key + dataset().key_suffix


def tofu_dir() -> Path:
    """TOFU's JSON files for runs on the real model (`ATWU_TOFU_DIR`; default: the copy beside
    the repository, `../shared/data/tofu`, where docs/DATA.md puts it)."""
    return Path(os.environ.get("ATWU_TOFU_DIR", ROOT.parent / "shared" / "data" / "tofu"))


def stat_sig(paths: list[Path]) -> tuple:
    """(path, mtime, size) of the files that exist: the cache key that follows file changes."""
    sig = []
    for p in paths:
        try:
            s = p.stat()
        except OSError:
            continue
        sig.append((str(p), s.st_mtime_ns, s.st_size))
    return tuple(sig)


def dirs_sig(dirs: tuple[str, ...]) -> tuple:
    files = []
    for d in dirs:
        try:
            children = sorted(Path(d).iterdir())
        except OSError:
            continue
        files += [c / name for c in children for name in (runs.RUN_JSON, runs.EVAL_JSON)]
    return stat_sig(files)


# ttl: a running run whose writer died changes no file, yet must turn "running (stale?)".
@st.cache_data(show_spinner=False, ttl=30)
def list_runs(dirs: tuple[str, ...], sig: tuple) -> pd.DataFrame:
    return runs.list_runs(*dirs)


@st.cache_data(show_spinner=False, max_entries=128)
def _load_run(path: str, sig: tuple) -> runs.Run:
    return runs.load_run(path)


def load_run(path: str) -> tuple[runs.Run | None, str | None]:
    """(run, None) or (None, error message); never raises."""
    p = Path(path)
    try:
        return _load_run(path, stat_sig([p / name for name in runs.RUN_FILES])), None
    except Exception as e:  # a UI boundary: any unreadable folder becomes a message
        return None, str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"


@st.cache_data(show_spinner=False)
def _read_rows(path: str, sig: tuple) -> tuple[list[dict], list[str]]:
    return schema.read_json_objects(path)


def read_rows(path: Path) -> tuple[list[dict], list[str]]:
    """Benchmark rows of one file and a message per unreadable line
    (`atwu_core.data.schema.read_json_objects`)."""
    try:
        return _read_rows(str(path), stat_sig([path]))
    except OSError as e:
        return [], [f"{path}: {e}"]


def benchmark_index() -> dict[str, dict]:
    """Benchmark rows by id (questions and spans for the token and generation views)."""
    index = {}
    for path in sorted(benchmark_dir().glob("*.jsonl")):
        for row in read_rows(path)[0]:
            if isinstance(row.get("id"), str):
                index[row["id"]] = row
    return index


def label_runs(rows: pd.DataFrame) -> dict[str, str]:
    """path -> the run's short name (`viz.run_labels`: "atwu", "atwu s1", "full model (before)")."""
    return viz.run_labels(
        [
            {
                "key": r.path,
                "method": r.method,
                "seed": r.seed,
                "reference": bool(getattr(r, "reference", False)),
                "tuned": bool(getattr(r, "tuned", False)),
                "variant": getattr(r, "variant", "") or "",
                "created": r.created,
            }
            for r in rows.itertuples()
        ]
    )


def committed_runs_dirs() -> list[Path]:
    """The runs committed with the repository (the canonical runs a demo opens on)."""
    return [ROOT / "sample_data" / "runs", tofu_mini_dir() / "runs", smollm2_dir() / "runs"]


def preferred_run(loaded: dict[str, runs.Run]) -> str:
    """The run a view opens on: the committed (canonical) finished ATWU run, lowest seed; else
    the newest finished ATWU run; else the newest run. A run launched or cancelled from the
    page never takes over the view. `loaded` is ordered newest first."""
    atwu = [k for k, r in loaded.items() if r.method == "atwu"]
    finished = [k for k in atwu if loaded[k].status == "finished"]
    home = {d.resolve() for d in committed_runs_dirs()}
    committed = [k for k in finished if loaded[k].path.resolve().parent in home]
    if committed:
        return min(committed, key=lambda k: (_seed(loaded[k]), loaded[k].info.get("created", "")))
    return (finished or atwu or list(loaded))[0]


def _seed(run: runs.Run) -> int:
    seed = run.info.get("config", {}).get("seed")
    return seed if isinstance(seed, int) else 0
