"""The run store (atwu_core/runs.py): atomic writes, tolerant readers, clear errors."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_runs import token_frame, write_fake_run

from atwu_core import runs
from atwu_core.runs import RunFormatError, RunWriter

ENV = {"python": "3.11", "device": "cpu"}


def make(tmp_path: Path, **kw) -> RunWriter:
    return RunWriter.create(tmp_path, "atwu", {"seed": 3}, ENV, 10, **kw)


def test_create_writes_running_run_json_with_default_id(tmp_path):
    w = make(tmp_path)
    assert re.fullmatch(r"\d{8}-\d{6}-atwu-s3", w.run_id)
    info = json.loads((w.path / "run.json").read_text())
    assert info["status"] == "running"
    assert info["schema"] == 1
    assert info["total_steps"] == 10
    assert info["steps_done"] == 0
    assert info["config"] == {"seed": 3}
    assert info["pid"] == os.getpid()


def test_default_run_id_is_made_unique(tmp_path, monkeypatch):
    monkeypatch.setattr(runs.time, "strftime", lambda fmt, *args: "20261128-101500")
    ids = [make(tmp_path).run_id for _ in range(3)]
    base = "20261128-101500-atwu-s3"
    assert ids == [base, f"{base}-2", f"{base}-3"]


def test_explicit_run_id_that_exists_is_an_error(tmp_path):
    make(tmp_path, run_id="mine")
    with pytest.raises(ValueError, match="already exists"):
        make(tmp_path, run_id="mine")
    with pytest.raises(ValueError, match=r"run_id '\.\./evil'"):
        make(tmp_path, run_id="../evil")


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_total_steps_must_be_a_non_negative_int(tmp_path, bad):
    with pytest.raises(ValueError, match="total_steps"):
        RunWriter.create(tmp_path, "atwu", {}, ENV, bad)


def test_log_writes_nan_and_inf_as_null_and_reads_them_back_as_nan(tmp_path):
    w = make(tmp_path)
    w.log({"step": 1, "loss/total": float("nan"), "forget/nll": np.float32(2.5)})
    w.log({"step": 2, "loss/total": float("inf"), "forget/nll": 3.0, "phase": "forget"})
    lines = (w.path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"step": 1, "loss/total": None, "forget/nll": 2.5}
    df = runs.read_metrics(w.path)
    assert list(df["step"]) == [1, 2]
    assert df["loss/total"].isna().all()
    assert df["loss/total"].dtype == float
    assert list(df["forget/nll"]) == [2.5, 3.0]
    assert list(df["phase"].fillna("")) == ["", "forget"]


def test_log_rejects_nested_values(tmp_path):
    w = make(tmp_path)
    with pytest.raises(ValueError, match=r"nested values at \['parts'\]"):
        w.log({"step": 1, "parts": {"a": 1}})


def test_truncated_last_metrics_line_is_skipped(tmp_path):
    w = make(tmp_path)
    w.log({"step": 1, "loss/total": 1.0})
    w.log({"step": 2, "loss/total": 0.5})
    with open(w.path / "metrics.jsonl", "ab") as f:
        f.write(b'{"step": 3, "loss/to')  # a writer killed in the middle of a line
    df = runs.read_metrics(w.path)
    assert list(df["step"]) == [1, 2]
    assert list(df["loss/total"]) == [1.0, 0.5]


def test_corrupted_metrics_line_in_the_middle_names_file_and_line(tmp_path):
    w = make(tmp_path)
    w.log({"step": 1})
    with open(w.path / "metrics.jsonl", "ab") as f:
        f.write(b"garbage\n")
    w.log({"step": 3})
    with pytest.raises(RunFormatError, match=r"metrics\.jsonl:2: corrupted"):
        runs.load_run(w.path)


def test_writes_are_atomic_a_failed_replace_keeps_the_old_file(tmp_path, monkeypatch):
    w = make(tmp_path)
    w.write_eval({"metrics": {"forget_quality": {"agg_value": 0.5, "value_by_index": {}}}})
    before = (w.path / "eval.json").read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(runs.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        w.write_eval({"metrics": {"forget_quality": {"agg_value": 0.9, "value_by_index": {}}}})
    with pytest.raises(OSError, match="disk full"):
        w.update(steps_done=5)
    assert (w.path / "eval.json").read_bytes() == before
    assert json.loads((w.path / "run.json").read_text())["steps_done"] == 0
    assert sorted(p.name for p in w.path.iterdir()) == ["eval.json", "run.json"]  # no temp files


def test_token_weights_round_trip_and_rewrite(tmp_path):
    w = make(tmp_path)
    df = token_frame("atwu", [0], np.random.default_rng(0))
    w.write_token_weights(df)
    more = token_frame("atwu", [0, 5], np.random.default_rng(0))
    w.write_token_weights(more)  # each snapshot rewrites the whole file
    back = runs.read_token_weights(w.path)
    pd.testing.assert_frame_equal(back, more)


def test_token_weights_need_the_format_columns(tmp_path):
    w = make(tmp_path)
    with pytest.raises(ValueError, match=r"lack columns \['nll', 'in_span', 'in_loss'\]"):
        w.write_token_weights(
            pd.DataFrame(
                {
                    "step": [0],
                    "example_id": ["a"],
                    "position": [0],
                    "token": ["x"],
                    "char_start": [0],
                    "char_end": [1],
                    "weight": [0.5],
                }
            )
        )


def test_finish_turns_status_final_last_and_closes_the_writer(tmp_path):
    w = make(tmp_path)
    w.update(steps_done=4)
    w.finish("failed", reason="loss is NaN", failed_step=4)
    info = runs.read_info(w.path)
    assert (info["status"], info["reason"], info["failed_step"], info["steps_done"]) == (
        "failed",
        "loss is NaN",
        4,
        4,
    )
    assert info["finished"] is not None
    with pytest.raises(RuntimeError, match="already failed"):
        w.log({"step": 5})


def test_finish_and_update_reject_bad_values(tmp_path):
    w = make(tmp_path)
    with pytest.raises(ValueError, match="final status must be one of"):
        w.finish("done")
    with pytest.raises(ValueError, match=r"\['status'\] cannot be set"):
        w.update(status="finished")
    with pytest.raises(ValueError, match="steps_done must be an integer >= 0, not -1"):
        w.update(steps_done=-1)
    with pytest.raises(ValueError, match="relative path inside the run folder"):
        w.path_for("../other/model")
    assert w.path_for("scorer.safetensors") == w.path / "scorer.safetensors"


def test_unknown_schema_is_rejected_naming_file_and_schemas(tmp_path):
    w = make(tmp_path)
    info = json.loads((w.path / "run.json").read_text())
    info["schema"] = 7
    (w.path / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunFormatError) as err:
        runs.load_run(w.path)
    message = str(err.value)
    assert str(w.path / "run.json") in message
    assert "unknown schema 7" in message
    assert "reads schema 1" in message


def test_corrupted_parquet_raises_naming_the_file(tmp_path):
    path = write_fake_run(tmp_path, "wga", run_id="r")
    (path / "token_weights.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(RunFormatError, match=r"token_weights\.parquet: corrupted parquet"):
        runs.load_run(path)


def test_corrupted_json_raises_naming_the_file(tmp_path):
    path = write_fake_run(tmp_path, "wga", run_id="r")
    (path / "eval.json").write_text('{"schema": 1, "metrics": ')
    with pytest.raises(RunFormatError, match=r"eval\.json: corrupted JSON at line 1"):
        runs.load_run(path)


def test_load_run_reads_everything(tmp_path):
    path = write_fake_run(tmp_path, "atwu", run_id="r", total_steps=20, snapshot_every=10)
    run = runs.load_run(path)
    assert run.status == "finished"
    assert list(run.metrics["step"]) == list(range(1, 21))
    assert sorted(run.token_weights["step"].unique()) == [0, 10, 20]
    assert run.eval_value("forget/prob") == 0.2
    assert run.eval_value("no/such") is None


def test_list_runs_never_raises_and_lists_bad_folders_with_errors(tmp_path):
    good = write_fake_run(tmp_path, "atwu", run_id="good")
    schema = write_fake_run(tmp_path, "wga", run_id="schema")
    info = json.loads((schema / "run.json").read_text())
    (schema / "run.json").write_text(json.dumps({**info, "schema": 99}))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    headless = tmp_path / "headless"  # metrics but no run.json: a run that died at birth
    headless.mkdir()
    (headless / "metrics.jsonl").write_text('{"step": 1}\n')
    listish = tmp_path / "listish"
    listish.mkdir()
    (listish / "run.json").write_text("[1, 2]")
    bad_eval = write_fake_run(tmp_path, "seul", run_id="bad_eval")
    (bad_eval / "eval.json").write_text("{")
    (tmp_path / "empty").mkdir()  # not a run: ignored
    (tmp_path / "notes.txt").write_text("hi")  # a file: ignored

    table = runs.list_runs(tmp_path, tmp_path / "does-not-exist")
    assert list(table.columns) == list(runs.LIST_COLUMNS)
    errors = dict(zip(table["run_id"], table["error"], strict=True))
    assert set(errors) == {"good", "schema", "broken", "headless", "listish", "bad_eval"}
    assert pd.isna(errors["good"])
    assert "unknown schema 99" in errors["schema"]
    assert "corrupted JSON" in errors["broken"]
    assert "run.json: file is missing" in errors["headless"]
    assert "expected a JSON object, found list" in errors["listish"]
    assert "eval.json: corrupted JSON" in errors["bad_eval"]
    row = table.set_index("run_id").loc["good"]
    assert (row["method"], row["status"], row["seed"], row["steps"]) == ("atwu", "finished", 0, 20)
    assert row["path"] == str(good)
    assert row["forget/prob"] == 0.2


def test_list_runs_flags_reference_folders(tmp_path):
    """config "reference": true (an eval-only folder of a reference model) is a column, so the
    dashboard labels those runs without reading run.json again; unreadable folders are False."""
    ref = RunWriter.create(tmp_path, "full", {"method": "full", "reference": True}, {}, 0)
    ref.finish("finished")
    write_fake_run(tmp_path, "atwu", run_id="plain")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{")
    table = runs.list_runs(tmp_path).set_index("run_id")
    assert table["reference"].to_dict() == {ref.run_id: True, "plain": False, "broken": False}


def test_list_runs_flags_runs_of_a_tuned_config(tmp_path):
    tuned = RunWriter.create(
        tmp_path, "wga", {"method": "wga", "tuned_from": "runs/tune/tune/wga-data100"}, {}, 0
    )
    tuned.finish("finished")
    write_fake_run(tmp_path, "atwu", run_id="plain")
    table = runs.list_runs(tmp_path).set_index("run_id")
    assert table["tuned"].to_dict() == {tuned.run_id: True, "plain": False}


def test_list_runs_of_nothing_is_an_empty_table(tmp_path):
    table = runs.list_runs(tmp_path / "missing")
    assert table.empty
    assert list(table.columns) == list(runs.LIST_COLUMNS)


def test_running_run_turns_stale_after_ten_quiet_minutes(tmp_path):
    w = make(tmp_path)  # written by this (live) process
    info = runs.read_info(w.path)
    assert runs.display_status(info, w.path) == "running"
    old = time.time() - 11 * 60
    os.utime(w.path / "run.json", (old, old))
    assert runs.display_status(info, w.path) == "running (stale?)"
    assert runs.display_status(info, w.path, now=old + 9 * 60) == "running"


WRITER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    import numpy as np
    from fake_runs import token_frame
    from atwu_core.runs import RunWriter
    w = RunWriter.create({runs!r}, "atwu", {{"seed": 0}}, {{}}, 10_000, run_id="victim")
    w.write_token_weights(token_frame("atwu", [0], np.random.default_rng(0)))
    step = 0
    while True:
        step += 1
        w.log({{"step": step, "loss/total": 1.0 / step, "pad": "x" * 2000}})
        w.update(steps_done=step)
    """
)


