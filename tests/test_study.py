"""Tests of the study's statistics (evaluation.study_stats) on hand-made boards of runs, and of
the orchestration's refusals (atwu_core.study)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from atwu_core.evaluation.study_stats import (
    ATWU_PREV,
    ATWU_PREV_L2,
    BOARD_COLUMNS,
    StudyFileError,
    atwu_title,
    atwu_variants,
    best_forgetter,
    best_heuristic,
    gap_closed,
    goal_checks,
    load_board,
    mean_ci,
    paired,
    paired_sentence,
    paired_table,
    parse_method,
    report_markdown,
    short_label,
    study_files,
    summarise,
    summary_table,
)
from atwu_core.study import run_study


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


# ----------------------------------------------------------------------------- study files


def view_board() -> pd.DataFrame:
    """board() plus the columns a study CSV has (span AUROC, its NLL-rise reference, utility)
    and the two ATWU variants; 3 seeds, numbers chosen so every statistic is worked by hand."""
    b = board()
    b["regime"] = "default"
    auroc = {"atwu": 0.6, "atwu_frozen": 0.5, "oracle_saturated": 1.0, "wga": 0.4, "satimp": 0.7}
    rise = {"atwu": 0.7, "atwu_frozen": 0.7, "oracle_saturated": 0.9, "wga": 0.5, "satimp": 0.6}
    b["span/auroc"] = b["method"].map(auroc)
    b["span/ref/nll_rise/auroc"] = b["method"].map(rise)
    b["model_utility"] = 0.9
    prev = b[b["method"] == "atwu"].assign(
        method=ATWU_PREV_L2,
        selectivity=[0.8, 0.8, 0.8],  # frozen + 0.3 on every seed: CI of width 0
        **{"span/auroc": 0.95, "span/ref/nll_rise/auroc": 0.8, "log10_fq": -0.1},
    )
    return pd.concat([b, prev], ignore_index=True)


def write_board(path, board_df) -> str:
    board_df.to_csv(path, index=False)
    return str(path)


def test_load_board_checks_columns_and_names_the_file(tmp_path):
    ok = load_board(write_board(tmp_path / "study_default_3seeds.csv", view_board()))
    assert ok["utility_ok"].dtype == bool and ok["seed"].tolist()[:3] == [1, 2, 3]
    bad = tmp_path / "study_bad_3seeds.csv"
    write_board(bad, view_board().drop(columns=["span/auroc"]))
    with pytest.raises(StudyFileError, match=r"study_bad_3seeds\.csv.*'span/auroc'"):
        load_board(bad)
    (tmp_path / "study_empty.csv").write_text("")
    with pytest.raises(StudyFileError, match=r"study_empty\.csv.*not a readable CSV"):
        load_board(tmp_path / "study_empty.csv")
    header = ",".join(BOARD_COLUMNS) + "\n"
    (tmp_path / "study_header.csv").write_text(header)
    with pytest.raises(StudyFileError, match=r"study_header\.csv.*no runs"):
        load_board(tmp_path / "study_header.csv")
    with pytest.raises(StudyFileError, match="not found"):
        load_board(tmp_path / "study_missing.csv")


def test_study_files_are_found_and_labelled(tmp_path):
    for name in ("study_tuned10_5seeds", "study_default_5seeds", "study_tuned6_5seeds", "study_x"):
        (tmp_path / f"{name}.csv").write_text("a\n")
    (tmp_path / "other.csv").write_text("a\n")
    assert list(study_files(tmp_path)) == [
        "Default settings, 5 seeds",
        "Tuned (6 trials), 5 seeds",
        "Tuned (10 trials), 5 seeds",
        "x",
    ]


def test_short_labels_and_atwu_rows():
    assert short_label("atwu") == "atwu"
    assert short_label(ATWU_PREV) == "atwu · prev, ue1"
    assert short_label(ATWU_PREV_L2) == "atwu · prev, ue1, λ₂=0.01"
    assert short_label("npo[beta=0.2]") == "npo · beta=0.2"
    assert short_label("broken[") == "broken["
    b = view_board()
    assert atwu_variants(b) == ["atwu", ATWU_PREV_L2]  # not atwu_frozen, not the plug-ins
    assert atwu_title("atwu") == "ATWU (authors' settings)"
    assert atwu_title("atwu", "tuned") == "ATWU (tuned)"


def test_paired_table_and_sentences_golden():
    table = paired_table(view_board(), "default", metrics=["selectivity"])
    rows = table.set_index("method")
    # atwu − frozen per seed: 0.1, 0.2, 0.3 -> mean 0.2, sd 0.1, half t(0.975,2)·0.1/√3
    assert rows.loc["atwu", "mean"] == pytest.approx(0.2)
    assert rows.loc["atwu", "ci"] == pytest.approx(0.2484138, rel=1e-6)
    assert rows.loc["atwu", "n"] == 3 and not rows.loc["atwu", "excludes_zero"]
    assert paired_sentence(rows.reset_index().iloc[0]) == (
        "ATWU (authors' settings) − frozen control, selectivity: +0.20 ± 0.25 over 3 seeds "
        "(CI includes 0: no measurable effect)"
    )
    # the variant: +0.3 on every seed, a CI of width 0 that excludes 0
    assert rows.loc[ATWU_PREV_L2, "mean"] == pytest.approx(0.3)
    assert paired_sentence(rows.reset_index().iloc[1]) == (
        "ATWU · prev, ue1, λ₂=0.01 − frozen control, selectivity: +0.30 ± 0.00 over 3 seeds "
        "(CI excludes 0: higher, better than the control)"
    )
    # log10 FQ: atwu − frozen = 0, −1, −2 -> mean −1, sd 1, half 2.484: includes 0
    fq = paired_table(view_board(), "default", metrics=["log10_fq"]).iloc[0]
    assert paired_sentence(fq) == (
        "ATWU (authors' settings) − frozen control, log10 forget quality: −1.00 ± 2.48 over "
        "3 seeds (CI includes 0: no measurable effect)"
    )
    assert paired_table(view_board(), "default", against="nobody").empty


def test_goal_checks_follow_the_results_definitions():
    goals = goal_checks(view_board(), "default")
    atwu = goals[goals["method"] == "atwu"].set_index("goal")
    prev = goals[goals["method"] == ATWU_PREV_L2].set_index("goal")
    gap = "closes ≥ 50 % of the frozen → oracle selectivity gap"
    # atwu: (0.7 − 0.5) / (0.9 − 0.5) = 50 %; the variant (0.8 − 0.5) / 0.4 = 75 %
    assert atwu.loc[gap, "value"] == "50 %" and atwu.loc[gap, "met"]
    assert prev.loc[gap, "value"] == "75 %"
    assert not atwu.loc["span AUROC ≥ 0.90", "met"] and prev.loc["span AUROC ≥ 0.90", "met"]
    rise = "span AUROC above the same runs' NLL-rise reference"
    assert atwu.loc[rise, "value"] == "0.60 vs 0.70" and not atwu.loc[rise, "met"]
    assert prev.loc[rise, "met"]
    margin = "span AUROC ≥ 0.10 above the best of WGA / SatImp / SEUL"
    assert atwu.loc[margin, "value"] == "0.60 vs satimp 0.70 (−0.10)"
    assert not atwu.loc[margin, "met"]
    assert prev.loc[margin, "met"]  # 0.95 − 0.70 = 0.25
    best = "best mean forget quality among methods keeping utility"
    # satimp has the best log10 FQ but loses utility: the ATWU variant (−0.1) is best
    assert prev.loc[best, "met"] and not atwu.loc[best, "met"]


def test_summary_table_is_mean_ci_text():
    table = summary_table(view_board(), "default", ["selectivity"]).set_index("method")
    assert table.loc["atwu", "selectivity"] == "0.700 ± 0.248"
    assert table.loc["atwu_frozen", "selectivity"] == "0.500 ± 0.000"
    assert table.loc["satimp", "keeps utility"] == "no" and table.loc["atwu", "seeds"] == 3
