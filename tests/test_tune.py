"""`atwu tune` and `atwu compare --tuned` (docs/TUNING.md).

Most tests replace the trial (`tune.run_trial`) and the full model's utility with a fake
objective: the search, resume, constraint and best.json logic is what they check, not training.
One test runs real trials on the tiny lab, one a real `compare --tuned`.
"""

from __future__ import annotations

import json
import math
import sqlite3

import optuna
import pandas as pd
import pytest
from conftest import SAMPLE

from atwu_core import tune as tune_mod
from atwu_core.cli import main
from atwu_core.config import UnlearnConfig
from atwu_core.methods import REGISTRY, register
from atwu_core.runs import load_run
from atwu_core.scorer import SCORER_SEARCH, ScorerConfig
from atwu_core.space import Choice, Float, Int, LogFloat, validate_space

BENCH = str(SAMPLE / "benchmark")  # generator seed 0


# ---------------------------------------------------------------- search spaces


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"gamma": LogFloat(0.1, 1.0)}, "gamma, which are not its hyperparameters"),
        ({"beta": LogFloat(0.0, 1.0)}, "a log scale needs low > 0"),
        ({"beta": Float(2.0, 1.0)}, "needs low < high"),
        ({"beta": Float(0.0, math.inf)}, "bounds must be finite"),
        ({"beta": Int(1, 5)}, "does not fit the hyperparameter's type"),
        ({"n": Int(1.5, 5)}, "bounds must be integers"),
        ({"n": Int(0, 5, log=True)}, "a log scale needs low >= 1"),
        ({"mode": Choice(("a",))}, "at least two distinct values"),
        ({"mode": Choice(("a", 1))}, "does not fit the hyperparameter's type"),
        ({"beta": (0.1, 1.0)}, "must be Float, LogFloat, Int or Choice"),
    ],
)
def test_register_rejects_a_bad_search_space(search, message):
    with pytest.raises(ValueError, match=message) as err:

        @register("tune_test_bad_space", search=search)
        def bad(batch, *, beta: float = 1.0, n: int = 2, mode: str = "a"):
            raise AssertionError("never called")

    assert "tune_test_bad_space" in str(err.value)
    assert "tune_test_bad_space" not in REGISTRY


def test_a_method_without_hyperparameters_may_not_search():
    with pytest.raises(ValueError, match="no hyperparameters"):

        @register("tune_test_no_hparams", search={"beta": Float(0.0, 1.0)})
        def plain(batch):
            raise AssertionError("never called")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_searches_only_its_own_hyperparameters(name):
    spec = REGISTRY[name]
    validate_space(name, spec.search, spec.hparams)  # names, ranges, types
    assert set(spec.search) <= set(spec.hparams)
    space = tune_mod.search_space(name)
    scorer = "scorer" in spec.needs
    expected = (
        set(spec.search)
        | {"lr"}
        | (set() if spec.retain == "none" else {"alpha"})
        | (set(SCORER_SEARCH) if scorer else set())
    )
    assert set(space) == expected
    # every searched name reaches the run: UnlearnConfig field, method hparam or scorer field
    allowed = set(spec.hparams) | {"lr", "alpha"} | (set(vars(ScorerConfig())) if scorer else set())
    assert set(space) <= allowed


def test_scorer_search_names_scorer_fields_and_set_values_are_not_searched():
    tune_mod.check_scorer_search()
    assert set(SCORER_SEARCH) == {
        "lambda_h",
        "lambda_p",
        "budget",
        "lambda_2",
        "scorer_lr",
        "update_every",
        "scorer_position",
    }
    assert "beta" not in tune_mod.search_space("atwu", {"beta": "5"})
    assert "budget" not in tune_mod.search_space("atwu", {"budget": "0.3"})


# ---------------------------------------------------------------- a fake objective


class FakeTrials:
    """Stands in for `tune.run_trial`: forget quality rises with lr, utility falls above
    lr = 1e-3 (so the best forgetting is infeasible), and every call is recorded."""

    def __init__(self):
        self.calls: list[UnlearnConfig] = []

    def __call__(self, config, runs_dir, run_id):
        self.calls.append(config)
        utility = 0.95 if config.lr <= 1e-3 else 0.5
        return {
            "status": "finished",
            "forget_quality": min(1.0, config.lr * 100),
            "model_utility": utility,
            "run": str(runs_dir / run_id),
        }