def test_sigkilled_writer_leaves_a_readable_folder(tmp_path):
    script = WRITER.format(tests=str(Path(__file__).parent), runs=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script])
    metrics = tmp_path / "victim" / "metrics.jsonl"
    deadline = time.time() + 30
    while time.time() < deadline:
        if metrics.exists() and metrics.read_bytes().count(b"\n") >= 20:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    run = runs.load_run(tmp_path / "victim")
    assert len(run.metrics) >= 20
    assert list(run.metrics["step"]) == list(range(1, len(run.metrics) + 1))
    assert run.token_weights is not None
    assert run.info["steps_done"] >= 19  # run.json was never seen half-written
    assert run.status == "running (stale?)"  # its process is gone
    table = runs.list_runs(tmp_path)
    assert table.loc[0, "status"] == "running (stale?)"
    assert pd.isna(table.loc[0, "error"])


def test_leaderboard_has_one_row_per_evaluated_run(tmp_path):
    a = runs.load_run(write_fake_run(tmp_path, "atwu", run_id="a"))
    b = runs.load_run(write_fake_run(tmp_path, "wga", run_id="b", evaluate=False))
    board = runs.leaderboard([a, b])
    assert list(board["run_id"]) == ["a"]
    assert list(board.columns) == [
        "run_id", "method", "status", "forget_quality", "model_utility", "forget/prob",
        "retain/prob",
    ]  # fmt: skip
    assert board.loc[0, "forget/prob"] == 0.2
    expected = a.eval["metrics"]["forget_quality"]["agg_value"]
    assert math.isclose(board.loc[0, "forget_quality"], expected)


