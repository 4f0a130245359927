"""ATWU Lab dashboard: `streamlit run dashboard/app.py`.

A thin layer over `atwu_core.runs` (reading run folders) and `atwu_core.viz` (figures); it holds no
science. This file lays the page out (sidebar, tabs, the localhost guard); `loading.py` reads,
`state.py` keeps the URL and the tour, and each tab is a module of `views/` (docs/DASHBOARD.md,
"Files"). Torch is never imported: runs are launched as subprocesses (dashboard/jobs.py) and
`atwu_core.probe` is imported only when the user asks to score a text.

The sidebar picks the dataset: the built-in benchmark, TOFU-mini (real TOFU text, built by
`atwu prepare --preset tofu-mini`), or TOFU-mini on SmolLM2-135M (a pretrained model fine-tuned with
LoRA on the same rows, `atwu prepare --base smollm2`). Runs listed, data browser and run launcher
follow the choice.

Environment, built-in benchmark: `ATWU_RUNS_DIRS` (folders to list, separated by os.pathsep;
default `sample_data/runs` next to the repo and `./runs`), `ATWU_NEW_RUNS_DIR` (where launched runs
go; default `./runs`), `ATWU_BENCHMARK_DIR` (default `sample_data/benchmark`), `ATWU_MODEL_DIR`
(the model new runs start from; default `sample_data/models/full`). TOFU-mini: `ATWU_TOFU_MINI_DIR`
(default `sample_data/tofu_mini`, holding benchmark/, models/full/ and runs/); its launched runs go
to `tofu_mini/` inside the new-runs folder. SmolLM2: `ATWU_SMOLLM2_DIR` (default
`sample_data/tofu_mini_smollm2`, its committed runs/), `ATWU_SMOLLM2_MODEL_DIR` (default
`prepared/smollm2_tofu_mini/models/full`, not committed); launched runs go to `smollm2/`.
`ATWU_TOFU_DIR`: TOFU's JSON files for runs on the un-fine-tuned SmolLM2 ("Starting model: real
pretrained model" in the launcher; default `../shared/data/tofu`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repo: use the atwu_core
# and dashboard helpers next to this file.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard import teaching  # noqa: E402
from dashboard.loading import (  # noqa: E402
    DATASETS,
    SMOLLM2,
    benchmark_index,
    dataset,
    dataset_key,
    default_runs_dirs,
    dirs_sig,
    label_runs,
    list_runs,
    load_run,
    new_runs_dir,
)
from dashboard.state import (  # noqa: E402
    TABS,
    restore_view_from_url,
    start_tour,
    sync_url,
    tour_panel,
)
from dashboard.views.alignment import alignment_view  # noqa: E402
from dashboard.views.curves import curves_view  # noqa: E402
from dashboard.views.data import data_view  # noqa: E402
from dashboard.views.generations import generations_view  # noqa: E402
from dashboard.views.launcher import experiment_view  # noqa: E402
from dashboard.views.probe import probe_view  # noqa: E402
from dashboard.views.study import study_view  # noqa: E402
from dashboard.views.tokens import token_view  # noqa: E402

# Less empty space above the first screen; larger tab labels for a projector.
PAGE_CSS = (
    "<style>.block-container{padding-top:3.6rem;padding-bottom:2rem}"
    'button[data-baseweb="tab"] p{font-size:1.02rem}'
    # 1024 px screens: a narrower label column and smaller tokens keep rows on one line
    "@media (max-width:1100px){.atwu-tokens{font-size:0.9em!important}"
    ".atwu-compare .atwu-row>div:first-child{min-width:9.5em!important;max-width:9.5em!important}"
    ".atwu-question{display:none}}</style>"
)


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
        "trained on it, spans derived by rule. TOFU-mini on SmolLM2: the same rows on a "
        "pretrained 135 M model fine-tuned with LoRA. Runs, data and new runs follow this choice.",
    )
    if dataset().label == SMOLLM2:
        st.sidebar.caption(
            "SmolLM2 runs carry token weights and training curves but no TOFU evaluation (one "
            "takes ~25 min on a CPU): the leaderboard, trade-off and generation views stay empty "
            'here. What they show: docs/RESULTS.md, "SmolLM2".'
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
    table = list_runs(tuple(dirs), dirs_sig(tuple(dirs)))
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
# Serving this machine only


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
            on_click=start_tour,
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
        study_view,
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
