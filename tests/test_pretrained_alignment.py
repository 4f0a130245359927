"""benchmarks/pretrained_alignment.py: tiny vs pretrained span AUROC on the same forget rows."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLE

ROOT = Path(__file__).resolve().parents[1]
TOFU_RUNS = SAMPLE / "tofu_mini" / "runs"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location(
        "pretrained_alignment", ROOT / "benchmarks" / "pretrained_alignment.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def table(weights, derived, entity, examples=None):
    return pd.DataFrame(
        {
            "example_id": examples or ["a"] * len(weights),
            "weight": weights,
            "derived": derived,
            "entity": entity,
        }
    )


def test_pooled_auroc_by_hand(script):
    # positives 0.9, 0.5; negatives 0.1, 0.5: pairs 1 + 1 + 1 + 0.5 (tie) = 3.5 of 4
    t = table([0.9, 0.1, 0.5, 0.5], [True, False, True, False], [None, None, True, False])
    assert script.pooled_auroc(t, "derived") == pytest.approx(0.875)
    # entity: unannotated tokens (None) are left out; 0.5 vs 0.5 is a tie
    assert script.pooled_auroc(t, "entity") == pytest.approx(0.5)
    # one class only: undefined, not a number that looks like a result
    assert pd.isna(script.pooled_auroc(table([0.1, 0.2], [True, True], [None, None]), "derived"))


def test_paired_difference_resamples_rows_jointly(script):
    rows = ["a", "a", "b", "b"]
    tiny = table([0.5, 0.5, 0.5, 0.5], [True, False, True, False], [None] * 4, rows)
    perfect = table([0.9, 0.1, 0.8, 0.2], [True, False, True, False], [None] * 4, rows)
    point, lo, hi = script.paired_difference(tiny, perfect, "derived", resamples=200)
    # constant weights rank nothing (0.5), perfect ones everything (1.0): +0.5 on every resample
    assert (point, lo, hi) == pytest.approx((0.5, 0.5, 0.5))
    point, lo, hi = script.paired_difference(tiny, tiny, "derived", resamples=50)
    assert (point, lo, hi) == (0.0, 0.0, 0.0)


@pytest.mark.skipif(not TOFU_RUNS.is_dir(), reason="committed TOFU-mini runs missing")
def test_compare_matches_methods_across_folders_and_scores_both_labels(script, tmp_path):
    """The committed ATWU run against a copy whose weights are the derived spans themselves:
    derived AUROC 1.0 on the copy, the difference is 1 − the run's own value."""
    from atwu_core.runs import read_info

    run = next(
        p
        for p in sorted(TOFU_RUNS.iterdir())
        if p.name.endswith("-atwu-s0") and script.run_label(read_info(p)) == "atwu"
    )
    tiny, pre = tmp_path / "tiny", tmp_path / "pre"
    for folder in (tiny, pre):
        shutil.copytree(run, folder / run.name)
    path = pre / run.name / "forget_weights.parquet"
    df = pd.read_parquet(path)
    df["weight"] = df["in_span"].astype(float)
    df.to_parquet(path)
    (result,) = script.compare(tiny, pre, resamples=20)
    assert result["method"] == "atwu" and result["derived_tiny"] < 0.9
    assert result["derived_pre"] == 1.0
    point, lo, hi = result["derived_diff"]
    assert point == pytest.approx(1.0 - result["derived_tiny"]) and lo <= point <= hi
    assert 0.0 <= result["entity_tiny"] <= 1.0 and 0.0 <= result["entity_pre"] <= 1.0
