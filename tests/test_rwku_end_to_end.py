"""RWKU end to end on a randomly initialised Llama: `atwu unlearn --data rwku:first2@<fixture>`
with ATWU for 3 steps writes a complete run, and `atwu eval` re-evaluates it with RWKU's metrics.

Nothing downloads: the tokenizer is trained in-test on the fixture's text, the model is built
from a config (`random_llama`), both saved as a standard Hugging Face checkpoint.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from atwu_core.evaluation import rwku_metrics as R
from atwu_core.evaluation.rwku import RWKU_METRICS
from tests.conftest import random_llama

FIXTURE = Path(__file__).parent / "fixtures" / "rwku"
DATA = f"rwku:first2@{FIXTURE}"


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | dict):
        for v in value.values() if isinstance(value, dict) else value:
            yield from _strings(v)


@pytest.fixture(scope="module")
def rwku_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers.utils import logging as hf_logging

    from atwu_core.model import save_model, train_tokenizer

    hf_logging.disable_progress_bar()
    texts = [s for p in sorted(FIXTURE.glob("*.json")) for s in _strings(json.loads(p.read_text()))]
    texts.append(R.triviaqa_prompt(""))  # the five-shot prefix is in no fixture file
    tok = train_tokenizer(texts, vocab_size=512)
    path = tmp_path_factory.mktemp("rwku_model") / "model"
    save_model(random_llama(len(tok), max_positions=1024), tok, path)
    return path


def test_atwu_unlearn_and_eval_on_rwku_write_a_complete_run(rwku_model, tmp_path, capsys):
    from atwu_core.cli import main
    from atwu_core.runs import load_run

    runs = tmp_path / "runs"
    argv = ["unlearn", "--data", DATA, "--model", str(rwku_model), "--max-steps", "3"]
    argv += ["--method", "atwu", "--runs-dir", str(runs), "--device", "cpu", "--eval"]
    assert main([*argv, "--save-model"]) == 0
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert f"finished: {run_dir}" in capsys.readouterr().out
    run = load_run(run_dir)
    assert run.info["status"] == "finished" and run.info["config"]["data"] == DATA
    assert run.metrics["step"].tolist()[-1] == 3
    weights = run.token_weights
    assert weights is not None and set(weights["step"]) == {0, 3}
    assert weights["in_span"].any() and not weights["in_span"].all()
    assert weights["example_id"].str.startswith("train_positive_llama3-").all()

    metrics = run.eval["metrics"]
    assert set(RWKU_METRICS) <= set(metrics)
    assert {"span/auroc", "run/seconds"} <= set(metrics)
    for key in RWKU_METRICS:
        assert math.isfinite(metrics[key]["agg_value"]), key
    # Per-probe values: the 4 forget-level-1 probes of the 2 chosen targets.
    assert len(metrics["rwku/forget_l1_rougeL"]["value_by_index"]) == 4
    assert 0 <= metrics["rwku/utility_general_acc"]["agg_value"] <= 1
    gens = run.eval["generations"]
    assert gens["forget_level1-00002"]["answer"] == "Tallinn"
    assert {g["split"] for g in gens.values()} >= {"forget_level3", "neighbor_level2"}

    # `atwu eval` on the saved model re-evaluates the run in place with the same metric names.
    (run_dir / "eval.json").unlink()
    assert main(["eval", str(run_dir), "--data", DATA]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(RWKU_METRICS) <= set(printed)
    assert set(RWKU_METRICS) <= set(load_run(run_dir).eval["metrics"])
