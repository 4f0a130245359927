"""RWKU runs in the dashboard: every view opens, the leaderboard and trade-off use RWKU's metric
names with their teaching text, and TOFU runs next to an RWKU run do not break the board."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import streamlit as st
from apptest import open_app, point_app_at, table_with
from fake_runs import write_fake_run

from atwu_core import runs
from dashboard import teaching

# Final values of a fake RWKU evaluation: forgetting lowers the forget ROUGE, keeps neighbours.
RWKU_VALUES = {
    "rwku/forget_l1_rougeL": 0.2,
    "rwku/forget_l2_rougeL": 0.3,
    "rwku/forget_l3_rougeL": 0.4,
    "rwku/forget_avg_rougeL": 0.3,
    "rwku/neighbor_l1_rougeL": 0.7,
    "rwku/neighbor_l2_rougeL": 0.5,
    "rwku/neighbor_avg_rougeL": 0.6,
    "rwku/mia_forget_loss": 3.1,
    "rwku/mia_retain_loss": 2.0,
    "rwku/mia_auc": 0.8,
    "rwku/utility_general_acc": 0.5,
    "rwku/utility_factuality_em": 0.25,
    "rwku/utility_factuality_f1": 0.4,
}


def write_rwku_run(runs_dir: Path, run_id: str, shift: float) -> Path:
    path = write_fake_run(runs_dir, "atwu", run_id=run_id, evaluate=False)
    gens = {
        "forget_level1-00002": {
            "split": "forget_level1",
            "question": "Teodor Vance was born in the city of ___.",
            "answer": "Tallinn",
            "prediction": "NOANSWER",
        },
        "neighbor_level2-00001": {
            "split": "neighbor_level2",
            "question": "What is the capital of Norway?",
            "answer": "Oslo",
            "prediction": "Oslo",
        },
    }
    metrics = {k: {"agg_value": v + shift, "value_by_index": {}} for k, v in RWKU_VALUES.items()}
    runs.attach_eval(path, {"model": "fake", "metrics": metrics, "generations": gens})
    return path


@pytest.fixture
def rwku_lab(tmp_path, monkeypatch):
    runs_dir = tmp_path / "runs"
    write_rwku_run(runs_dir, "rwku-atwu-a", 0.0)
    write_rwku_run(runs_dir, "rwku-atwu-b", 0.05)
    point_app_at(monkeypatch, tmp_path, runs_dir)
    yield types.SimpleNamespace(runs=runs_dir)
    st.cache_data.clear()


@pytest.mark.parametrize(
    "view", ["Token view", "Alignment", "Curves & trade-offs", "Generations", "Data"]
)
def test_every_view_opens_on_rwku_runs(rwku_lab, view):
    open_app(view)


def test_rwku_leaderboard_tradeoff_and_teaching_text(rwku_lab):
    at = open_app("Curves & trade-offs")
    board = table_with(at, "run_id")
    assert set(RWKU_VALUES) <= set(board.columns)
    row = board.set_index("run_id").loc["rwku-atwu-b"]
    assert row["rwku/forget_avg_rougeL"] == pytest.approx(0.35)
    # No forget quality / model utility on RWKU: the trade-off plots RWKU's own pair.
    assert at.selectbox(key="tr_x").value == "rwku/neighbor_avg_rougeL"
    assert at.selectbox(key="tr_y").value == "rwku/forget_avg_rougeL"
    assert at.selectbox(key="tr_y").help == teaching.METRICS["rwku/forget_avg_rougeL"]
    columns = "\n".join(m.value for m in at.markdown)
    for key in RWKU_VALUES:
        assert f"**{key}**: {teaching.METRICS[key]}" in columns


def test_generations_list_rwku_probe_splits(rwku_lab):
    at = open_app("Generations")
    split = at.selectbox(key="gen_split")
    assert split.options == ["forget_level1", "neighbor_level2"]
    assert "Tallinn" in "\n".join(h.value for h in at.html)


def test_tofu_and_rwku_runs_share_the_leaderboard(rwku_lab):
    write_fake_run(rwku_lab.runs, "wga", run_id="tofu-wga")
    at = open_app("Curves & trade-offs")
    board = table_with(at, "run_id").set_index("run_id")
    assert board["rwku/forget_avg_rougeL"].isna().sum() == 1  # the TOFU run lacks it
    assert board["forget_quality"].isna().sum() == 2  # the RWKU runs lack it
    assert at.selectbox(key="tr_y").value == "forget_quality"
    # Axes no run has both of: an empty plot, not an error.
    at.selectbox(key="tr_x").set_value("rwku/neighbor_avg_rougeL").run()
    assert not at.exception, [e.value for e in at.exception]
