"""Tests of the tidy token rows and their span alignment (atwu_core.snapshots, METHOD.md §4),
and of the selectivity metric (atwu_core.evaluation.metrics.selectivity)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from atwu_core.evaluation.metrics import selectivity
from atwu_core.snapshots import pooled_alignment, reference_scores, span_metrics, token_rows


def row(ex, pos, weight, in_span, *, field="", is_end=False, nll=1.0, before=0.5, retain=None):
    return {
        "step": 10,
        "example_id": ex,
        "position": pos,
        "weight": weight,
        "nll": nll,
        "nll_before": before,
        "in_span": in_span,
        "in_loss": True,
        "span_field": field,
        "is_end": is_end,
        "retain_nll": retain,
    }


# Two answers: a name (2 tokens) and a city (1 token) among template tokens, each closed by an
# end token. The weights rank the name above everything, the city below one template token.
ROWS = [
    row("a", 0, 0.9, True, field="name"),
    row("a", 1, 0.8, True, field="name"),
    row("a", 2, 0.6, False),
    row("a", 3, 0.1, False, is_end=True),
    row("b", 0, 0.2, False),
    row("b", 1, 0.5, True, field="city"),
    row("b", 2, 0.7, False, is_end=True),
]


def test_span_metrics_golden_auroc_by_field_and_without_end():
    out = span_metrics(ROWS)
    # Positives 0.9, 0.8, 0.5; negatives 0.6, 0.1, 0.2, 0.7. Pairs won: 0.9 and 0.8 beat all 4,
    # 0.5 beats 0.1 and 0.2: (4 + 4 + 2) / 12.
    assert out["span/auroc"]["agg_value"] == pytest.approx(10 / 12)
    # Without the end tokens (0.1, 0.7): negatives 0.6, 0.2 -> (2 + 2 + 1) / 6.
    assert out["span/no_end/auroc"]["agg_value"] == pytest.approx(5 / 6)
    # Per field: the name's tokens against the 4 negatives win all; the city's wins 2 of 4.
    assert out["span/field/name/auroc"]["agg_value"] == pytest.approx(1.0)
    assert out["span/field/city/auroc"]["agg_value"] == pytest.approx(0.5)
    # Per example: a has 2 pos vs 2 neg, all won; b has 1 pos vs 2 neg, 1 won.
    assert out["span/auroc"]["value_by_index"] == pytest.approx({"a": 1.0, "b": 0.5})


def test_reference_scores_and_retain_label():
    rows = [
        row("a", 0, 0.9, True, nll=5.0, before=0.1, retain=3.0),
        row("a", 1, 0.2, False, nll=4.0, before=3.5, retain=0.1),  # high NLL, small rise
        row("a", 2, 0.4, False, nll=0.5, before=0.4, retain=1.0),  # retain p < 0.5: a 2nd label
    ]
    out = span_metrics(rows)
    assert out["span/ref/nll/auroc"]["agg_value"] == 1.0
    assert out["span/ref/nll_rise/auroc"]["agg_value"] == 1.0  # 4.9 vs 0.5, 0.1
    assert out["span/ref/retain_nll/auroc"]["agg_value"] == 1.0
    # retain label: tokens 0 and 2 (ℓ_retain > ln 2); the weights 0.9, 0.4 vs 0.2: AUROC 1
    assert out["span/retain_label/auroc"]["agg_value"] == 1.0
    assert reference_scores(rows, "nll_rise").tolist() == pytest.approx([4.9, 0.5, 0.1])
    with pytest.raises(ValueError, match="unknown reference score 'x'"):
        reference_scores(rows, "x")


def test_missing_retain_nll_drops_only_its_entries():
    out = span_metrics(ROWS)
    assert "span/ref/retain_nll/auroc" not in out and "span/retain_label/auroc" not in out
    assert "span/ref/nll/auroc" in out


def test_one_class_gives_no_entries():
    rows = [row("a", 0, 0.5, False), row("a", 1, 0.7, False)]
    assert span_metrics(rows) == {}
    assert pooled_alignment(rows) == {}
    assert pooled_alignment(ROWS)["align/auroc"] == pytest.approx(10 / 12)


def test_token_rows_reads_the_shifted_frame_and_keeps_the_first_nll():
    # prompt of 2 ids, answer of 2 tokens + end: answer token pos sits at index 1 + pos
    enc = SimpleNamespace(
        id="a",
        input_ids=[7, 8, 20, 21, 2],
        answer_start=2,
        answer_offsets=[(0, 3), (3, 6), (6, 6)],
        in_span=[True, False, False],
        span_field=["name", "", ""],
        is_end=[False, False, True],
    )
    weights = np.array([[0.0, 0.9, 0.3, 0.1]])  # (1, T=4)
    nll = np.array([[9.0, 1.5, 2.5, 0.2]])
    in_loss = np.array([[0, 1, 1, 1]])
    before: dict = {}
    rows = token_rows(0, [enc], weights, nll, in_loss, str, nll_before=before)
    assert [r["weight"] for r in rows] == [0.9, 0.3, 0.1]
    assert [r["token"] for r in rows] == ["20", "21", "2"]
    assert [r["span_field"] for r in rows] == ["name", "", ""]
    assert [r["is_end"] for r in rows] == [False, False, True]
    later = token_rows(5, [enc], weights, nll * 2, in_loss, str, nll_before=before)
    assert [r["nll_before"] for r in later] == [1.5, 2.5, 0.2]
    assert [r["nll"] for r in later] == [3.0, 5.0, 0.4]


def test_selectivity_reads_the_end_of_a_run_that_forgot():
    # span accuracy ends at 0.05 <= 0.1: the shared-token accuracy left at the end counts, even
    # though it was higher when the facts first went (0.9 at span accuracy 0.08).
    assert selectivity([1.0, 0.08, 0.05], [1.0, 0.9, 0.4]) == 0.4
    assert selectivity([1.0, 0.1], [1.0, 0.7]) == 0.7  # at the target exactly
    assert selectivity([1.0, 0.05, 0.3], [1.0, 0.9, 1.0]) is None  # the facts came back
    assert selectivity([1.0, 0.6, 0.3], [1.0, 1.0, 1.0]) is None  # never forgot enough
    assert selectivity([1.0, 0.3], [1.0, 0.9], target=0.5) == 0.9
    with pytest.raises(ValueError, match="length mismatch"):
        selectivity([1.0], [1.0, 0.5])
    with pytest.raises(ValueError, match="target"):
        selectivity([1.0], [1.0], target=1.5)
    assert selectivity([], []) is None
