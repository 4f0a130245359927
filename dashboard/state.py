"""The view in the URL and the guided tour.

The address bar is a bookmark of the view: ?dataset=builtin&tab=token&run=<run id>&example=a019-q19
&step=50 (plus &scale= and &tour= when set). The tour is five steps in large type, driven from the
page (no sidebar needed).
"""

from __future__ import annotations

import html

import streamlit as st

from atwu_core import viz
from dashboard import teaching
from dashboard.loading import DATASET_INFO, dataset, dataset_key

# Short labels: all eight fit in one row at 1024 px.
TABS = (
    "Token view",
    "Probe your text",
    "Alignment",
    "Curves & trade-offs",
    "Generations",
    "Seed study",
    "New run",
    "Data",
)


DEFAULT_SCALE = "row"  # the play control shows one snapshot per second


# Short names of datasets and tabs in the URL (?dataset=builtin&tab=token&run=...).
DATASET_SLUGS = {d.label: d.slug for d in DATASET_INFO}


TAB_SLUGS = dict(
    zip(
        TABS,
        ("token", "probe", "alignment", "curves", "generations", "study", "experiment", "data"),
        strict=True,
    )
)


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
        tour_go(int(tour) - 1)


def sync_url() -> None:
    """Write the current view into the URL, so the address bar is a bookmark of it."""
    state = {
        "dataset": dataset().slug,
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


def tour_go(step: int) -> None:
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
    c1.button("Back", key="tour_back", on_click=tour_go, args=(step - 1,), disabled=step == 0)
    last = step == len(teaching.TOUR) - 1
    c2.button(
        "Next", key="tour_next", on_click=tour_go, args=(step + 1,), disabled=last, type="primary"
    )
    c3.button("End tour", key="tour_end", on_click=end_tour)


def start_tour() -> None:
    st.session_state["tour_on"] = True
    tour_go(0)


def end_tour() -> None:
    st.session_state["tour_on"] = False
    st.session_state.pop("tour_step", None)
