"""Figure builders (atwu_core/viz.py): assert on content, not just that something renders."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from atwu_core import viz


def tokens(texts, weights, in_span=None, nll=None, nll_before=None, example_id="e1", step=0):
    n = len(texts)
    return pd.DataFrame(
        {
            "step": [step] * n,
            "example_id": [example_id] * n,
            "position": list(range(n)),
            "token": list(texts),
            "weight": list(weights),
            "nll": list(nll) if nll is not None else [0.5] * n,
            "in_span": list(in_span) if in_span is not None else [False] * n,
            "in_loss": [True] * n,
            **({"nll_before": list(nll_before)} if nll_before is not None else {}),
        }
    )


def spans_of(html_text):
    return re.findall(
        r'<span class="atwu-tok" style="([^"]*)" aria-label="([^"]*)">(.*?)'
        r'<span class="atwu-card">',
        html_text,
    )


# ----------------------------------------------------------------------------- colours


def test_weight_color_ends_and_clipping():
    # Reversed Magma without its black stop: #fcfdbf at 0, #180f3d at 1.
    assert viz.weight_color(0.0) == "rgb(252, 253, 191)"
    assert viz.weight_color(1.0) == "rgb(24, 15, 61)"
    assert viz.weight_color(-3.0) == viz.weight_color(0.0)
    assert viz.weight_color(7.0) == viz.weight_color(1.0)
    assert viz.weight_color(5.0, vmin=0.0, vmax=10.0) == viz.weight_color(0.5)
    assert viz.weight_color(float("nan")) == viz.MISSING_COLOR
    with pytest.raises(ValueError, match="vmax must be > vmin"):
        viz.weight_color(0.5, vmin=1.0, vmax=1.0)


def test_text_color_picks_the_higher_contrast():
    assert viz.text_color("rgb(252, 253, 191)") == "#000000"
    assert viz.text_color("rgb(24, 15, 61)") == "#ffffff"
    # Equal contrast where (L + 0.05)² = 0.0525, L = 0.1791: sRGB 117.4. Grey 118 (L = 0.1812)
    # keeps black text (contrast 4.62 vs 4.54), grey 117 (L = 0.1779) gets white.
    assert viz.text_color("rgb(118, 118, 118)") == "#000000"
    assert viz.text_color("rgb(117, 117, 117)") == "#ffffff"


# ----------------------------------------------------------------------------- token_html


def test_token_html_colours_outlines_and_tooltips():
    df = tokens(
        ["Elena", " was", " born"],
        [1.0, 0.0, 0.5],
        in_span=[True, False, False],
        nll=[3.0, 0.2, 0.4],
        nll_before=[0.1, 0.2, 0.3],
    )
    out = viz.token_html(df)
    found = spans_of(out)
    assert [text for _, _, text in found] == ["Elena", " was", " born"]
    styles = [style for style, _, _ in found]
    assert "background:rgb(24, 15, 61);color:#ffffff" in styles[0]
    assert "background:rgb(252, 253, 191);color:#000000" in styles[1]
    assert f"background:{viz.weight_color(0.5)}" in styles[2]
    assert [("outline:2px solid" in s) for s in styles] == [True, False, False]
    assert found[0][1] == "weight 1.000\nNLL before → now 0.10 → 3.00\nfact yes"
    assert "ground-truth fact span" in out  # the legend
    assert "Colour scale: absolute 0–1" in out
    # the hover card says the same in large type, escaped
    assert '<span class="atwu-card">token <b>Elena</b><br>weight <b>1.000</b>' in out


def test_token_html_escapes_every_token_and_tooltip():
    df = tokens(['<script>alert("x")</script>', " a&b", ' "q"'], [0.2, 0.4, 0.6])
    df["conflict"] = [0.25, np.nan, -0.5]
    out = viz.token_html(df, legend=False)
    assert "<script>" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    assert " a&amp;b" in out
    titles = [title for _, title, _ in spans_of(out)]
    assert titles[0].endswith("retain conflict +0.25")
    assert "conflict" not in titles[1]  # NaN conflict: not shown
    assert titles[2].endswith("retain conflict -0.50")


def test_token_html_turns_bpe_markers_into_visible_whitespace():
    df = tokens(["ĠLisbon", " ", "\n", "Ċ", "x"], [0.1] * 5)
    texts = [text for _, _, text in spans_of(viz.token_html(df, legend=False))]
    assert texts[0] == " Lisbon"
    assert "␣" in texts[1]
    assert "↵" in texts[2]
    assert "↵" in texts[3]
    assert "Ġ" not in "".join(texts) and "Ċ" not in "".join(texts)
    assert viz.visible_token("Ġborn") == "␣born"
    assert viz.visible_token("end\n") == "end↵"


def test_token_html_orders_by_position_and_names_missing_columns():
    df = tokens(["b", "a"], [0.1, 0.2])
    df["position"] = [1, 0]
    assert [t for _, _, t in spans_of(viz.token_html(df))] == ["a", "b"]
    with pytest.raises(ValueError, match="needs a 'score' column"):
        viz.token_html(df, weight_col="score")


def test_example_tokens_adds_nll_before_from_the_first_snapshot():
    df = pd.concat(
        [
            tokens(["a", "b"], [0.5, 0.5], nll=[0.1, 0.2], step=0),
            tokens(["a", "b"], [0.9, 0.1], nll=[2.0, 0.3], step=10),
            tokens(["z"], [0.5], example_id="e2", step=0),
        ]
    )
    at = viz.example_tokens(df, "e1", 10)
    assert list(at["weight"]) == [0.9, 0.1]
    assert list(at["nll_before"]) == [0.1, 0.2]
    stored = df.assign(nll_before=[0.7, 0.8, 0.7, 0.8, 0.9])  # as the training loop writes it
    assert list(viz.example_tokens(stored, "e1", 10)["nll_before"]) == [0.7, 0.8]
    with pytest.raises(ValueError, match=r"step 5 is not a snapshot of 'e1'; snapshots: \[0, 10\]"):
        viz.example_tokens(df, "e1", 5)
    with pytest.raises(ValueError, match="example_id 'nope'"):
        viz.example_tokens(df, "nope", 0)


def test_tokens_match_text_checks_offsets_against_the_answer():
    answer = "Tom was born"
    # offsets without the leading space (real BPE) and with it (the fake tokenizer) both match
    df = tokens(["Tom", " was", " born", "<|end|>"], [0.5] * 4)
    df["char_start"], df["char_end"] = [0, 4, 8, 12], [3, 7, 12, 12]
    assert viz.tokens_match_text(df, answer)
    df["char_start"], df["char_end"] = [0, 3, 7, 12], [3, 7, 12, 12]
    assert viz.tokens_match_text(df, answer)
    assert not viz.tokens_match_text(df, "Ann was born")  # same ids, another benchmark
    assert not viz.tokens_match_text(df, "Tom")  # offsets past the end
    assert viz.tokens_match_text(df, "Tim was born", min_share=0.6)  # 2 of 3 tokens match


def test_side_by_side_has_one_legend_and_escaped_labels():
    df = tokens(["a", "b"], [0.0, 1.0], in_span=[False, True])
    out = viz.side_by_side({"atwu <1>": df, "wga": df})
    assert out.count("atwu-legend") == 1
    assert "atwu &lt;1&gt;" in out
    assert len(spans_of(out)) == 4


def test_spans_html_marks_escaped_spans_and_rejects_bad_ones():
    text = "Tom <b> was born in Lisbon."
    out = viz.spans_html(text, [{"start": 20, "end": 26, "field": "city"}, {"start": 0, "end": 3}])
    assert out.startswith("<mark")
    assert ">Tom</mark> &lt;b&gt; was born in <mark" in out
    assert 'title="city">Lisbon</mark>.' in out
    overlapping = viz.spans_html("abcdef", [{"start": 0, "end": 4}, {"start": 2, "end": 6}])
    assert overlapping.count("<mark") == 2 and ">abcd</mark>" in overlapping
    assert "ef</mark>" in overlapping
    with pytest.raises(ValueError, match="does not fit inside a text of 6 characters"):
        viz.spans_html("abcdef", [{"start": 3, "end": 9}])


def test_standalone_html_is_a_full_document():
    page = viz.standalone_html("<p>x</p>", "run <1>")
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    assert "<title>run &lt;1&gt;</title>" in page
    assert "<p>x</p>" in page


# ----------------------------------------------------------------------------- figures


def two_examples(step=3):
    return pd.concat(
        [
            tokens(["A", " <i>", " c"], [0.9, 0.2, 0.1], in_span=[True, False, False], step=step),
            tokens(["x", " y"], [0.3, 0.8], in_span=[False, True], example_id="e2", step=step),
        ]
    )


def test_weights_heatmap_grid_hover_and_span_markers():
    fig = viz.weights_heatmap(pd.concat([two_examples(0), two_examples(3)]), 3)
    heat, span = fig.data
    z = np.asarray(heat.z, dtype=float)
    assert z.shape == (2, 3)  # examples × positions
    assert z[0].tolist() == [0.9, 0.2, 0.1]
    assert z[1, :2].tolist() == [0.3, 0.8] and math.isnan(z[1, 2])
    assert list(heat.y) == ["e1", "e2"]
    assert heat.customdata[0][1] == "␣&lt;i&gt;"  # escaped, leading space visible
    assert "token %{customdata}" in heat.hovertemplate
    assert span.name == "ground-truth span"
    assert list(zip(span.x, span.y, strict=True)) == [(0, "e1"), (1, "e2")]
    assert fig.layout.xaxis.title.text == "token position in the answer"
    with pytest.raises(ValueError, match=r"no token weights at step 7; snapshots: \[0, 3\]"):
        viz.weights_heatmap(two_examples(0).assign(step=[0, 0, 0, 3, 3]), 7)


def test_alignment_curves_golden_auc_in_trace_names():
    # Scores 0.9(+) 0.8(-) 0.3(+) 0.1(-): 3 of 4 (pos, neg) pairs ordered right -> AUROC 0.75;
    # AP = 0.5·1 + 0.5·(2/3) = 0.8333.
    good = tokens(["a", "b", "c", "d"], [0.9, 0.8, 0.3, 0.1], in_span=[True, False, True, False])
    single = tokens(["a", "b"], [0.5, 0.5], in_span=[False, False])
    fig = viz.alignment_curves({"atwu": good, "flat": single})
    names = [t.name for t in fig.data]
    assert names == ["atwu · AUROC 0.750 · AP 0.833", "atwu · AP 0.833", "chance"]
    assert [t.showlegend for t in fig.data[:2]] == [None, False]  # one legend entry per run
    roc = fig.data[0]
    assert roc.x[0] == 0 and roc.y[-1] == 1 and roc.x[-1] == 1
    assert "one class only: flat" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "false positive rate"
    assert fig.layout.yaxis2.title.text == "precision"


def test_alignment_table_per_step_with_undefined_steps_as_nan():
    step0 = tokens(["a", "b", "c", "d"], [0.5] * 4, in_span=[True, False, True, False], step=0)
    step5 = tokens(["a", "b", "c", "d"], [0.9, 0.8, 0.3, 0.1], in_span=[1, 0, 1, 0], step=5)
    flat = tokens(["a"], [0.5], in_span=[False], step=0)
    table = viz.alignment_table({"atwu": pd.concat([step0, step5]), "one-class": flat})
    assert list(table.columns) == list(viz.ALIGNMENT_COLUMNS)
    atwu = table[table["name"] == "atwu"].set_index("step")
    assert atwu.loc[0, "auroc"] == 0.5  # constant weights are at chance
    assert atwu.loc[5, "auroc"] == 0.75
    assert atwu.loc[5, "ap"] == pytest.approx(5 / 6)
    assert atwu.loc[5, "precision_at_k"] == 0.5  # top 2 = {0.9(+), 0.8(-)}
    assert atwu.loc[5, "mass_in_span"] == pytest.approx(1.2 / 2.1)
    assert list(atwu["n_in_span"]) == [2, 2]
    flat_row = table[table["name"] == "one-class"].iloc[0]
    assert math.isnan(flat_row["auroc"]) and flat_row["n_tokens"] == 1

    fig = viz.alignment_over_steps(table)
    assert [t.name for t in fig.data] == ["atwu", "one-class"]
    assert list(fig.data[0].x) == [0, 5] and list(fig.data[0].y) == [0.5, 0.75]


def test_alignment_ignores_tokens_outside_the_loss():
    df = tokens(["a", "b", "c"], [0.9, 0.1, 0.95], in_span=[True, False, False])
    df["in_loss"] = [True, True, False]  # the prompt-side token would otherwise beat the span
    table = viz.alignment_table({"m": df})
    assert table.loc[0, "auroc"] == 1.0 and table.loc[0, "n_tokens"] == 2


def test_weight_distributions_split_in_and_out_of_span():
    fig = viz.weight_distributions({"atwu": two_examples(), "wga": two_examples().head(2)})
    inside, outside = fig.data
    assert (inside.name, outside.name) == ("in forget span", "outside spans")
    assert list(inside.y) == [0.9, 0.8, 0.9]
    assert list(inside.x) == ["atwu", "atwu", "wga"]
    assert list(outside.y) == [0.2, 0.1, 0.3, 0.2]
    assert (inside.type, outside.type) == ("box", "box")
    assert fig.layout.boxmode == "group"  # side by side per method, not stacked
    assert fig.layout.yaxis.range == (-0.03, 1.03)
    wide = tokens(["a", "b"], [0.0, 2.0], in_span=[True, False])  # plug-in weights 2·g
    assert viz.weight_distributions({"m": wide}).layout.yaxis.range == (-0.06, 2.06)


def test_training_curves_one_trace_per_run_with_nan_dropped():
    a = pd.DataFrame({"step": [1, 2, 3], "forget/nll": [0.1, float("nan"), 0.3]})
    b = pd.DataFrame({"step": [1, 2], "forget/nll": [1.0, 2.0], "retain/nll": [0.5, 0.5]})
    c = pd.DataFrame({"step": [1], "other": [1.0]})
    fig = viz.training_curves({"run-a": a, "run-b": b, "run-c": c}, "forget/nll")
    assert [t.name for t in fig.data] == ["run-a", "run-b"]
    assert list(fig.data[0].x) == [1, 3] and list(fig.data[0].y) == [0.1, 0.3]
    assert fig.layout.yaxis.type == "linear"
    assert fig.layout.yaxis.title.text == "forget/nll"
    assert viz.training_curves({"only": a}, "forget/nll").layout.showlegend  # named even alone
    assert (
        viz.training_curves(
            {"r": a.rename(columns={"forget/nll": "forget_quality"})}, "forget_quality"
        ).layout.yaxis.type
        == "log"
    )
    assert viz.metric_keys({"a": a, "b": b, "c": c}) == ["forget/nll", "other", "retain/nll"]


LEADERBOARD = pd.DataFrame(
    {
        "run_id": ["A", "B", "C", "D", "E", "F"],
        "method": ["atwu", "wga", "wga", "npo", "atwu", "npo"],
        "model_utility": [0.1, 0.5, 0.4, 0.9, 0.5, float("nan")],
        "forget_quality": [0.9, 0.5, 0.4, 0.1, 0.5, 0.99],
    }
)


def test_pareto_front_on_a_hand_made_table():
    # C is beaten by B on both axes; B and E tie (neither strictly better): both stay;
    # F has no utility: never on the front.
    front = viz.pareto_front(LEADERBOARD, "model_utility", "forget_quality")
    assert list(LEADERBOARD.loc[front, "run_id"]) == ["A", "B", "D", "E"]
    with pytest.raises(ValueError, match="column 'nope' is missing"):
        viz.pareto_front(LEADERBOARD, "nope", "forget_quality")


def test_tradeoff_scatter_methods_as_means_references_off_the_front():
    board = pd.concat(
        [
            LEADERBOARD.assign(reference=False),
            pd.DataFrame(
                {
                    "run_id": ["R"],
                    "method": ["retain"],
                    "model_utility": [1.0],
                    "forget_quality": [1.0],
                    "reference": [True],
                    "run": ["retain model (target)"],
                }
            ),
        ],
        ignore_index=True,
    )
    fig = viz.tradeoff_scatter(board)
    names = [t.name for t in fig.data]
    # methods in legend order (ATWU first), then the reference, then the front
    assert names == [
        "atwu",
        "wga",
        "npo",
        "retain model (target) (reference)",
        "Pareto front (methods)",
    ]
    by_name = {t.name: t for t in fig.data}
    atwu = by_name["atwu"]
    assert atwu.x[0] == pytest.approx(0.3)  # mean of A and E
    assert atwu.y[0] == pytest.approx((0.9 * 0.5) ** 0.5)  # p-values: geometric mean
    assert atwu.error_x.visible and atwu.text == ("atwu (n=2)",)
    assert not by_name["npo"].error_x.visible  # one run (F has no utility): no bar
    assert atwu.marker.color == viz.method_style("atwu")["color"]
    front = by_name["Pareto front (methods)"]
    assert "retain" not in list(front.customdata)  # the reference model is never on the front
    assert sorted(front.customdata) == ["atwu", "npo", "wga"]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.tickformat == ".0e"
    assert fig.layout.xaxis.title.text == "model_utility"


# ---------------------------------------------------------------------------------------------
# Run labels


def test_run_labels_method_then_seed_then_number_and_reference_names():
    rows = [
        {"key": "r/1", "method": "atwu", "seed": 0, "created": "2026-01-01T10:00:00Z"},
        {"key": "r/2", "method": "atwu", "seed": 1, "created": "2026-01-01T10:01:00Z"},
        # Same method and seed as r/1 but newer: numbered after it.
        {"key": "r/0", "method": "atwu", "seed": 0, "created": "2026-01-01T11:00:00Z"},
        {"key": "r/3", "method": "wga", "seed": 0, "created": "2026-01-01T10:02:00Z"},
        {"key": "r/4", "method": "full", "seed": None, "reference": True},
        {"key": "r/5", "method": "retain", "seed": float("nan"), "reference": True},
        {"key": "r/6", "method": "base", "reference": True},
        # A non-reference run of method "full" keeps its method name.
        {"key": "r/7", "method": "full", "seed": 3},
    ]
    assert viz.run_labels(rows) == {
        "r/1": "atwu s0 #1",
        "r/2": "atwu s1",
        "r/0": "atwu s0 #2",
        "r/3": "wga",  # the only wga run: no seed
        "r/4": "full model (before)",
        "r/5": "retain model (target)",
        "r/6": "base model (reference)",
        "r/7": "full",
    }


def test_run_labels_are_unique_even_for_copies_and_reject_repeated_keys():
    copies = [{"key": f"{d}/x", "method": "npo", "seed": 2, "created": "t"} for d in ("b", "a")]
    # Identical runs in two folders: numbered by (created, key), so "a/x" comes first.
    assert viz.run_labels(copies) == {"b/x": "npo s2 #2", "a/x": "npo s2 #1"}
    with pytest.raises(ValueError, match=r"key\(s\) \['a/x'\] appear more than once"):
        viz.run_labels([copies[1], copies[1]])


def test_highlighted_runs_get_thicker_lines():
    df = pd.DataFrame({"step": [1, 2], "loss/total": [1.0, 0.5]})
    fig = viz.training_curves({"atwu": df, "wga": df}, "loss/total", highlight={"atwu"})
    assert [t.line.width for t in fig.data] == [viz.HIGHLIGHT_WIDTH, viz.LINE_WIDTH]
    frame = tokens(["a", "b", "c"], [0.9, 0.1, 0.2], in_span=[True, False, False])
    curves = viz.alignment_curves({"atwu": frame, "wga": frame}, highlight={"atwu"})
    widths = {t.name: t.line.width for t in curves.data if t.name != "chance"}
    assert widths == {
        "atwu · AUROC 1.000 · AP 1.000": 4.0,
        "atwu · AP 1.000": 4.0,
        "wga · AUROC 1.000 · AP 1.000": 1.5,
        "wga · AP 1.000": 1.5,
    }
    table = viz.alignment_table({"atwu": frame, "wga": frame})
    steps = viz.alignment_over_steps(table, highlight=("wga",))
    assert [(t.name, t.line.width) for t in steps.data] == [("atwu", 1.5), ("wga", 4.0)]


# ---------------------------------------------------------------------------------------------
# One colour per method, the first-screen comparison, rankings and the grouped leaderboard


def test_a_method_has_one_colour_in_every_figure_whatever_else_is_plotted():
    df = pd.DataFrame({"step": [1, 2], "loss/total": [1.0, 0.5]})
    frame = tokens(["a", "b", "c"], [0.9, 0.1, 0.2], in_span=[True, False, False])
    for others in (["wga"], ["satimp", "wga", "npo"], ["zzz_new", "wga"]):
        runs = {"wga": df, **{o: df for o in others}, "atwu s1": df}
        curves = viz.training_curves(runs, "loss/total", method_of={"atwu s1": "atwu"})
        colors = {t.name: t.line.color for t in curves.data}
        assert colors["wga"] == viz.method_style("wga")["color"] == "#0072B2"
        assert colors["atwu s1"] == viz.method_style("atwu")["color"]
        assert curves.data[0].name == "atwu s1"  # ATWU first in every legend
        roc = viz.alignment_curves({o: frame for o in others} | {"wga": frame})
        assert {t.legendgroup: t.line.color for t in roc.data if t.legendgroup}["wga"] == "#0072B2"
    # distinct colours for the methods the issue found sharing one
    pairs = [("atwu", "retain"), ("satimp", "atwu_simnpo"), ("rmu", "atwu_npo")]
    for a, b in pairs:
        assert viz.method_style(a)["color"] != viz.method_style(b)["color"]
    assert viz.method_style("atwu")["width"] == viz.HIGHLIGHT_WIDTH
    assert viz.method_style("atwu_frozen")["kind"] == "control"
    assert viz.method_style("retain")["kind"] == "reference"
    assert viz.method_style("brand_new") == viz.method_style("brand_new")  # by name, stable


def test_example_auroc_nearest_snapshot_and_shared_positions():
    df = tokens(["a", "b", "c", "d"], [0.9, 0.8, 0.3, 0.1], in_span=[True, False, True, False])
    assert viz.example_auroc(df) == pytest.approx(0.75)
    assert viz.example_auroc(df.assign(weight=0.5)) == pytest.approx(0.5)  # ties count half
    assert viz.example_auroc(df.assign(in_span=False)) is None
    assert viz.nearest_snapshot([0, 5, 10], 7) == 5
    assert viz.nearest_snapshot([0, 5, 10], 10) == 10
    assert viz.nearest_snapshot([5, 10], 2) == 5
    df["char_start"], df["char_end"] = [0, 2, 4, 6], [1, 3, 5, 7]
    assert viz.shared_positions(df, [{"start": 2, "end": 5}]) == {1, 2}


def test_scale_range_absolute_row_and_diverging():
    assert viz.scale_range([0.3, 0.58], "absolute") == (0.0, 1.0)
    assert viz.scale_range([0.3, 0.58], "row") == (0.3, 0.58)
    lo, hi = viz.scale_range([0.3, 0.58], "diverging")
    assert (lo, hi) == pytest.approx((0.3, 0.7))
    assert viz.weight_color_on(0.5, lo, hi, "diverging") == "rgb(247, 247, 247)"  # neutral
    with pytest.raises(ValueError, match="scale must be one of"):
        viz.scale_range([0.1], "log")


def test_comparison_rows_ground_truth_shared_spans_and_legend():
    base = tokens(["<b>", " born", " 1961"], [0.3, 0.4, 0.58], in_span=[True, False, False])
    base["span_field"] = ["name", "", ""]
    rows = [
        {"label": "atwu", "method": "atwu", "tokens": base, "note": "step 50", "auroc": 0.75},
        {
            "label": "wga <x>",
            "method": "wga",
            "tokens": base.assign(weight=[0.1, 0.9, 0.5]),
            "note": "step 45: nearest earlier snapshot",
            "auroc": None,
        },
    ]
    out = viz.comparison_html(rows, base, scale="row", shared={2})
    assert "<b>atwu</b>" in out and "wga &lt;x&gt;" in out and "<x>" not in out
    assert out.count('class="atwu-row"') == 3  # two methods + the ground truth
    assert 'data-method="ground-truth"' in out and "span AUROC 0.75" in out
    assert "step 45: nearest earlier snapshot" in out and "span AUROC n/a" in out
    assert "Colour scale: per row" in out and "dashed" in out
    assert viz.method_style("wga")["color"] in out  # the swatch
    found = spans_of(out)
    # per row: ATWU's 0.3 is its own lightest colour, 0.58 its darkest
    assert found[0][0].startswith(f"background:{viz.weight_color(0.0)}")
    assert found[2][0].startswith(f"background:{viz.weight_color(1.0)}")
    assert "&lt;b&gt;" in out and "fact <b>name</b>" in out
    assert "outline:3px dashed" in found[2][0]
    with pytest.raises(ValueError, match="scale must be one of"):
        viz.comparison_html(rows, base, scale="nope")


def test_span_ranking_bars_and_field_breakdown():
    fig = viz.span_ranking(
        [
            {"name": "atwu", "method": "atwu", "values": [0.7, 0.8]},
            {"name": "wga", "method": "wga", "values": [0.3]},
            {"name": "retain-model NLL", "reference": True, "values": [0.95]},
        ]
    )
    bar = fig.data[0]
    assert list(bar.y) == ["wga", "atwu (n=2)", "retain-model NLL"]  # best on top
    assert bar.x[1] == pytest.approx(0.75) and bar.error_x.array[1] == pytest.approx(0.0707, 1e-3)
    assert bar.marker.color[1] == viz.method_style("atwu")["color"]
    assert bar.marker.pattern.shape[2] == "/"
    table = pd.DataFrame({"name": [0.9, 0.6], "city": [0.7, float("nan")]}, index=["wga", "atwu"])
    heat = viz.field_breakdown(table)
    assert list(heat.data[0].y) == ["atwu", "wga"]


def test_leaderboard_summary_groups_seeds_and_marks_the_best():
    board = pd.DataFrame(
        {
            "method": ["atwu", "atwu", "wga", "oracle_saturated", "retain"],
            "run": ["atwu s0", "atwu s1", "wga", "oracle_saturated", "retain model (target)"],
            "reference": [False, False, False, False, True],
            "forget_quality": [4e-16, 6e-16, 0.5, 0.9, 1.0],
            "forget/span_token_acc": [0.1, 0.3, 0.05, 0.0, 0.9],
        }
    )
    table, best = viz.leaderboard_summary(board, ["forget_quality", "forget/span_token_acc"])
    assert list(table["method"]) == ["atwu", "wga", "oracle_saturated", "retain model (target)"]
    assert list(table["runs"]) == [2, 1, 1, 0]
    assert table.loc[0, "forget_quality"] == "5.0e-16 ± 1.4e-16"
    assert table.loc[1, "forget_quality"] == "0.500"
    # neither the reference model nor the control counts as best
    assert best == {"forget_quality": "wga", "forget/span_token_acc": "wga"}


def test_generation_html_marks_leaked_facts_and_flags_repetition():
    out = viz.generation_html("She was born in LISBON <b>, in 1961.", ["Lisbon", "1961", "x"])
    assert out.count('class="atwu-leak"') == 2 and ">LISBON</mark>" in out
    assert "&lt;b&gt;" in out and "<b>" not in out
    assert "atwu-degenerate" not in out
    assert viz.is_degenerate("contex contex contex contex")
    assert viz.is_degenerate("the author the author the author")
    assert not viz.is_degenerate("the author was born in the city of the author")
    assert "repetition" in viz.generation_html("contex contex contex", [])


def test_tradeoff_zooms_past_a_collapsed_method_and_names_it():
    import pandas as pd

    from atwu_core.viz import tradeoff_scatter

    board = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "method": ["atwu", "wga", "grad_ascent"],
            "model_utility": [0.97, 0.93, 0.0],
            "forget_quality": [0.5, 0.1, 0.003],
        }
    )
    fig = tradeoff_scatter(board)
    low, high = fig.layout.xaxis.range
    assert 0.85 < low < 0.93 and 0.97 < high < 1.05  # the kept methods fill the axis
    assert "off the left edge: grad_ascent (0.00)" in fig.layout.title.text
    board = board[board["method"] != "grad_ascent"]
    assert tradeoff_scatter(board).layout.xaxis.range is None  # nothing collapsed: no zoom


# ----------------------------------------------------------------------------- seed study


def study_board() -> pd.DataFrame:
    """3 seeds: atwu 0.6/0.7/0.8, its variant 0.8 everywhere, frozen 0.5, oracle 0.9, wga 0.4;
    selectivity missing for satimp on every seed."""
    from atwu_core.evaluation.study_stats import ATWU_PREV_L2

    values = {
        "atwu": [0.6, 0.7, 0.8],
        ATWU_PREV_L2: [0.8, 0.8, 0.8],
        "atwu_frozen": [0.5, 0.5, 0.5],
        "oracle_saturated": [0.9, 0.9, 0.9],
        "wga": [0.4, 0.5, 0.6],
        "satimp": [math.nan] * 3,
    }
    rows = []
    for method, sel in values.items():
        for seed, s in enumerate(sel, start=1):
            rows.append(
                {
                    "regime": "default",
                    "method": method,
                    "seed": seed,
                    "selectivity": s,
                    "span/auroc": 0.5 + (0.1 * seed if method.startswith("atwu[") else 0.0),
                    "log10_fq": -1.0,
                    "model_utility": 0.9,
                }
            )
    return pd.DataFrame(rows)


def test_study_dots_mean_ci_seeds_and_readable_rows():
    from atwu_core.evaluation.study_stats import ATWU_PREV_L2

    fig = viz.study_dots(study_board())
    assert "selectivity per method: mean ± 95 % CI over 3 seeds" in fig.layout.title.text
    means = {t.name: t for t in fig.data if not t.name.endswith(": seeds")}
    # ATWU and its variant first, the controls last; satimp has no value and is named below
    assert list(means) == ["atwu", ATWU_PREV_L2, "wga", "atwu_frozen", "oracle_saturated"]
    atwu = means["atwu"]
    assert atwu.x[0] == pytest.approx(0.7)
    # t(0.975, 2) · sd 0.1 / √3
    assert atwu.error_x.array[0] == pytest.approx(0.2484138, rel=1e-6)
    assert atwu.marker.color == viz.method_style("atwu")["color"]
    variant = means[ATWU_PREV_L2]
    assert variant.y[0] == "<b>atwu · prev, ue1, λ₂=0.01</b>"  # short on the axis ...
    assert ATWU_PREV_L2 in variant.hovertemplate  # ... full in the hover
    assert variant.marker.color == viz.method_style("atwu")["color"]
    assert "(control)" in means["atwu_frozen"].y[0]
    seeds = next(t for t in fig.data if t.name == "atwu: seeds")
    assert list(seeds.x) == [0.6, 0.7, 0.8] and seeds.marker.opacity < 0.5
    assert fig.layout.meta["missing"] == ["satimp"]
    assert "satimp" in fig.layout.annotations[0].text
    assert len(fig.layout.shapes) == 2  # the controls' means


def test_study_paired_differences_with_zero_line_and_filled_when_significant():
    from atwu_core.evaluation.study_stats import ATWU_PREV_L2

    fig = viz.study_paired(study_board(), metrics=["selectivity", "span/auroc"])
    assert "paired per seed" in fig.layout.title.text and "over 3 seeds" in fig.layout.title.text
    assert [a.text for a in fig.layout.annotations][:2] == ["selectivity", "span AUROC"]
    by_name = {t.name: t for t in fig.data}
    atwu = by_name["atwu · selectivity"]
    # per seed 0.1, 0.2, 0.3: mean 0.2 ± 0.248 includes 0 -> open marker
    assert atwu.x[0] == pytest.approx(0.2)
    assert atwu.error_x.array[0] == pytest.approx(0.2484138, rel=1e-6)
    assert atwu.marker.symbol == "circle-open"
    variant = by_name[f"{ATWU_PREV_L2} · selectivity"]
    assert variant.x[0] == pytest.approx(0.3) and variant.marker.symbol == "circle"
    # a zero line in each panel, and 0 inside each panel's range
    assert sorted(s.x0 for s in fig.layout.shapes) == [0, 0]
    lo, hi = fig.layout.xaxis.range
    assert lo < 0 < hi


def test_variant_labels_keep_their_methods_colour():
    style = viz.method_style("atwu[scorer_position=prev]")
    assert style["color"] == viz.method_style("atwu")["color"] and style["symbol"] == "diamond"
    assert (
        viz.method_sort_key("atwu")
        < viz.method_sort_key("atwu[x=1]")
        < viz.method_sort_key("atwu_npo")
    )


def test_run_labels_say_tuned_and_keep_the_method_first():
    from atwu_core.viz import method_of_name, run_labels

    rows = [
        {"key": "a", "method": "atwu", "seed": 0},
        {"key": "b", "method": "atwu", "seed": 0, "tuned": True},
        {"key": "c", "method": "wga", "seed": 1, "tuned": True},
        {"key": "d", "method": "full", "reference": True, "tuned": True},
    ]
    labels = run_labels(rows)
    assert labels == {
        "a": "atwu s0",
        "b": "atwu s0 (tuned)",
        "c": "wga (tuned)",
        "d": "full model (before)",
    }
    assert method_of_name(labels["b"]) == "atwu"


def test_run_labels_name_a_scorer_variant_after_its_method():
    """Two ATWU runs of one seed with different scorer settings read apart, not "#1"/"#2"."""
    from atwu_core.viz import method_of_name, run_labels

    rows = [
        {"key": "a", "method": "atwu", "seed": 0, "variant": ""},
        {"key": "b", "method": "atwu", "seed": 0,
         "variant": "scorer_position=prev,update_every=1,lambda_2=0.01"},
    ]  # fmt: skip
    labels = run_labels(rows)
    assert labels == {"a": "atwu", "b": "atwu · prev, ue1, λ₂=0.01"}
    assert method_of_name(labels["b"]) == "atwu"