def test_list_runs_names_a_scorer_variant_as_the_seed_study_does(tmp_path):
    """Scorer settings that differ from the defaults are the run's variant, in the seed study's
    spelling; default settings, a method without a scorer and an old run.json give ""."""
    from atwu_core.evaluation.study_stats import ATWU_PREV_L2
    from atwu_core.scorer_config import ScorerConfig

    recorded = vars(ScorerConfig(update_every=1, lambda_2=0.01, scorer_position="prev"))
    prev = RunWriter.create(tmp_path, "atwu", {"method": "atwu", "scorer": recorded}, {}, 0)
    plain = RunWriter.create(
        tmp_path, "atwu", {"method": "atwu", "scorer": vars(ScorerConfig())}, {}, 0
    )
    write_fake_run(tmp_path, "wga", run_id="no-scorer")
    table = runs.list_runs(tmp_path).set_index("run_id")
    assert table["variant"].to_dict() == {
        prev.run_id: "scorer_position=prev,update_every=1,lambda_2=0.01",
        plain.run_id: "",
        "no-scorer": "",
    }
    assert f"atwu[{table.loc[prev.run_id, 'variant']}]" == ATWU_PREV_L2
    # A field this version does not know (a folder from another version) is ignored.
    assert runs.variant({"scorer": {"budget": 0.3, "future_knob": 1}}) == "budget=0.3"
