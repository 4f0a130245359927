"""Scoring new text with a run's trained scorer (the dashboard's "probe your own text")."""

from __future__ import annotations

import pytest

from atwu_core.config import UnlearnConfig
from atwu_core.data.schema import load_benchmark
from atwu_core.probe import score_text
from atwu_core.train import unlearn


@pytest.fixture(scope="module")
def atwu_run(tiny_lab, tmp_path_factory):
    cfg = UnlearnConfig(
        method="atwu",
        model=str(tiny_lab.model_dir),
        data=str(tiny_lab.bench_dir),
        batch_size=4,
        max_steps=10,
        hparams={"update_every": 1},
        save_model=True,
    )
    return unlearn(cfg, runs_dir=tmp_path_factory.mktemp("probe_runs"))


def test_scores_every_answer_token_with_offsets(atwu_run, tiny_lab):
    item = load_benchmark(tiny_lab.bench_dir).forget[1]
    df = score_text(atwu_run, item.question, item.answer)
    assert list(df.columns) == ["token", "char_start", "char_end", "weight", "nll"]
    assert df["weight"].between(0, 1).all()
    assert "".join(df["token"]) == item.answer
    for row in df.itertuples():
        assert item.answer[row.char_start : row.char_end] == row.token.strip()
    assert df.attrs["model"].endswith("model")  # the run's own final model
    # A trained scorer is no longer the constant 0.5 it starts as.
    assert df["weight"].std() > 0.01


def test_runs_without_a_scorer_and_empty_text_are_clear_errors(tiny_lab, tmp_path, atwu_run):
    cfg = UnlearnConfig(
        method="wga", model=str(tiny_lab.model_dir), data=str(tiny_lab.bench_dir), max_steps=1
    )
    wga_run = unlearn(cfg, runs_dir=tmp_path)
    with pytest.raises(ValueError, match="no trained scorer"):
        score_text(wga_run, "Who?", "Someone.")
    with pytest.raises(ValueError, match="type both"):
        score_text(atwu_run, "  ", "x")