@pytest.fixture
def fake(monkeypatch):
    trials = FakeTrials()
    monkeypatch.setattr(tune_mod, "run_trial", trials)
    monkeypatch.setattr(tune_mod, "full_model_utility", lambda base: 1.0)  # floor 0.9
    return trials


def base_config(**kw) -> UnlearnConfig:
    return UnlearnConfig(data=BENCH, max_steps=2, **kw)


def trial_params(study_dir, name):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'study.db'}")
    return [t.params for t in study.trials if t.state.name == "COMPLETE"]


def test_a_seeded_study_proposes_the_same_params_twice(fake, tmp_path):
    a = tune_mod.tune("atwu", 4, base_config(), tmp_path / "a", tune_seed=3, progress=False)
    b = tune_mod.tune("atwu", 4, base_config(), tmp_path / "b", tune_seed=3, progress=False)
    c = tune_mod.tune("atwu", 4, base_config(), tmp_path / "c", tune_seed=4, progress=False)
    pa = trial_params(tmp_path / "a" / "tune" / "atwu-data0", "atwu-data0")
    pb = trial_params(tmp_path / "b" / "tune" / "atwu-data0", "atwu-data0")
    pc = trial_params(tmp_path / "c" / "tune" / "atwu-data0", "atwu-data0")
    assert len(pa) == 4 and pa == pb and pa != pc
    assert a["hparams"] == b["hparams"] and a["study"] == "atwu-data0"
    assert set(pa[0]) == set(tune_mod.search_space("atwu"))
    assert c["n_trials"] == 4


