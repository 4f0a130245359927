"""Tests of the study's statistics (atwu_core.study) on hand-made boards of runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from atwu_core.study import (
    best_forgetter,
    best_heuristic,
    gap_closed,
    mean_ci,
    paired,
    parse_method,
    report_markdown,
    run_study,
    summarise,
)


def board() -> pd.DataFrame:
    """Three seeds; selectivity: frozen 0.5, oracle 0.9, atwu 0.6/0.7/0.8; wga and satimp."""
    rows = []
    values = {
        "atwu": ([0.6, 0.7, 0.8], [-2.0, -3.0, -4.0], True),
        "atwu_frozen": ([0.5, 0.5, 0.5], [-2.0, -2.0, -2.0], True),
        "oracle_saturated": ([0.9, 0.9, 0.9], [-1.0, -1.0, -1.0], True),
        "wga": ([0.4, 0.5, 0.6], [-1.5, -1.5, -1.5], True),
        "satimp": ([0.55, 0.65, 0.75], [-0.5, -0.5, -0.5], False),
    }
    for method, (sel, fq, ok) in values.items():
        for seed, (s, f) in enumerate(zip(sel, fq, strict=True), start=1):
            rows.append(
                {
                    "regime": "long",
                    "method": method,
                    "seed": seed,
                    "selectivity": s,
                    "log10_fq": f,
                    "utility_ok": ok,
                }
            )
    return pd.DataFrame(rows)


def test_mean_ci_golden():
    # mean 2, sd 1, n 3: half-width t(0.975, 2) · 1/√3 = 4.302653 / 1.732051 = 2.484138
    mean, half, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(2.484138, rel=1e-6)
    assert mean_ci([5.0])[0] == 5.0 and math.isnan(mean_ci([5.0])[1])
    assert mean_ci([None, float("nan")])[2] == 0


def test_summarise_and_paired_differences():
    b = board()
    s = summarise(b, ["selectivity"]).set_index("method")
    assert s.loc["atwu", "selectivity"] == pytest.approx(0.7)
    assert s.loc["atwu", "selectivity_ci"] == pytest.approx(0.1 * 4.302653 / math.sqrt(3), rel=1e-5)
    # per seed atwu - frozen: 0.1, 0.2, 0.3 -> mean 0.2, sd 0.1
    mean, half, n = paired(b, "long", "atwu", "atwu_frozen", "selectivity")
    assert (round(mean, 10), n) == (0.2, 3)
    assert half == pytest.approx(0.1 * 4.302653 / math.sqrt(3), rel=1e-5)


def test_gap_heuristic_and_best_forgetter():
    b = board()
    assert gap_closed(b, "long") == pytest.approx((0.7 - 0.5) / (0.9 - 0.5))
    assert best_heuristic(b, "long", "selectivity") == "satimp"  # 0.65 > 0.5
    # satimp forgets best but loses utility; controls are not candidates; wga beats atwu
    assert best_forgetter(b, "long") == "wga"


def test_report_names_the_regime_and_the_paired_rows():
    b = board()
    meta = {
        "report_seeds": [1, 2, 3],
        "tuning_seed": 100,
        "config": "default",
        "generator_version": 2,
        "runs": len(b),
        "seconds": 600.0,
        "machine": "2 CPU cores",
    }
    text = report_markdown(b, meta)
    assert "#### Regime `long`" in text
    assert "| atwu − frozen control | selectivity | 0.200 ± 0.248 | 3 |" in text
    assert "atwu closes 50 % of the frozen → oracle selectivity gap" in text
    assert "**wga**" in text


def test_run_study_refuses_the_tuning_seed_and_unknown_regimes(tmp_path):
    with pytest.raises(ValueError, match="tuning seed 100"):
        run_study(tmp_path, report_seeds=[1, 100])
    with pytest.raises(ValueError, match="unknown regime"):
        run_study(tmp_path, regimes=["forever"])


def test_parse_method_labels():
    assert parse_method("wga") == ("wga", {})
    assert parse_method("atwu[scorer_position=prev, update_every=1]") == (
        "atwu",
        {"scorer_position": "prev", "update_every": "1"},
    )
    with pytest.raises(ValueError, match="expected name"):
        parse_method("atwu[beta=1")
    with pytest.raises(ValueError, match="is not key=value"):
        parse_method("atwu[beta]")


def test_cli_method_labels_keep_commas_inside_brackets():
    from atwu_core.cli import _split_labels

    assert _split_labels("atwu, atwu[a=1,b=2],wga,") == ["atwu", "atwu[a=1,b=2]", "wga"]


def _finished_run(folder, fq):
    from atwu_core.runs import RunWriter

    writer = RunWriter.create(
        folder.parent, "atwu", {"seed": 0}, {}, total_steps=1, run_id=folder.name
    )
    writer.write_eval({"metrics": {"forget_quality": {"agg_value": fq, "value_by_index": {}}}})
    writer.finish("finished")


def test_a_finished_run_is_reused_and_a_cut_one_is_run_again(tmp_path, monkeypatch):
    import atwu_core.train
    from atwu_core.config import UnlearnConfig
    from atwu_core.runs import RunWriter
    from atwu_core.study import _run_job

    calls = []

    def fake_unlearn(cfg, runs_dir, run_id, evaluate):
        calls.append(run_id)
        folder = runs_dir / run_id
        _finished_run(folder, 0.5)
        return folder

    monkeypatch.setattr(atwu_core.train, "unlearn", fake_unlearn)
    done = tmp_path / "b1" / "atwu"
    _finished_run(done, 0.25)
    row = _run_job((UnlearnConfig(), done, "default", 1, "atwu", 1.0))
    assert calls == [] and row["forget_quality"] == 0.25 and row["reused"]
    assert row["log10_fq"] == pytest.approx(math.log10(0.25)) and row["seed"] == 1

    cut = tmp_path / "b1" / "wga"
    RunWriter.create(cut.parent, "wga", {}, {}, total_steps=5, run_id="wga")  # left "running"
    row = _run_job((UnlearnConfig(), cut, "default", 1, "wga", 1.0))
    assert calls == ["wga"] and row["forget_quality"] == 0.5 and not row["reused"]
    assert row["utility_ok"] is False  # no model_utility recorded


def test_study_refuses_configs_tuned_on_a_report_seed(tmp_path, capsys):
    import json

    from atwu_core.cli import main

    study_dir = tmp_path / "tune" / "wga-data1"
    study_dir.mkdir(parents=True)
    best = {"format": "atwu-tune-best", "method": "wga", "hparams": {"beta": 2.0}, "lr": 1e-3}
    best |= {"alpha": 1.0, "data_seed": 1}
    (study_dir / "best.json").write_text(json.dumps(best))
    assert main(["study", "--tuned", str(tmp_path / "tune"), "--seeds", "1,2"]) == 2
    err = capsys.readouterr().err
    assert "wga was tuned on generator seed 1, one of the report seeds [1, 2]" in err
    assert not (tmp_path / "runs").exists()
