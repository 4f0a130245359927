"""Pure figure builders: data in, plotly figure or escaped HTML out (CircuitsVis style).

Nothing here reads files or holds state; the dashboard passes DataFrames from `atwu_core.runs`.
Inputs follow docs/FORMATS.md (`token_weights.parquet` columns: step, example_id, position, token,
weight, nll, in_span, in_loss, optional conflict). The token view shows METHOD.md §1's learned
weights g_t (or any method's implicit weight, §2) against the ground-truth spans of §4.

Every piece of token or benchmark text that ends up in HTML goes through `html.escape`.
No torch: the dashboard imports this module at start-up. sklearn and `atwu_core.metrics` (~1.4 s
to import) are imported only by the alignment builders that need them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Magma is perceptually uniform. Reversed, a weight of 0 is a pale cream (tokens the method ignores
# read like plain text) and 1 is a dark purple; the last, near-black stop is dropped so dark tokens
# still look coloured rather than redacted.
COLORSCALE = pcolors.make_colorscale(list(reversed(pcolors.sequential.Magma[1:])))
SPAN_COLOR = "#00B4D8"  # cyan outline: absent from Magma, so visible on every background
MISSING_COLOR = "rgb(200, 200, 200)"
# Byte-level BPE markers that a tokenizer's raw vocabulary shows instead of whitespace.
_BPE_MARKERS = str.maketrans({"Ġ": " ", "Ċ": "\n", "ĉ": "\t", "▁": " "})
_VISIBLE_WS = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})
PVALUE_METRICS = ("forget_quality",)
LINE_WIDTH, HIGHLIGHT_WIDTH = 1.5, 4.0  # a highlighted run (ATWU) stands out among many lines


# Reference runs (eval-only folders of the models unlearning starts from and aims at) by method.
REFERENCE_LABELS = {"full": "full model (before)", "retain": "retain model (target)"}


# ---------------------------------------------------------------------------------------------
# Run labels


def run_labels(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """key -> a short, unique, readable name for each run, for every place a run is shown.

    Each row holds `key` (e.g. the run folder), `method`, and optionally `seed`, `reference`
    (an eval-only reference folder) and `created` (ISO time, to number duplicates stably).
    The name is the method (`atwu`); ` s{seed}` joins it only when several runs share the
    method; ` #n` (oldest first) only when names still collide, e.g. two ATWU runs of seed 0 with
    different hyperparameters. A reference run of method `full` / `retain` reads
    "full model (before)" / "retain model (target)". Raises ValueError on a repeated key.
    """
    keys = [str(r["key"]) for r in rows]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"run_labels: key(s) {dupes} appear more than once")
    methods = [str(r.get("method") or "?") for r in rows]
    # Reference folders are named apart, so they do not make a method "shared".
    plain = [m for r, m in zip(rows, methods, strict=True) if not r.get("reference")]
    per_method = {m: plain.count(m) for m in plain}
    base = []
    for r, method in zip(rows, methods, strict=True):
        if r.get("reference"):
            base.append(REFERENCE_LABELS.get(method, f"{method} model (reference)"))
        elif per_method.get(method, 0) > 1 and r.get("seed") is not None and not pd.isna(r["seed"]):
            base.append(f"{method} s{int(r['seed'])}")
        else:
            base.append(method)
    # Oldest first, so a newly launched run takes the next number and old names stay put.
    order = sorted(range(len(rows)), key=lambda i: (str(rows[i].get("created") or ""), keys[i]))
    seen: dict[str, int] = {}
    labels = list(base)
    for i in order:
        if base.count(base[i]) > 1:
            seen[base[i]] = seen.get(base[i], 0) + 1
            labels[i] = f"{base[i]} #{seen[base[i]]}"
    return dict(zip(keys, labels, strict=True))


# ---------------------------------------------------------------------------------------------
# Colours and token text


def weight_color(weight: float, vmin: float = 0.0, vmax: float = 1.0) -> str:
    """`rgb(r, g, b)` of `weight` on COLORSCALE, clipped to [vmin, vmax]; grey for NaN/None."""
    if vmax <= vmin:
        raise ValueError(f"vmax must be > vmin, got vmin={vmin}, vmax={vmax}")
    if weight is None or not math.isfinite(float(weight)):
        return MISSING_COLOR
    t = min(max((float(weight) - vmin) / (vmax - vmin), 0.0), 1.0)
    return pcolors.sample_colorscale(COLORSCALE, [t])[0]


def _luminance(rgb: str) -> float:
    """WCAG relative luminance of an `rgb(r, g, b)` string."""
    channels = [float(c) / 255 for c in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def text_color(background: str) -> str:
    """Black or white, whichever has the higher WCAG contrast ratio on `background`."""
    lum = _luminance(background)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def clean_token(token: str) -> str:
    """Token text with byte-level BPE markers ("Ġ", "Ċ", "▁") turned back into whitespace."""
    return str(token).translate(_BPE_MARKERS)


def visible_token(token: str) -> str:
    """Plain-text token for hover labels: leading/trailing whitespace shown as ␣ ↵ ⇥."""
    text = clean_token(token)
    core = text.strip()
    if not core:
        return text.translate(_VISIBLE_WS) or "∅"
    start = text.index(core[0])
    end = start + len(core)
    return text[:start].translate(_VISIBLE_WS) + core + text[end:].translate(_VISIBLE_WS)


def _token_inner_html(token: str) -> str:
    """Escaped HTML for the text inside a token box.

    Spaces stay real spaces (the box uses `white-space: pre-wrap`), so words read naturally and a
    BPE token's leading space shows as a gap inside its box. A whitespace-only token would be an
    invisible box, so it is drawn with symbols; a newline also breaks the line.
    """
    text = clean_token(token)
    if not text.strip():
        symbols = html.escape(text.translate(_VISIBLE_WS) or "∅")
        faded = f'<span style="opacity:0.6">{symbols}</span>'
        return faded + ("<br>" if "\n" in text else "")
    return html.escape(text).replace("\n", "↵<br>")


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(float(value), spec)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_true(value: Any) -> bool:
    return (
        value is not None and not (isinstance(value, float) and math.isnan(value)) and bool(value)
    )


# ---------------------------------------------------------------------------------------------
# Token view (HTML)


def example_tokens(token_weights: pd.DataFrame, example_id: str, step: int) -> pd.DataFrame:
    """One example's tokens at one snapshot, in answer order, with `nll_before` (NLL before
    unlearning) so the tooltip can show NLL before → after. The training loop stores that column
    itself; for tables without it, it is taken from the first snapshot (step 0)."""
    rows = token_weights[token_weights["example_id"] == example_id]
    if rows.empty:
        raise ValueError(f"example_id {example_id!r} is not in the token weights")
    steps = sorted(int(s) for s in rows["step"].unique())
    if step not in steps:
        raise ValueError(f"step {step!r} is not a snapshot of {example_id!r}; snapshots: {steps}")
    at = rows[rows["step"] == step].sort_values("position").reset_index(drop=True)
    if "nll_before" in at.columns:
        return at
    first = rows[rows["step"] == steps[0]][["position", "nll"]]
    first = first.rename(columns={"nll": "nll_before"})
    return at.merge(first, on="position", how="left")


def tokens_match_text(tokens_df: pd.DataFrame, text: str, min_share: float = 0.9) -> bool:
    """Whether the tokens' character offsets point at their own text inside `text`.

    Guards against showing a benchmark row next to tokens of a different answer (a runs folder
    paired with another benchmark that reuses the ids). A token matches when `text[start:end]`
    occurs in its decoded text (offsets may or may not cover a BPE token's leading space);
    tokens with empty offsets (end-of-answer markers) are ignored, and `min_share` tolerates
    byte-level tokens that split a character.
    """
    rows = tokens_df[tokens_df["char_end"] > tokens_df["char_start"]]
    if rows.empty:
        return False
    hits = [
        0 <= int(a) < int(b) <= len(text) and text[int(a) : int(b)] in clean_token(tok)
        for tok, a, b in zip(rows["token"], rows["char_start"], rows["char_end"], strict=True)
    ]
    return sum(hits) / len(hits) >= min_share


def token_legend_html(*, vmin: float = 0.0, vmax: float = 1.0, weight_label: str = "weight") -> str:
    """A colour bar for the weight and a sample of the ground-truth span outline."""
    stops = ", ".join(pcolors.sample_colorscale(COLORSCALE, [i / 8 for i in range(9)]))
    bar = (
        f'<span style="display:inline-block;width:140px;height:12px;vertical-align:middle;'
        f'background:linear-gradient(to right, {stops});border:1px solid #999"></span>'
    )
    outline = (
        f'<span style="outline:2px solid {SPAN_COLOR};padding:0 3px;border-radius:3px">'
        "outlined</span>"
    )
    return (
        '<div class="atwu-legend" style="font-size:0.85em;margin:4px 0 8px 0">'
        f"{html.escape(weight_label)} {_fmt(vmin, 'g')} {bar} {_fmt(vmax, 'g')}"
        f" &nbsp;·&nbsp; {outline} = ground-truth forget span"
        " &nbsp;·&nbsp; hover a token for its numbers</div>"
    )


def token_html(
    tokens_df: pd.DataFrame,
    *,
    weight_col: str = "weight",
    vmin: float = 0.0,
    vmax: float = 1.0,
    legend: bool = True,
) -> str:
    """One example as coloured token boxes (METHOD.md §4's view of per-token weights).

    Background = `weight_col` on COLORSCALE (clipped to [vmin, vmax]), text black or white for
    contrast; tokens with `in_span` true are outlined. The `title=` tooltip lists the weight, NLL
    before → after (columns `nll_before`, `nll` when present), span membership and `conflict`
    when present. Rows are drawn in `position` order when that column exists.
    """
    for col in ("token", weight_col):
        if col not in tokens_df.columns:
            raise ValueError(
                f"token_html needs a {col!r} column; got columns {list(tokens_df.columns)}"
            )
    df = tokens_df.sort_values("position") if "position" in tokens_df.columns else tokens_df
    parts = []
    for row in df.to_dict("records"):
        weight = row[weight_col]
        bg = weight_color(weight, vmin, vmax)
        in_span = _is_true(row.get("in_span"))
        tip = [f"{weight_col} {_fmt(weight, '.3f')}"]
        if "nll" in row:
            before = _fmt(row["nll_before"], ".2f") if "nll_before" in row else None
            after = _fmt(row["nll"], ".2f")
            tip.append(f"NLL {before} → {after}" if before is not None else f"NLL {after}")
        if "in_span" in row:
            tip.append(f"in forget span: {'yes' if in_span else 'no'}")
        if _is_number(row.get("conflict")):
            tip.append(f"retain conflict {_fmt(row['conflict'], '+.2f')}")
        style = (
            f"background:{bg};color:{text_color(bg)};white-space:pre-wrap;"
            "border-radius:3px;padding:1px 0;margin:0 1px;line-height:1.9"
        )
        if in_span:
            style += f";outline:2px solid {SPAN_COLOR};outline-offset:-1px"
        parts.append(
            f'<span class="atwu-tok" style="{style}" title="{html.escape(chr(10).join(tip))}">'
            f"{_token_inner_html(row['token'])}</span>"
        )
    body = (
        '<div class="atwu-tokens" style="font-family:ui-monospace,monospace;font-size:0.95em">'
        + "".join(parts)
        + "</div>"
    )
    return (
        token_legend_html(vmin=vmin, vmax=vmax, weight_label=weight_col) if legend else ""
    ) + body


def side_by_side(
    frames: Mapping[str, pd.DataFrame],
    *,
    weight_col: str = "weight",
    vmin: float = 0.0,
    vmax: float = 1.0,
) -> str:
    """Several methods' weights on the same example, one labelled row each, one shared legend."""
    if not frames:
        raise ValueError("side_by_side needs at least one labelled token table")
    rows = [
        (label, token_html(df, weight_col=weight_col, vmin=vmin, vmax=vmax, legend=False))
        for label, df in frames.items()
    ]
    return token_legend_html(vmin=vmin, vmax=vmax, weight_label=weight_col) + labelled_rows_html(
        rows
    )


def spans_html(text: str, spans: Sequence[Mapping[str, Any]]) -> str:
    """`text` escaped, with character spans (`{start, end, field}`) highlighted as <mark>."""
    marks = []
    for span in spans:
        start, end = int(span["start"]), int(span["end"])
        if not 0 <= start < end <= len(text):
            raise ValueError(
                f"span {dict(span)} does not fit inside a text of {len(text)} characters"
            )
        marks.append((start, end, str(span.get("field", ""))))
    out, pos = [], 0
    for start, end, field in sorted(marks):
        start = max(start, pos)  # overlapping spans: highlight the union once
        if start >= end:
            continue
        out.append(html.escape(text[pos:start]))
        title = f' title="{html.escape(field)}"' if field else ""
        out.append(
            # the margin keeps the surrounding spaces visible next to the 2px outline
            f'<mark style="background:#cdeffa;outline:2px solid {SPAN_COLOR};border-radius:3px;'
            f'margin:0 3px;padding:0 1px"{title}>{html.escape(text[start:end])}</mark>'
        )
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


def labelled_rows_html(rows: Sequence[tuple[str, str]]) -> str:
    """Rows of (label, body): the label is escaped here, the body must already be safe HTML
    (e.g. from `spans_html` or `token_html`)."""
    out = []
    for label, body in rows:
        out.append(
            '<div style="display:flex;gap:12px;align-items:baseline;margin:6px 0">'
            '<div style="min-width:11em;max-width:11em;font-weight:600;overflow-wrap:anywhere">'
            f"{html.escape(str(label))}</div>"
            f'<div style="flex:1;min-width:0;overflow-wrap:anywhere">{body}</div></div>'
        )
    return "".join(out)


def standalone_html(body: str, title: str) -> str:
    """A complete HTML document around `body` (already escaped HTML), for download."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:60em;margin:2em auto">'
        f"<h2>{html.escape(title)}</h2>{body}</body></html>\n"
    )


# ---------------------------------------------------------------------------------------------
# Plotly figures


def weights_heatmap(
    df: pd.DataFrame,
    step: int,
    *,
    weight_col: str = "weight",
    vmin: float = 0.0,
    vmax: float = 1.0,
) -> go.Figure:
    """Examples × answer positions at snapshot `step`; hover shows the token text.

    Ground-truth span tokens get an open cyan square (trace "ground-truth span") on top.
    """
    at = df[df["step"] == step]
    if at.empty:
        steps = sorted(int(s) for s in df["step"].unique())
        raise ValueError(f"no token weights at step {step}; snapshots: {steps}")
    weights = at.pivot(index="example_id", columns="position", values=weight_col)  # (E, T)
    tokens = at.pivot(index="example_id", columns="position", values="token")  # (E, T)
    tokens = tokens.map(lambda t: html.escape(visible_token(t)) if isinstance(t, str) else "")
    fig = go.Figure(
        go.Heatmap(
            z=weights.to_numpy(dtype=float),
            x=list(weights.columns),
            y=list(weights.index),
            customdata=tokens.to_numpy(),
            colorscale=COLORSCALE,
            zmin=vmin,
            zmax=vmax,
            colorbar={"title": {"text": weight_col}},
            hovertemplate="%{y} · position %{x}<br>token %{customdata}<br>"
            f"{weight_col} %{{z:.3f}}<extra></extra>",
            name=weight_col,
        )
    )
    span = at[at["in_span"].astype(bool)]
    fig.add_trace(
        go.Scatter(
            x=span["position"],
            y=span["example_id"],
            mode="markers",
            marker={"symbol": "square-open", "size": 9, "color": SPAN_COLOR, "line": {"width": 2}},
            name="ground-truth span",
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title=f"Token weights of every probe example at step {step}",
        xaxis_title="token position in the answer",
        yaxis_title="example",
        yaxis={"autorange": "reversed", "type": "category"},
        height=max(260, 34 * len(weights) + 140),
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def _line_width(name: Any, highlight: Collection[str]) -> float:
    return HIGHLIGHT_WIDTH if str(name) in highlight else LINE_WIDTH


def _clean_scores(df: pd.DataFrame, score_col: str, label_col: str) -> pd.DataFrame:
    """Tokens in the loss with a finite score; labels as bool (METHOD.md §4 pools answer tokens)."""
    for col in (score_col, label_col):
        if col not in df.columns:
            raise ValueError(f"column {col!r} is missing; got {list(df.columns)}")
    if "in_loss" in df.columns:
        df = df[df["in_loss"].astype(bool)]
    df = df[pd.to_numeric(df[score_col], errors="coerce").notna()]
    return df.assign(**{label_col: df[label_col].astype(bool)})


def alignment_curves(
    frames: Mapping[str, pd.DataFrame],
    *,
    score_col: str = "weight",
    label_col: str = "in_span",
    highlight: Collection[str] = (),
) -> go.Figure:
    """ROC and precision–recall curves of per-token scores against span labels, one per label.

    `frames` maps a name (method or run) to the tokens to pool (usually one snapshot). Trace names
    carry the AUROC (left) and average precision (right); a name whose tokens hold one class only
    gets no curve and a note in the title. Names in `highlight` get thicker lines.
    """
    # lazy: sklearn takes ~1.4 s to import, the dashboard must start without it
    from sklearn.metrics import precision_recall_curve, roc_curve

    from atwu_core.metrics import span_alignment

    fig = make_subplots(rows=1, cols=2, subplot_titles=("ROC", "Precision–recall"))
    palette = pcolors.qualitative.D3
    skipped = []
    for i, (name, df) in enumerate(frames.items()):
        tokens = _clean_scores(df, score_col, label_col)
        y, s = tokens[label_col].to_numpy(), tokens[score_col].to_numpy(dtype=float)
        if len(set(y.tolist())) < 2:
            skipped.append(str(name))
            continue
        color = palette[i % len(palette)]
        pooled = span_alignment(s, y, tokens["example_id"])["pooled"]
        fpr, tpr, _ = roc_curve(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        line = {"color": color, "width": _line_width(name, highlight)}
        common = {"mode": "lines", "line": line, "legendgroup": str(name)}
        fig.add_trace(
            go.Scatter(x=fpr, y=tpr, name=f"{name} (AUROC {pooled['auroc']:.3f})", **common),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=recall,
                y=precision,
                name=f"{name} (AP {pooled['ap']:.3f})",
                line_shape="hv",
                **common,
            ),
            row=1,
            col=2,
        )
    fig.add_trace(
        go.Scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            name="chance",
            line={"dash": "dot", "color": "grey"},
        ),
        row=1,
        col=1,
    )
    fig.update_xaxes(title_text="false positive rate", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="true positive rate", range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title_text="recall", range=[0, 1], row=1, col=2)
    fig.update_yaxes(title_text="precision", range=[0, 1.02], row=1, col=2)
    title = "Do the weights find the ground-truth forget spans?"
    if skipped:
        title += f" (no curve, one class only: {', '.join(skipped)})"
    fig.update_layout(title=title, height=430, legend={"orientation": "h", "y": -0.2})
    return fig


ALIGNMENT_COLUMNS = (
    "name",
    "step",
    "auroc",
    "ap",
    "precision_at_k",
    "mass_in_span",
    "n_tokens",
    "n_in_span",
)


def alignment_table(
    frames: Mapping[str, pd.DataFrame], *, score_col: str = "weight", label_col: str = "in_span"
) -> pd.DataFrame:
    """Pooled span alignment per name and snapshot step (METHOD.md §4).

    The numbers are `atwu_core.metrics.span_alignment`'s pooled AUROC, average precision,
    precision@k and weight mass inside spans; they are NaN for a snapshot whose tokens hold one
    class only (alignment is undefined there). Columns: `ALIGNMENT_COLUMNS`.
    """
    from atwu_core.metrics import span_alignment  # lazy: it imports sklearn and scipy

    rows = []
    for name, df in frames.items():
        tokens = _clean_scores(df, score_col, label_col)
        for step, at in tokens.groupby("step", sort=True):
            labels = at[label_col].to_numpy()
            row = {"name": str(name), "step": int(step), "n_tokens": len(at)}
            row["n_in_span"] = int(labels.sum())
            if 0 < row["n_in_span"] < len(at):
                pooled = span_alignment(at[score_col].to_numpy(float), labels, at["example_id"])
                row.update({k: math.nan if v is None else v for k, v in pooled["pooled"].items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=list(ALIGNMENT_COLUMNS))


def alignment_over_steps(
    table: pd.DataFrame, metric: str = "auroc", *, highlight: Collection[str] = ()
) -> go.Figure:
    """`metric` of `alignment_table` rows against the snapshot step, one trace per name (names in
    `highlight` thicker)."""
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the alignment table")
    fig = go.Figure()
    for name, rows in table.groupby("name", sort=False):
        rows = rows.sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=rows["step"],
                y=rows[metric],
                mode="lines+markers",
                name=str(name),
                line={"width": _line_width(name, highlight)},
            )
        )
    if metric == "auroc":
        fig.add_hline(y=0.5, line_dash="dot", line_color="grey", annotation_text="chance")
    fig.update_layout(
        title=f"Span alignment ({metric.upper()}) over training",
        xaxis_title="training step",
        yaxis_title=metric.upper(),
        yaxis_range=[0, 1.02],
        height=380,
    )
    return fig


def weight_distributions(
    frames: Mapping[str, pd.DataFrame], *, weight_col: str = "weight", label_col: str = "in_span"
) -> go.Figure:
    """Grouped box plots per name: weights of tokens inside ground-truth spans vs outside.

    A method that separates forget-specific tokens puts the "in forget span" box high and the
    "outside spans" box low. Boxes, not violins: a constant weight (grad_diff, the oracle mask)
    still draws a visible line, and 8 probe examples give too few tokens for a density.
    """
    names, inside, outside = [], [], []
    for name, df in frames.items():
        tokens = _clean_scores(df, weight_col, label_col)
        names.append(str(name))
        inside.append(tokens.loc[tokens[label_col], weight_col].astype(float))
        outside.append(tokens.loc[~tokens[label_col], weight_col].astype(float))
    fig = go.Figure()
    for label, series, color in (
        ("in forget span", inside, SPAN_COLOR),
        ("outside spans", outside, "#9e2f7f"),
    ):
        fig.add_trace(
            go.Box(
                x=[n for n, s in zip(names, series, strict=True) for _ in range(len(s))],
                y=pd.concat(series, ignore_index=True) if series else [],
                name=label,
                marker_color=color,
                boxmean=True,
                boxpoints=False,
            )
        )
    values = pd.concat([*inside, *outside], ignore_index=True)
    # Weights live in [0, 1] for most methods (2·g for plug-ins): show that range at least, so a
    # constant weight is not drawn on an axis plotly pads to [-0.5, 1.5].
    lo = min(0.0, float(values.min())) if len(values) else 0.0
    hi = max(1.0, float(values.max())) if len(values) else 1.0
    fig.update_layout(
        title="Weights inside vs outside the ground-truth spans",
        boxmode="group",
        xaxis_title="method / run",
        yaxis_title=weight_col,
        yaxis_range=[lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo)],
        height=400,
    )
    return fig


def metric_keys(metrics_by_run: Mapping[str, pd.DataFrame]) -> list[str]:
    """Numeric metric columns of any run; bookkeeping columns (step, epoch, time_s) left out."""
    keys: set[str] = set()
    for df in metrics_by_run.values():
        numeric = df.select_dtypes("number").columns
        keys.update(c for c in numeric if c not in ("step", "epoch", "time_s"))
    return sorted(keys)


def training_curves(
    metrics_by_run: Mapping[str, pd.DataFrame],
    metric: str,
    *,
    x: str = "step",
    highlight: Collection[str] = (),
) -> go.Figure:
    """One line per run (named by its label) of `metric` against `x` from metrics.jsonl; runs
    named in `highlight` get thicker lines."""
    fig = go.Figure()
    for name, df in metrics_by_run.items():
        if metric not in df.columns or x not in df.columns:
            continue
        rows = df[[x, metric]].apply(pd.to_numeric, errors="coerce").dropna()
        fig.add_trace(
            go.Scatter(
                x=rows[x],
                y=rows[metric],
                mode="lines",
                name=str(name),
                line={"width": _line_width(name, highlight)},
            )
        )
    fig.update_layout(
        title=f"{metric} during unlearning",
        showlegend=True,  # name the run even when it is the only one
        xaxis_title=x,
        yaxis_title=metric,
        yaxis_type="log" if metric in PVALUE_METRICS else "linear",
        yaxis_dtick=1 if metric in PVALUE_METRICS else None,
        height=400,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def pareto_front(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """Boolean mask of rows not dominated when maximising both `x` and `y`.

    Row i is dominated when some row j has x_j ≥ x_i and y_j ≥ y_i with at least one strict.
    Rows with a missing x or y are never on the front.
    """
    for col in (x, y):
        if col not in df.columns:
            raise ValueError(f"column {col!r} is missing; got {list(df.columns)}")
    xs = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float)  # (N,)
    ys = pd.to_numeric(df[y], errors="coerce").to_numpy(dtype=float)  # (N,)
    on_front = []
    for i in range(len(df)):
        if math.isnan(xs[i]) or math.isnan(ys[i]):
            on_front.append(False)
            continue
        dominated = any(
            xs[j] >= xs[i] and ys[j] >= ys[i] and (xs[j] > xs[i] or ys[j] > ys[i])
            for j in range(len(df))
            if j != i and not (math.isnan(xs[j]) or math.isnan(ys[j]))
        )
        on_front.append(not dominated)
    # dtype=bool: an empty object Series would index columns, not rows, in `df[mask]`.
    return pd.Series(on_front, index=df.index, name="pareto", dtype=bool)


def tradeoff_scatter(
    leaderboard_df: pd.DataFrame,
    x: str = "model_utility",
    y: str = "forget_quality",
    *,
    label: str = "run_id",
    color: str = "method",
) -> go.Figure:
    """Each run as a point (one trace per `color` value), the Pareto front as a line.

    Up and right is better on both default axes. Forget quality is a KS-test p-value
    (METHOD.md §3), so its axis is logarithmic.
    """
    for col in (x, y, label):
        if col not in leaderboard_df.columns:
            raise ValueError(f"column {col!r} is missing; got {list(leaderboard_df.columns)}")
    df = leaderboard_df.copy()
    df[x] = pd.to_numeric(df[x], errors="coerce")
    df[y] = pd.to_numeric(df[y], errors="coerce")
    df = df.dropna(subset=[x, y])
    groups = df.groupby(color, sort=True) if color in df.columns else [("runs", df)]
    fig = go.Figure()
    for name, rows in groups:
        fig.add_trace(
            go.Scatter(
                x=rows[x],
                y=rows[y],
                mode="markers",
                name=str(name),
                text=rows[label].astype(str).map(html.escape),
                marker={"size": 11},
                hovertemplate=f"%{{text}}<br>{x} %{{x:.3g}}<br>{y} %{{y:.3g}}<extra></extra>",
            )
        )
    front = df[pareto_front(df, x, y)].sort_values(x)
    fig.add_trace(
        go.Scatter(
            x=front[x],
            y=front[y],
            mode="lines+markers",
            name="Pareto front",
            line={"dash": "dash", "color": "black"},
            marker={"symbol": "circle-open", "size": 17, "color": "black"},
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title=f"Trade-off: {y} vs {x} (up and right is better)",
        xaxis_title=x,
        yaxis_title=y + (" (log scale)" if y in PVALUE_METRICS else ""),
        xaxis_type="log" if x in PVALUE_METRICS else "linear",
        yaxis_type="log" if y in PVALUE_METRICS else "linear",
        # one tick per decade on log axes: the default labels every 2..9 and turns to clutter
        xaxis_dtick=1 if x in PVALUE_METRICS else None,
        yaxis_dtick=1 if y in PVALUE_METRICS else None,
        height=450,
    )
    return fig