def test_an_interrupted_study_resumes_to_n_completed_trials(fake, tmp_path):
    tune_mod.tune("wga", 2, base_config(), tmp_path, progress=False)
    study_dir = tmp_path / "tune" / "wga-data0"
    first = trial_params(study_dir, "wga-data0")
    # A crash mid-trial: the trial stays RUNNING in the database.
    study = optuna.load_study(study_name="wga-data0", storage=f"sqlite:///{study_dir / 'study.db'}")
    study.ask()
    assert len(fake.calls) == 2
    best = tune_mod.tune("wga", 5, base_config(), tmp_path, progress=False)
    assert len(fake.calls) == 5, "the 2 finished trials are not redone, the stale one is dropped"
    study = optuna.load_study(study_name="wga-data0", storage=f"sqlite:///{study_dir / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 5 and states.count("FAIL") == 1
    assert "RUNNING" not in states
    assert trial_params(study_dir, "wga-data0")[:2] == first
    assert best["n_trials"] == 5
    # Already at N: nothing runs.
    tune_mod.tune("wga", 5, base_config(), tmp_path, progress=False)
    assert len(fake.calls) == 5


def test_resuming_with_other_run_options_is_refused(fake, tmp_path):
    tune_mod.tune("wga", 1, base_config(), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"max_steps=2 \(now 3\)"):
        tune_mod.tune("wga", 2, UnlearnConfig(data=BENCH, max_steps=3), tmp_path, progress=False)


def test_an_infeasible_trial_is_never_best_when_a_feasible_one_exists(fake, tmp_path):
    best = tune_mod.tune("grad_diff", 12, base_config(), tmp_path, progress=False)
    study_dir = tmp_path / "tune" / "grad_diff-data0"
    study = optuna.load_study(
        study_name="grad_diff-data0", storage=f"sqlite:///{study_dir / 'study.db'}"
    )
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    infeasible = [t for t in trials if t.user_attrs["model_utility"] < 0.9]
    feasible = [t for t in trials if t.user_attrs["model_utility"] >= 0.9]
    assert infeasible and feasible, "the fake objective must produce both kinds"
    # The infeasible trials forget more: a plain argmax would pick one of them.
    assert max(t.value for t in infeasible) > max(t.value for t in feasible)
    assert best["feasible"] is True
    assert best["model_utility"] >= best["utility_floor"] == pytest.approx(0.9)
    assert best["objective"] == pytest.approx(max(t.value for t in feasible))
    assert best["lr"] <= 1e-3
    assert best["objective"] == pytest.approx(math.log10(best["forget_quality"]))


def test_no_feasible_trial_falls_back_to_the_highest_utility(fake, tmp_path, monkeypatch):
    def always_infeasible(config, runs_dir, run_id):
        return {
            "status": "finished",
            "forget_quality": config.lr,
            "model_utility": 0.5 - config.lr,  # highest utility = lowest lr
            "run": str(runs_dir / run_id),
        }

    monkeypatch.setattr(tune_mod, "run_trial", always_infeasible)
    best = tune_mod.tune("grad_diff", 4, base_config(), tmp_path, progress=False)
    study = optuna.load_study(
        study_name="grad_diff-data0",
        storage=f"sqlite:///{tmp_path / 'tune' / 'grad_diff-data0' / 'study.db'}",
    )
    assert best["feasible"] is False and "no trial met" in best["note"]
    assert best["lr"] == pytest.approx(min(t.params["lr"] for t in study.trials))


def test_best_json_is_written_and_read_back(fake, tmp_path):
    returned = tune_mod.tune("atwu", 2, base_config(), tmp_path, progress=False)
    study_dir = tmp_path / "tune" / "atwu-data0"
    on_disk = json.loads((study_dir / "best.json").read_text())
    read = tune_mod.read_best(study_dir)
    assert read == on_disk
    assert {k: returned[k] for k in on_disk} == on_disk
    assert on_disk["method"] == "atwu" and on_disk["data_seed"] == 0 and on_disk["n_trials"] == 2
    # the scorer settings travel with the method's hparams, resolved
    assert set(on_disk["hparams"]) == set(REGISTRY["atwu"].hparams) | set(vars(ScorerConfig()))
    assert isinstance(on_disk["feasible"], bool) and on_disk["tune_seed"] == 0
    assert on_disk["run_options"]["max_steps"] == 2
    # the config the best trial really ran
    ran = {c.lr: c for c in fake.calls}[on_disk["lr"]]
    assert ran.hparams["beta"] == on_disk["hparams"]["beta"] and ran.alpha == on_disk["alpha"]
    assert tune_mod.load_tuned([tmp_path / "tune"])["atwu"]["lr"] == on_disk["lr"]


def test_tune_many_gives_every_method_the_same_budget(fake, tmp_path):
    bests = tune_mod.tune_many(["grad_ascent", "wga"], 3, base_config(), tmp_path, progress=False)
    assert [b["n_trials"] for b in bests] == [3, 3]
    assert [c.method for c in fake.calls] == ["grad_ascent"] * 3 + ["wga"] * 3


# ---------------------------------------------------------------- CLI


def test_cli_bad_input_is_one_clear_line(tmp_path, capsys, fake):
    def run(*argv):
        code = main(list(argv))
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err

    assert "unknown method 'nosuch'" in run(
        "tune", "--method", "nosuch", "--trials", "1", "--data", BENCH, "--runs-dir", str(tmp_path)
    )
    assert "--trials must be >= 1" in run(
        "tune", "--method", "wga", "--trials", "0", "--data", BENCH, "--runs-dir", str(tmp_path)
    )
    assert not (tmp_path / "tune").exists()
    empty = tmp_path / "study-without-best"
    empty.mkdir()
    (empty / "study.db").write_bytes(b"")
    err = run("compare", "--tuned", str(empty), "--data", BENCH, "--runs-dir", str(tmp_path))
    assert f"{empty / 'best.json'}: missing" in err
    corrupt = tmp_path / "tune" / "wga-data0"
    corrupt.mkdir(parents=True)
    (corrupt / "study.db").write_bytes(b"this is not sqlite" * 100)
    err = run(
        "tune", "--method", "wga", "--trials", "1", "--data", BENCH, "--runs-dir", str(tmp_path)
    )
    assert f"{corrupt / 'study.db'}: not a readable Optuna study database" in err
    assert not fake.calls


def test_no_retain_model_is_one_line_and_leaves_no_study(tmp_path, capsys, monkeypatch):
    import atwu_core.evaluation.protocol

    monkeypatch.setattr(atwu_core.evaluation.protocol, "retain_model_for", lambda config: None)
    argv = [
        "tune",
        "--method",
        "wga",
        "--trials",
        "1",
        "--data",
        BENCH,
        "--runs-dir",
        str(tmp_path),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no forget quality to tune for" in err and "Traceback" not in err
    assert not (tmp_path / "tune").exists()


def test_compare_tuned_refuses_the_tuning_seed(fake, tmp_path, capsys):
    tune_mod.tune("wga", 1, base_config(), tmp_path, progress=False)
    study_dir = tmp_path / "tune" / "wga-data0"
    argv = ["compare", "--tuned", str(study_dir), "--data", BENCH, "--runs-dir", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "wga was tuned on generator seed 0" in err and "Traceback" not in err
    assert not (tmp_path / "leaderboard.csv").exists()
    # Data of another seed passes the check.
    best = tune_mod.read_best(study_dir)
    tune_mod.check_report_data({"wga": best | {"data_seed": 7}}, BENCH)


def test_compare_tuned_runs_the_best_config_and_marks_the_config_column(tiny_lab, tmp_path, capsys):
    # A study tuned on a benchmark of generator seed 7; the tiny lab's benchmark has seed 1.
    study_dir = tmp_path / "tune" / "wga-data7"
    study_dir.mkdir(parents=True)
    best = {
        "format": tune_mod.BEST_FORMAT,
        "schema": tune_mod.BEST_SCHEMA,
        "method": "wga",
        "hparams": {"beta": 2.5},
        "lr": 4e-4,
        "alpha": 2.0,
        "data": "elsewhere",
        "data_seed": 7,
    }
    (study_dir / "best.json").write_text(json.dumps(best))
    runs = tmp_path / "runs"
    argv = [
        "compare",
        "--methods",
        "grad_diff,wga",
        "--seeds",
        "0",
        "--max-steps",
        "2",
        "--tuned",
        str(tmp_path / "tune"),
        "--model",
        str(tiny_lab.model_dir),
        "--data",
        str(tiny_lab.bench_dir),
        "--runs-dir",
        str(runs),
        "--batch-size",
        "4",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    board = pd.read_csv(runs / "leaderboard.csv").set_index("method")
    assert board["config"].to_dict() == {
        "full model (before)": "default",
        "retain model (target)": "default",
        "grad_diff": "default",
        "wga": "tuned",
    }
    wga = load_run(runs / board.loc["wga", "run_id"]).info["config"]
    assert (wga["lr"], wga["alpha"], wga["hparams"]["beta"]) == (4e-4, 2.0, 2.5)
    assert wga["tuned_from"] == str(study_dir)  # run.json says where the config came from
    plain = load_run(runs / board.loc["grad_diff", "run_id"]).info["config"]
    assert (plain["lr"], plain["alpha"], plain["tuned_from"]) == (1e-3, 1.0, None)
    from atwu_core.runs import list_runs

    listed = list_runs(runs).set_index("method")["tuned"].to_dict()
    assert listed["wga"] and not listed["grad_diff"]  # what the dashboard labels "(tuned)"
    md = (runs / "leaderboard.md").read_text()
    assert "config" in md and "| wga" in md and "tuned" in md


def test_tune_end_to_end_on_the_tiny_lab(tiny_lab, tmp_path, capsys):
    """Two real trials (2 steps each, evaluated), then the printed summary and best.json."""
    argv = [
        "tune",
        "--method",
        "wga",
        "--trials",
        "2",
        "--max-steps",
        "2",
        "--model",
        str(tiny_lab.model_dir),
        "--data",
        str(tiny_lab.bench_dir),
        "--runs-dir",
        str(tmp_path),
        "--batch-size",
        "4",
        "--no-conflict",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    study_dir = tmp_path / "tune" / "wga-data1"
    assert "wga: best of 2 trials" in out and str(study_dir / "best.json") in out
    best = tune_mod.read_best(study_dir)
    assert best["data_seed"] == 1 and best["n_trials"] == 2
    assert 0 < best["full_model_utility"] <= 1
    run = load_run(best["run"])
    assert run.status == "finished"
    assert run.eval_value("forget_quality") == pytest.approx(best["forget_quality"])
    assert run.info["config"]["lr"] == best["lr"]
    with sqlite3.connect(study_dir / "study.db") as db:  # a plain SQLite file
        assert db.execute("select count(*) from trials").fetchone()[0] == 2
