"""Pure figure builders: data in, plotly figure or escaped HTML out (CircuitsVis style).

Nothing here reads files or holds state; the dashboard passes DataFrames from `atwu_core.runs`.
Inputs follow docs/FORMATS.md (`token_weights.parquet` columns: step, example_id, position, token,
weight, nll, in_span, in_loss, optional conflict). The token view shows METHOD.md §1's learned
weights g_t (or any method's implicit weight, §2) against the ground-truth spans of §4.

Every piece of token or benchmark text that ends up in HTML goes through `html.escape`.
No torch: the dashboard imports this module at start-up. sklearn and
`atwu_core.evaluation.metrics` (~1.4 s to import) are imported only by the alignment builders
that need them.
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

from atwu_core.evaluation.study_stats import short_label

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
    The name is the method (`atwu`), with its scorer `variant` when the row has one ("atwu · prev,
    ue1, λ₂=0.01", `runs.variant`), ` (tuned)` for a run whose row says `tuned` (an
    `atwu tune` study's best config); ` s{seed}` joins it only when several runs share the
    method; ` #n` (oldest first) only when names still collide, e.g. two ATWU runs of seed 0 with
    different hyperparameters. A reference run of method `full` / `retain` reads
    "full model (before)" / "retain model (target)". Raises ValueError on a repeated key.
    """
    keys = [str(r["key"]) for r in rows]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"run_labels: key(s) {dupes} appear more than once")
    methods = [
        short_label(f"{r.get('method') or '?'}[{r['variant']}]")
        if r.get("variant") and isinstance(r["variant"], str)
        else str(r.get("method") or "?")
        for r in rows
    ]
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
        if r.get("tuned") and not r.get("reference"):
            base[-1] += " (tuned)"
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
# One colour per method


# Every figure, legend and token-view row colours a method from this table, so a method keeps its
# colour whatever else is plotted and whenever a run is added. Okabe–Ito and Paul Tol colours
# (colour-blind safe); ATWU vermillion and thick, its plug-ins in other warm tones, dashed;
# controls and reference models in greys with dashes or open symbols. Dict order = legend order.
METHOD_STYLES: dict[str, dict[str, Any]] = {
    "atwu": {"color": "#D55E00", "dash": "solid", "symbol": "circle", "kind": "atwu"},
    "atwu_npo": {"color": "#E69F00", "dash": "dash", "symbol": "diamond", "kind": "atwu"},
    "atwu_simnpo": {"color": "#EE3377", "dash": "dash", "symbol": "diamond", "kind": "atwu"},
    "atwu_wga": {"color": "#882255", "dash": "dash", "symbol": "diamond", "kind": "atwu"},
    "wga": {"color": "#0072B2", "dash": "solid", "symbol": "square", "kind": "method"},
    "satimp": {"color": "#009E73", "dash": "solid", "symbol": "square", "kind": "method"},
    "seul": {"color": "#CC79A7", "dash": "solid", "symbol": "square", "kind": "method"},
    "etw": {"color": "#AA3377", "dash": "solid", "symbol": "square", "kind": "method"},
    "token_unlearn": {"color": "#66CCEE", "dash": "solid", "symbol": "square", "kind": "method"},
    "npo": {"color": "#56B4E9", "dash": "solid", "symbol": "triangle-up", "kind": "method"},
    "simnpo": {"color": "#44AA99", "dash": "solid", "symbol": "triangle-up", "kind": "method"},
    "tnpo": {"color": "#117733", "dash": "solid", "symbol": "triangle-up", "kind": "method"},
    "grad_diff": {"color": "#332288", "dash": "solid", "symbol": "triangle-down", "kind": "method"},
    "grad_ascent": {
        "color": "#999933",
        "dash": "solid",
        "symbol": "triangle-down",
        "kind": "method",
    },
    "idk_dpo": {"color": "#DDAA33", "dash": "solid", "symbol": "pentagon", "kind": "method"},
    "rmu": {"color": "#661100", "dash": "solid", "symbol": "hexagon", "kind": "method"},
    "undial": {"color": "#6699CC", "dash": "solid", "symbol": "hexagon", "kind": "method"},
    "atwu_frozen": {"color": "#555555", "dash": "dash", "symbol": "circle-open", "kind": "control"},
    "oracle_saturated": {"color": "#000000", "dash": "dot", "symbol": "star", "kind": "control"},
    "oracle_mask": {
        "color": "#888888",
        "dash": "dashdot",
        "symbol": "star-open",
        "kind": "control",
    },
    "full": {"color": "#AAAAAA", "dash": "longdash", "symbol": "x", "kind": "reference"},
    "retain": {"color": "#666666", "dash": "longdash", "symbol": "cross", "kind": "reference"},
}
# Methods not in the table: a colour picked from the method's name (a hash, not its position).
_SPARE_COLORS = ("#BB5566", "#004488", "#DDCC77", "#AA4499", "#88CCEE", "#44BB99", "#EEDD88")
_KIND_RANK = {"atwu": 0, "method": 1, "control": 2, "reference": 3, "score": 4}
# Score-only references of the alignment ranking (eval.json `span/ref/<name>/auroc`).
SCORE_REFERENCES = {
    "nll": "ℓ_t, NLL now (score only)",
    "nll_rise": "NLL rise (score only)",
    "retain_nll": "retain-model NLL (score only)",
}
SCORE_REFERENCE_COLOR = "#BBBBBB"
VARIANT_SYMBOL = {"circle": "diamond", "square": "square-open", "diamond": "diamond-open"}


def method_style(method: str) -> dict[str, Any]:
    """{color, dash, symbol, kind, width, rank} of a method, the same in every figure.

    `kind` is "atwu" (ATWU and its plug-ins), "method", "control" or "reference"; `rank` orders
    legends (ATWU first, then the table's order, unknown methods by name, then controls).
    """
    method = str(method)
    base, bracket, _ = method.partition("[")
    if bracket and base in METHOD_STYLES:
        # a variant (`atwu[scorer_position=prev]`, a study row): its method's colour, an open
        # marker, right after its method in legends
        style = method_style(base)
        style["symbol"] = VARIANT_SYMBOL.get(style["symbol"], style["symbol"])
        style["width"] = LINE_WIDTH
        style["rank"] += 0.5
        return style
    if method in METHOD_STYLES:
        style = dict(METHOD_STYLES[method])
        order = list(METHOD_STYLES).index(method)
    else:
        import zlib

        color = _SPARE_COLORS[zlib.crc32(method.encode()) % len(_SPARE_COLORS)]
        style = {"color": color, "dash": "solid", "symbol": "circle", "kind": "method"}
        order = len(METHOD_STYLES)
    style["width"] = HIGHLIGHT_WIDTH if method == "atwu" else LINE_WIDTH
    style["rank"] = _KIND_RANK[style["kind"]] * 1000 + order
    return style


def method_sort_key(method: str) -> tuple[int, str]:
    """Sort key putting methods in legend order (`method_style`'s rank, then name)."""
    return method_style(method)["rank"], str(method)


def method_of_name(name: str, method_of: Mapping[str, str] | None = None) -> str:
    """The method of a run label: `method_of[name]`, else the label's first word ("atwu s1")."""
    if method_of and name in method_of:
        return str(method_of[name])
    return str(name).split(" ")[0]


def swatch_html(method: str) -> str:
    """A small square in the method's colour (token-view row labels, tables)."""
    color = method_style(method)["color"]
    return (
        f'<span style="display:inline-block;width:0.8em;height:0.8em;background:{color};'
        'border-radius:2px;margin-right:6px;vertical-align:baseline"></span>'
    )


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


# Colour scales of the token view: absolute 0-1, per-row normalised, or diverging around 0.5.
SCALES = {
    "absolute": "absolute 0–1",
    "row": "per row (each row's min → max)",
    "diverging": "diverging around 0.5",
}
DIVERGING = pcolors.make_colorscale(pcolors.diverging.PuOr)  # orange < 0.5 < purple
SHARED_COLOR = "#E69F00"  # dashed orange outline: a value other authors share (not a fact)
TOKEN_CSS = (
    "<style>"
    ".atwu-tok{position:relative;cursor:help}"
    ".atwu-tok .atwu-card{display:none;position:absolute;left:0;top:calc(100% + 4px);"
    "z-index:1000;background:#1b1f2a;color:#fff;font:600 16px/1.5 system-ui,sans-serif;"
    "padding:8px 12px;border-radius:6px;white-space:nowrap;box-shadow:0 4px 16px #0006;"
    "pointer-events:none;text-align:left}"
    ".atwu-tok .atwu-card b{color:#ffd27f}"
    ".atwu-tok:hover .atwu-card{display:block}"
    ".atwu-tok:hover{box-shadow:0 0 0 2px #1b1f2a}"
    "</style>"
)


def _colorscale(scale: str) -> list:
    return DIVERGING if scale == "diverging" else COLORSCALE


def scale_range(
    weights: Sequence[float], scale: str = "absolute", *, spread: float | None = None
) -> tuple[float, float]:
    """(vmin, vmax) of a colour scale for these weights.

    "absolute": 0–1. "row": the weights' own min–max (a constant row gets ±0.05 around it).
    "diverging": 0.5 ± the largest distance from 0.5 (or ± `spread`), at least ± 0.05, so a
    weight of exactly 0.5 is always the neutral middle colour.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}, not {scale!r}")
    finite = [float(w) for w in weights if w is not None and math.isfinite(float(w))]
    if scale == "absolute" or not finite:
        return 0.0, 1.0
    if scale == "row":
        lo, hi = min(finite), max(finite)
        return (lo, hi) if hi - lo > 1e-9 else (lo - 0.05, hi + 0.05)
    half = spread if spread is not None else max(abs(w - 0.5) for w in finite)
    half = max(half, 0.05)
    return 0.5 - half, 0.5 + half


def weight_color_on(weight: float, vmin: float, vmax: float, scale: str = "absolute") -> str:
    """`weight_color` on the scale's colorscale (Magma, or orange–white–purple if diverging)."""
    if scale != "diverging":
        return weight_color(weight, vmin, vmax)
    if weight is None or not math.isfinite(float(weight)):
        return MISSING_COLOR
    t = min(max((float(weight) - vmin) / (vmax - vmin), 0.0), 1.0)
    return pcolors.sample_colorscale(DIVERGING, [t])[0]


def token_legend_html(
    *,
    vmin: float = 0.0,
    vmax: float = 1.0,
    weight_label: str = "weight",
    scale: str = "absolute",
    shared: bool = False,
    spans: bool = True,
) -> str:
    """A colour bar naming the scale in use, the span outline (unless `spans=False`: text with
    no ground truth), and the shared-value outline."""
    stops = ", ".join(pcolors.sample_colorscale(_colorscale(scale), [i / 8 for i in range(9)]))
    bar = (
        f'<span style="display:inline-block;width:140px;height:12px;vertical-align:middle;'
        f'background:linear-gradient(to right, {stops});border:1px solid #999"></span>'
    )
    outline = (
        f'<span style="outline:2px solid {SPAN_COLOR};padding:0 3px;border-radius:3px">'
        "outlined</span>"
    )
    ends = (
        "each row's lowest → highest"
        if scale == "row"
        else f"{_fmt(vmin, '.2f')} {bar} {_fmt(vmax, '.2f')}"
    )
    if scale == "row":
        ends = f"{bar} ({ends})"
    extra = ""
    if shared:
        extra = (
            f' &nbsp;·&nbsp; <span style="outline:2px dashed {SHARED_COLOR};padding:0 3px;'
            'border-radius:3px">dashed</span> = a value other authors share too'
        )
    return (
        '<div class="atwu-legend" style="font-size:0.9em;margin:4px 0 8px 0">'
        f"<b>Colour scale: {html.escape(SCALES.get(scale, scale))}</b> · "
        f"{html.escape(weight_label)} {ends}"
        + (f" &nbsp;·&nbsp; {outline} = ground-truth fact span" if spans else "")
        + f"{extra}"
        " &nbsp;·&nbsp; hover a token for its numbers</div>"
    )


def _card_html(lines: Sequence[tuple[str, str]]) -> str:
    """The hover card: (label, value) lines, both escaped here."""
    body = "<br>".join(f"{html.escape(k)} <b>{html.escape(v)}</b>" for k, v in lines)
    return f'<span class="atwu-card">{body}</span>'


def token_html(
    tokens_df: pd.DataFrame,
    *,
    weight_col: str = "weight",
    vmin: float = 0.0,
    vmax: float = 1.0,
    legend: bool = True,
    scale: str = "absolute",
    shared: Collection[int] = (),
    spans: bool = True,
) -> str:
    """One example as coloured token boxes (METHOD.md §4's view of per-token weights).

    Background = `weight_col` on the scale's colours (clipped to [vmin, vmax]), text black or
    white for contrast; tokens with `in_span` true are outlined (unless `spans=False`), positions
    in `shared` get a dashed outline (values other authors share). Each token carries a hover
    card (and the same text as `aria-label`): the weight, NLL before → now (columns
    `nll_before`, `nll`), the fact field (`span_field`) or span membership, and `conflict`.
    """
    for col in ("token", weight_col):
        if col not in tokens_df.columns:
            raise ValueError(
                f"token_html needs a {col!r} column; got columns {list(tokens_df.columns)}"
            )
    df = tokens_df.sort_values("position") if "position" in tokens_df.columns else tokens_df
    shared = set(shared)
    parts = []
    for i, row in enumerate(df.to_dict("records")):
        weight = row[weight_col]
        bg = weight_color_on(weight, vmin, vmax, scale)
        in_span = spans and _is_true(row.get("in_span"))
        is_shared = row.get("position", i) in shared
        card = [("token", visible_token(row["token"])), (weight_col, _fmt(weight, ".3f"))]
        if "nll" in row:
            before = _fmt(row["nll_before"], ".2f") if "nll_before" in row else None
            after = _fmt(row["nll"], ".2f")
            card.append(("NLL before → now", f"{before} → {after}") if before else ("NLL", after))
        if "in_span" in row:
            field = str(row.get("span_field") or "")
            if is_shared:
                card.append(
                    ("shared value", (field + ": " if field else "") + "others have it too")
                )
            elif _is_true(row.get("in_span")):
                card.append(("fact", field or "yes"))
            else:
                card.append(("fact", "no"))
        if _is_number(row.get("conflict")):
            card.append(("retain conflict", _fmt(row["conflict"], "+.2f")))
        tip = "\n".join(f"{k} {v}" for k, v in card[1:])
        style = (
            f"background:{bg};color:{text_color(bg)};white-space:pre-wrap;"
            "border-radius:3px;padding:1px 0;margin:0 1px;line-height:1.9"
        )
        if is_shared:
            style += f";outline:3px dashed {SHARED_COLOR};outline-offset:-1px"
        elif in_span:
            style += f";outline:2px solid {SPAN_COLOR};outline-offset:-1px"
        parts.append(
            f'<span class="atwu-tok" style="{style}" aria-label="{html.escape(tip)}">'
            f"{_token_inner_html(row['token'])}{_card_html(card)}</span>"
        )
    body = (
        '<div class="atwu-tokens" style="font-family:ui-monospace,monospace;font-size:1.05em">'
        + "".join(parts)
        + "</div>"
    )
    head = (
        TOKEN_CSS
        + token_legend_html(
            vmin=vmin,
            vmax=vmax,
            weight_label=weight_col,
            scale=scale,
            shared=bool(shared),
            spans=spans,
        )
        if legend
        else ""
    )
    return head + body


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
    return (
        TOKEN_CSS
        + token_legend_html(vmin=vmin, vmax=vmax, weight_label=weight_col)
        + labelled_rows_html(rows)
    )


def extreme_tokens_html(tokens_df: pd.DataFrame, k: int = 5, *, weight_col: str = "weight") -> str:
    """The k tokens with the highest and the k with the lowest weight, as escaped HTML lines
    ("the tokens the scorer would forget" / "would leave alone")."""
    df = tokens_df[pd.to_numeric(tokens_df[weight_col], errors="coerce").notna()]
    ranked = df.sort_values(weight_col, ascending=False, kind="stable")
    k = min(k, len(ranked))

    def items(rows: pd.DataFrame) -> str:
        return ", ".join(
            f"<code>{html.escape(visible_token(t))}</code> {float(w):.2f}"
            for t, w in zip(rows["token"], rows[weight_col], strict=True)
        )

    return (
        '<div class="atwu-extremes" style="margin:6px 0">'
        f"<b>Pushed on hardest:</b> {items(ranked.head(k))}<br>"
        f"<b>Left alone most:</b> {items(ranked.tail(k).iloc[::-1])}</div>"
    )


def example_auroc(tokens_df: pd.DataFrame, *, score_col: str = "weight") -> float | None:
    """AUROC of one example's token scores against `in_span` (tokens in the loss only): the
    chance a fact token outranks a non-fact token, ties counted half (Mann–Whitney, no sklearn).
    None when the example holds one class only or no finite score."""
    df = tokens_df
    if "in_loss" in df.columns:
        df = df[df["in_loss"].astype(bool)]
    scores = pd.to_numeric(df[score_col], errors="coerce")
    keep = scores.notna()
    scores, labels = scores[keep], df.loc[keep, "in_span"].astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = scores.rank(method="average")
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def nearest_snapshot(steps: Collection[int], step: int) -> int:
    """The latest of `steps` at or before `step` (the first snapshot when all are later)."""
    if not steps:
        raise ValueError("no snapshots")
    earlier = [s for s in steps if s <= step]
    return max(earlier) if earlier else min(steps)


def shared_positions(tokens_df: pd.DataFrame, spans: Sequence[Mapping[str, Any]]) -> set[int]:
    """Token positions whose characters overlap any of `spans` ({start, end}: the benchmark's
    `shared_spans`, values other authors share, e.g. a birth year; they may be fact spans too)."""
    out = set()
    for row in tokens_df.to_dict("records"):
        a, b = int(row["char_start"]), int(row["char_end"])
        if b <= a:
            continue
        if any(a < int(s["end"]) and int(s["start"]) < b for s in spans):
            out.add(int(row["position"]))
    return out


def comparison_html(
    rows: Sequence[Mapping[str, Any]],
    truth: pd.DataFrame,
    *,
    scale: str = "absolute",
    shared: Collection[int] = (),
) -> str:
    """The token view's first screen: one example under several methods, then the ground truth.

    Each row is a mapping with `label` (run name), `method`, `tokens` (that run's tokens at the
    shown snapshot), `note` (e.g. "step 50" or "step 45: nearest earlier snapshot") and `auroc`
    (its per-example span AUROC, or None). The row label carries the method's colour swatch
    (`method_style`). `truth` is the example's tokens; its row is coloured by the span mask (1 =
    fact), with `shared` positions dashed. `scale` is one of `SCALES`: "row" normalises each row
    on its own, "diverging" centres every row on 0.5 with one common spread.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {list(SCALES)}, not {scale!r}")
    all_weights = [float(w) for r in rows for w in r["tokens"]["weight"]]
    # one range for every row (absolute, diverging); "row" replaces it row by row
    vmin, vmax = scale_range(all_weights, "absolute" if scale == "row" else scale)
    out = []
    for r in rows:
        weights = list(r["tokens"]["weight"])
        lo, hi = scale_range(weights, "row") if scale == "row" else (vmin, vmax)
        auroc = r.get("auroc")
        stats = f"span AUROC {auroc:.2f}" if auroc is not None else "span AUROC n/a"
        label = (
            f'<div class="atwu-row-label" data-method="{html.escape(str(r["method"]))}">'
            f"{swatch_html(str(r['method']))}<b>{html.escape(str(r['label']))}</b><br>"
            f'<span style="font-size:0.85em;color:#555">{html.escape(str(r.get("note", "")))}'
            f" · {stats}</span></div>"
        )
        body = token_html(r["tokens"], vmin=lo, vmax=hi, legend=False, scale=scale, shared=shared)
        out.append((label, body))
    mask = truth.assign(weight=truth["in_span"].astype(float))
    truth_body = token_html(mask, legend=False, shared=shared)
    truth_label = (
        '<div class="atwu-row-label" data-method="ground-truth"><b>ground truth</b><br>'
        '<span style="font-size:0.85em;color:#555">dark = fact to forget'
        + (" · dashed = shared value" if shared else "")
        + "</span></div>"
    )
    out.append((truth_label, truth_body))
    legend = token_legend_html(vmin=vmin, vmax=vmax, scale=scale, shared=bool(shared))
    return TOKEN_CSS + legend + _html_rows(out, "atwu-compare")


def _html_rows(rows: Sequence[tuple[str, str]], cls: str) -> str:
    """Rows of (label HTML, body HTML), both already safe HTML."""
    parts = [
        '<div class="atwu-row" style="display:flex;gap:14px;align-items:center;margin:2px 0;'
        'padding:3px 0;border-bottom:1px solid #eee">'
        f'<div style="min-width:12em;max-width:12em;overflow-wrap:anywhere">{label}</div>'
        f'<div style="flex:1;min-width:0;overflow-wrap:anywhere">{body}</div></div>'
        for label, body in rows
    ]
    return f'<div class="{cls}">' + "".join(parts) + "</div>"


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


LEAK_COLOR = "#D55E00"  # a fact of the true answer that survives in a generation


def is_degenerate(text: str, *, n: int = 2, repeats: int = 3) -> bool:
    """Degenerate repetition: some n-gram of words (n = 1 and `n`) occurs `repeats` or more
    times in a row, e.g. "contex contex contex" or "the the the"."""
    words = str(text).lower().split()
    for size in {1, n}:
        for start in range(len(words) - size * repeats + 1):
            gram = words[start : start + size]
            if all(
                words[start + k * size : start + (k + 1) * size] == gram for k in range(repeats)
            ):
                return True
    return False


def generation_html(prediction: str, facts: Sequence[str]) -> str:
    """A model's answer, escaped, with every fact of the true answer that it still states
    (case-insensitive, facts of 2+ characters) marked, and a badge when it degenerates into
    repetition (`is_degenerate`)."""
    text = str(prediction)
    lower = text.lower()
    marks = []
    for fact in {f.strip() for f in facts if len(f.strip()) >= 2}:
        start = lower.find(fact.lower())
        while start >= 0:
            marks.append((start, start + len(fact)))
            start = lower.find(fact.lower(), start + 1)
    out, pos = [], 0
    for start, end in sorted(marks):
        start = max(start, pos)
        if start >= end:
            continue
        out.append(html.escape(text[pos:start]))
        out.append(
            f'<mark class="atwu-leak" title="a fact of the true answer: not forgotten" '
            f'style="background:#fde0cc;outline:2px solid {LEAK_COLOR};border-radius:3px;'
            f'padding:0 1px">{html.escape(text[start:end])}</mark>'
        )
        pos = end
    out.append(html.escape(text[pos:]))
    body = "".join(out)
    if is_degenerate(text):
        body += (
            ' <span class="atwu-degenerate" style="background:#444;color:#fff;border-radius:3px;'
            'padding:0 5px;font-size:0.8em">repetition: degenerate output</span>'
        )
    return body


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


def _line(name: Any, highlight: Collection[str], method_of: Mapping[str, str] | None) -> dict:
    """Plotly line of a run: its method's colour and dash (`method_style`), thick if highlighted."""
    style = method_style(method_of_name(str(name), method_of))
    return {"color": style["color"], "dash": style["dash"], "width": _line_width(name, highlight)}


def _in_legend_order(
    frames: Mapping[str, Any], method_of: Mapping[str, str] | None
) -> list[tuple[str, Any]]:
    return sorted(
        frames.items(), key=lambda kv: method_sort_key(method_of_name(str(kv[0]), method_of))
    )


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
    method_of: Mapping[str, str] | None = None,
) -> go.Figure:
    """ROC and precision–recall curves of per-token scores against span labels, one per label.

    `frames` maps a name (method or run) to the tokens to pool (usually one snapshot). Trace names
    carry the AUROC (left) and average precision (right); a name whose tokens hold one class only
    gets no curve and a note in the title. Names in `highlight` get thicker lines.
    """
    # lazy: sklearn takes ~1.4 s to import, the dashboard must start without it
    from sklearn.metrics import precision_recall_curve, roc_curve

    from atwu_core.evaluation.metrics import alignment_if_defined

    fig = make_subplots(rows=1, cols=2, subplot_titles=("ROC", "Precision–recall"))
    skipped = []
    for name, df in _in_legend_order(frames, method_of):
        tokens = _clean_scores(df, score_col, label_col)
        y, s = tokens[label_col].to_numpy(), tokens[score_col].to_numpy(dtype=float)
        result = alignment_if_defined(s, y, tokens["example_id"])
        if result is None:
            skipped.append(str(name))
            continue
        pooled = result["pooled"]
        fpr, tpr, _ = roc_curve(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        rank = method_style(method_of_name(str(name), method_of))["rank"]
        common = {
            "mode": "lines",
            "line": _line(name, highlight, method_of),
            "legendgroup": str(name),
            "legendrank": rank,
        }
        # one legend entry per run (the PR curve shares it): "atwu · AUROC 0.745 · AP 0.730"
        fig.add_trace(
            go.Scatter(
                x=fpr,
                y=tpr,
                name=f"{name} · AUROC {pooled['auroc']:.3f} · AP {pooled['ap']:.3f}",
                **common,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=recall,
                y=precision,
                name=f"{name} · AP {pooled['ap']:.3f}",
                line_shape="hv",
                showlegend=False,
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
            legendrank=10_000,
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

    The numbers are `atwu_core.evaluation.metrics.span_alignment`'s pooled AUROC, average precision,
    precision@k and weight mass inside spans; they are NaN for a snapshot whose tokens hold one
    class only (alignment is undefined there). Columns: `ALIGNMENT_COLUMNS`.
    """
    from atwu_core.evaluation.metrics import (
        alignment_if_defined,  # lazy: it imports sklearn and scipy
    )

    rows = []
    for name, df in frames.items():
        tokens = _clean_scores(df, score_col, label_col)
        for step, at in tokens.groupby("step", sort=True):
            labels = at[label_col].to_numpy()
            row = {"name": str(name), "step": int(step), "n_tokens": len(at)}
            row["n_in_span"] = int(labels.sum())
            result = alignment_if_defined(at[score_col].to_numpy(float), labels, at["example_id"])
            if result is not None:
                row.update({k: math.nan if v is None else v for k, v in result["pooled"].items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=list(ALIGNMENT_COLUMNS))


def alignment_over_steps(
    table: pd.DataFrame,
    metric: str = "auroc",
    *,
    highlight: Collection[str] = (),
    method_of: Mapping[str, str] | None = None,
) -> go.Figure:
    """`metric` of `alignment_table` rows against the snapshot step, one trace per name (names in
    `highlight` thicker)."""
    if metric not in table.columns:
        raise ValueError(f"metric {metric!r} is not a column of the alignment table")
    fig = go.Figure()
    groups = dict(tuple(table.groupby("name", sort=False)))
    for name, rows in _in_legend_order(groups, method_of):
        rows = rows.sort_values("step")
        fig.add_trace(
            go.Scatter(
                x=rows["step"],
                y=rows[metric],
                mode="lines+markers",
                name=str(name),
                line=_line(name, highlight, method_of),
                legendrank=method_style(method_of_name(str(name), method_of))["rank"],
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
    method_of: Mapping[str, str] | None = None,
) -> go.Figure:
    """One line per run (named by its label) of `metric` against `x` from metrics.jsonl; runs
    named in `highlight` get thicker lines."""
    fig = go.Figure()
    for name, df in _in_legend_order(metrics_by_run, method_of):
        if metric not in df.columns or x not in df.columns:
            continue
        rows = df[[x, metric]].apply(pd.to_numeric, errors="coerce").dropna()
        fig.add_trace(
            go.Scatter(
                x=rows[x],
                y=rows[metric],
                mode="lines",
                name=str(name),
                line=_line(name, highlight, method_of),
                legendrank=method_style(method_of_name(str(name), method_of))["rank"],
            )
        )
    fig.update_layout(
        title=f"{metric} during unlearning",
        showlegend=True,  # name the run even when it is the only one
        xaxis_title=x,
        yaxis_title=metric,
        yaxis_type="log" if metric in PVALUE_METRICS else "linear",
        yaxis_dtick=1 if metric in PVALUE_METRICS else None,
        yaxis_tickformat=".0e" if metric in PVALUE_METRICS else None,
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


def _log_axis(metric: str, values: Sequence[float] = ()) -> dict:
    """Plotly axis settings: p-values (forget quality) on a log axis up to 1, ticks like 1e-3
    (every decade, or every 2nd / 4th one when the values span many decades)."""
    if metric not in PVALUE_METRICS:
        return {"type": "linear"}
    positive = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    low = math.floor(math.log10(min(positive))) if positive else -6
    low = min(low, -1)
    decades = -low
    dtick = 1 if decades <= 10 else 2 if decades <= 20 else 4
    # p-values are at most 1: the axis ends just above, room for the labels
    return {"type": "log", "dtick": dtick, "tickformat": ".0e", "range": [low - 0.5, 0.6]}


def _aggregate(values: Sequence[float], log: bool) -> tuple[float, float, float]:
    """(centre, minus, plus) over seeds: mean ± sd, or on a log axis the geometric mean with
    the bar one sd of log10 either side (p-values spread over decades). sd 0 for one seed."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if log:
        vals = [v for v in vals if v > 0]
    if not vals:
        return math.nan, 0.0, 0.0
    if log:
        logs = [math.log10(v) for v in vals]
        mean = sum(logs) / len(logs)
        sd = _sd(logs)
        return 10**mean, 10**mean - 10 ** (mean - sd), 10 ** (mean + sd) - 10**mean
    mean = sum(vals) / len(vals)
    sd = _sd(vals)
    return mean, sd, sd


def _sd(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def method_means(
    board: pd.DataFrame,
    x: str,
    y: str,
    *,
    method_col: str = "method",
    reference_col: str = "reference",
) -> pd.DataFrame:
    """One row per method (reference models excluded): x, y (mean, or geometric mean on a
    p-value axis), their error bars (`x_minus`, `x_plus`, ...), the number of runs `n` and the
    run labels `runs` (from column "run" when present)."""
    df = board.copy()
    if reference_col in df.columns:
        df = df[~df[reference_col].fillna(False).astype(bool)]
    df[x] = pd.to_numeric(df[x], errors="coerce")
    df[y] = pd.to_numeric(df[y], errors="coerce")
    df = df.dropna(subset=[x, y])
    rows = []
    for method, group in df.groupby(method_col, sort=False):
        cx, xm, xp = _aggregate(group[x].tolist(), x in PVALUE_METRICS)
        cy, ym, yp = _aggregate(group[y].tolist(), y in PVALUE_METRICS)
        names = group["run"].astype(str).tolist() if "run" in group else []
        rows.append(
            {
                "method": str(method),
                x: cx,
                y: cy,
                "x_minus": xm,
                "x_plus": xp,
                "y_minus": ym,
                "y_plus": yp,
                "n": len(group),
                "runs": names,
            }
        )
    out = pd.DataFrame(
        rows, columns=["method", x, y, "x_minus", "x_plus", "y_minus", "y_plus", "n", "runs"]
    )
    out = out.dropna(subset=[x, y])
    order = sorted(range(len(out)), key=lambda i: method_sort_key(out["method"].iloc[i]))
    return out.iloc[order].reset_index(drop=True)


def tradeoff_scatter(
    leaderboard_df: pd.DataFrame,
    x: str = "model_utility",
    y: str = "forget_quality",
    *,
    label: str = "run_id",
    color: str = "method",
    reference_col: str = "reference",
) -> go.Figure:
    """Methods as labelled points (mean ± sd over seeds), reference models as labelled grey
    markers, and the Pareto front over the methods only (a reference model is a target, not a
    competitor).

    Each method's colour and symbol come from `method_style`. Up and right is better on both
    default axes; forget quality is a KS-test p-value (METHOD.md §3), so its axis is logarithmic
    (ticks 1e-3, ...) and its seeds are summarised by the geometric mean, bars ± one sd of log10.
    A reference row is one with `reference_col` true.
    """
    for col in (x, y, label):
        if col not in leaderboard_df.columns:
            raise ValueError(f"column {col!r} is missing; got {list(leaderboard_df.columns)}")
    df = leaderboard_df.copy()
    if color not in df.columns:
        df[color] = df[label]
    df["run"] = df["run"].fillna(df[label]) if "run" in df.columns else df[label]
    is_ref = (
        df[reference_col].fillna(False).astype(bool)
        if reference_col in df.columns
        else pd.Series(False, index=df.index)
    )
    means = method_means(df, x, y, method_col=color, reference_col=reference_col)
    on_front = set(means.loc[pareto_front(means, x, y), "method"])
    fig = go.Figure()
    for row in means.to_dict("records"):
        style = method_style(row["method"])
        several = row["n"] > 1
        # Printed labels for ATWU, the controls and the front; the legend names the rest, so
        # a crowded corner stays readable.
        labelled = style["kind"] != "method" or row["method"] in on_front
        text = row["method"] + (f" (n={row['n']})" if several else "") if labelled else ""
        runs_text = html.escape(", ".join(row["runs"]))
        bars = {"type": "data", "symmetric": False, "visible": several, "thickness": 1.5}
        fig.add_trace(
            go.Scatter(
                x=[row[x]],
                y=[row[y]],
                mode="markers+text",
                name=row["method"],
                text=[html.escape(text)],
                textposition="top center",
                textfont={"color": style["color"], "size": 13},
                marker={
                    "size": 16 if style["kind"] == "atwu" and row["method"] == "atwu" else 12,
                    "color": style["color"],
                    "symbol": style["symbol"],
                    "line": {"width": 1, "color": "white"},
                },
                error_x={**bars, "array": [row["x_plus"]], "arrayminus": [row["x_minus"]]},
                error_y={**bars, "array": [row["y_plus"]], "arrayminus": [row["y_minus"]]},
                legendrank=style["rank"],
                customdata=[[runs_text, row["n"]]],
                hovertemplate=f"<b>{html.escape(row['method'])}</b> (%{{customdata[1]}} run(s): "
                f"%{{customdata[0]}})<br>{x} %{{x:.3g}}<br>{y} %{{y:.3g}}<extra></extra>",
            )
        )
    refs = df[is_ref].copy()
    refs[x] = pd.to_numeric(refs[x], errors="coerce")
    refs[y] = pd.to_numeric(refs[y], errors="coerce")
    for row in refs.dropna(subset=[x, y]).to_dict("records"):
        style = method_style(str(row[color]))
        name = str(row["run"])
        fig.add_trace(
            go.Scatter(
                x=[row[x]],
                y=[row[y]],
                mode="markers+text",
                name=f"{name} (reference)",
                text=[html.escape(name)],
                textposition="bottom center",
                textfont={"color": "#555555", "size": 12},
                marker={"size": 13, "color": style["color"], "symbol": style["symbol"]},
                legendrank=5000 + style["rank"],
                hovertemplate=f"{html.escape(name)}: reference model, not a method"
                f"<br>{x} %{{x:.3g}}<br>{y} %{{y:.3g}}<extra></extra>",
            )
        )
    front = means[pareto_front(means, x, y)].sort_values(x)
    fig.add_trace(
        go.Scatter(
            x=front[x],
            y=front[y],
            mode="lines+markers" if len(front) > 1 else "markers",
            name="Pareto front (methods)",
            customdata=front["method"],
            line={"dash": "dash", "color": "black", "width": 1.5},
            marker={"symbol": "circle-open", "size": 24, "color": "black"},
            legendrank=9000,
            hoverinfo="skip",
        )
    )
    xaxis = _log_axis(x, pd.to_numeric(df[x], errors="coerce").tolist())
    off_scale = _zoom_past_collapsed(fig, means, refs, x, y, xaxis)
    fig.update_layout(
        title=f"Trade-off: {y} vs {x} (up and right is better)"
        + (f" · off the left edge: {off_scale}" if off_scale else ""),
        xaxis={"title": {"text": x + (" (log scale)" if x in PVALUE_METRICS else "")}, **xaxis},
        yaxis={
            "title": {"text": y + (" (log scale)" if y in PVALUE_METRICS else "")},
            **_log_axis(y, pd.to_numeric(df[y], errors="coerce").tolist()),
        },
        height=560,
        legend={"orientation": "h", "y": -0.18},
    )
    return fig


def _zoom_past_collapsed(
    fig: go.Figure, means: pd.DataFrame, refs: pd.DataFrame, x: str, y: str, xaxis: dict
) -> str:
    """On a linear x axis, leave out points below half the best x (a collapsed model, e.g.
    gradient ascent at utility 0) so the methods that matter are not squeezed into one corner;
    returns "name (x)" of each point left out, for the title. `xaxis` gets the range."""
    if x in PVALUE_METRICS:
        return ""
    values = pd.concat([means[x], pd.to_numeric(refs[x], errors="coerce")]).dropna()
    if values.empty or values.max() <= 0:
        return ""
    kept = values[values >= 0.5 * values.max()]
    if len(kept) == len(values):
        return ""
    low, high = kept.min(), kept.max()
    pad = max(0.02, 0.05 * (high - low))
    xaxis["range"] = [low - pad, high + pad]
    gone = means[means[x] < 0.5 * values.max()]
    return ", ".join(f"{m} ({v:.2f})" for m, v in zip(gone["method"], gone[x], strict=True))


def span_ranking(entries: Sequence[Mapping[str, Any]], *, title: str | None = None) -> go.Figure:
    """Horizontal bars of final span AUROC, best on top, mean ± sd when a method has several
    seeds. Each entry: `name`, `values` (one per run), and either `method` (coloured by
    `method_style`) or `reference=True` (a score-only reference: grey, hatched)."""
    rows = []
    for e in entries:
        vals = [float(v) for v in e["values"] if v is not None and math.isfinite(float(v))]
        if not vals:
            continue
        mean, sd, _ = _aggregate(vals, False)
        rows.append({**e, "mean": mean, "sd": sd, "n": len(vals)})
    rows.sort(key=lambda r: r["mean"])  # plotly draws the first bar at the bottom
    colors, patterns = [], []
    for r in rows:
        if r.get("reference"):
            colors.append(SCORE_REFERENCE_COLOR)
            patterns.append("/")
        else:
            colors.append(method_style(r["method"])["color"])
            patterns.append("")
    labels = [str(r["name"]) + (f" (n={r['n']})" if r["n"] > 1 else "") for r in rows]
    fig = go.Figure(
        go.Bar(
            x=[r["mean"] for r in rows],
            y=labels,
            orientation="h",
            marker={"color": colors, "pattern": {"shape": patterns}, "line": {"width": 0}},
            error_x={
                "type": "data",
                "array": [r["sd"] for r in rows],
                "visible": any(r["n"] > 1 for r in rows),
            },
            text=[f"{r['mean']:.2f}" for r in rows],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
            name="span AUROC",
        )
    )
    fig.add_vline(
        x=0.5,
        line_dash="dot",
        line_color="grey",
        annotation_text="chance",
        annotation_position="bottom right",
    )
    fig.update_layout(
        title=title or "Final-step span AUROC on every forget answer (mean ± sd over seeds)",
        xaxis={"title": {"text": "span AUROC (0.5 = chance, 1 = perfect)"}, "range": [0, 1.08]},
        yaxis={"automargin": True},
        height=max(280, 28 * len(rows) + 120),
        showlegend=False,
    )
    return fig


def field_breakdown(table: pd.DataFrame) -> go.Figure:
    """Methods (rows, in legend order) × fact fields (columns): span AUROC per field as a
    heatmap centred on 0.5 (orange below chance, purple above), numbers printed in the cells."""
    order = sorted(table.index, key=lambda m: method_sort_key(str(m)))
    table = table.loc[order]
    z = table.to_numpy(dtype=float)
    text = [[("" if math.isnan(v) else f"{v:.2f}") for v in row] for row in z]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[str(c) for c in table.columns],
            y=[str(i) for i in table.index],
            text=text,
            texttemplate="%{text}",
            colorscale=DIVERGING,
            zmin=0.0,
            zmax=1.0,
            zmid=0.5,
            colorbar={"title": {"text": "AUROC"}},
            hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Span AUROC per fact field (final step, all forget rows)",
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis={"tickangle": -35},
        height=max(300, 30 * len(table) + 160),
    )
    return fig


# Which way is better, for marking the best value of a leaderboard column.
METRIC_DIRECTIONS = {
    "forget_quality": "max",
    "model_utility": "max",
    "span/auroc": "max",
    "span/ap": "max",
    "selectivity": "max",
    "forget/span_token_acc": "min",
    "forget/other_token_acc": "max",
    "forget/prob": "min",
    "forget/rouge": "min",
    "retain/prob": "max",
    "retain/rouge": "max",
    "world_facts/prob": "max",
    "world_facts/rouge": "max",
}


def format_mean_sd(values: Sequence[float]) -> str:
    """ "0.990 ± 0.010", "4.0e-16 ± 2.1e-16" for small or large numbers, "0.742" for one run."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return ""
    mean = sum(vals) / len(vals)
    sci = mean != 0 and (abs(mean) < 1e-2 or abs(mean) >= 1e4)
    spec = ".1e" if sci else ".3f"
    out = format(mean, spec)
    if len(vals) > 1:
        out += " ± " + format(_sd(vals), spec)
    return out


def leaderboard_summary(
    board: pd.DataFrame,
    columns: Sequence[str],
    *,
    method_col: str = "method",
    reference_col: str = "reference",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The leaderboard grouped by method: one row per method (references as their own rows, at
    the end), `runs` = number of runs, each metric as mean ± sd text (`format_mean_sd`).

    Returns (table of strings, {column: the method label holding its best mean}); the best is
    picked among methods only (not controls or references), for columns of `METRIC_DIRECTIONS`.
    """
    df = board.copy()
    is_ref = (
        df[reference_col].fillna(False).astype(bool)
        if reference_col in df.columns
        else pd.Series(False, index=df.index)
    )
    groups: list[tuple[str, pd.DataFrame, bool]] = []
    for method, g in df[~is_ref].groupby(method_col, sort=False):
        groups.append((str(method), g, False))
    groups.sort(key=lambda t: method_sort_key(t[0]))
    for row in df[is_ref].itertuples(index=False):
        name = str(getattr(row, "run", getattr(row, method_col)))
        groups.append((name, df[is_ref & (df[method_col] == getattr(row, method_col))], True))
    rows, means = [], {}
    for name, g, ref in groups:
        out: dict[str, Any] = {"method": name, "runs": len(g) if not ref else 0}
        for col in columns:
            vals = pd.to_numeric(g[col], errors="coerce").dropna().tolist() if col in g else []
            out[col] = format_mean_sd(vals)
            # controls (frozen weights, the true spans) are yardsticks, not contenders
            if vals and not ref and method_style(name)["kind"] != "control":
                means.setdefault(col, {})[name] = sum(vals) / len(vals)
        rows.append(out)
    best = {}
    for col, by_method in means.items():
        direction = METRIC_DIRECTIONS.get(col)
        if direction and len(by_method) > 1:
            pick = max if direction == "max" else min
            best[col] = pick(by_method, key=by_method.get)
    table = pd.DataFrame(rows, columns=["method", "runs", *columns])
    return table, best


# ---------------------------------------------------------------------------------------------
# Seed study (atwu_core.study): every method over several generated benchmarks


def _study_tick(method: str) -> str:
    """Axis label of a study row: the short label (`study.short_label`), ATWU rows in bold,
    controls in grey italics and marked as such."""
    from atwu_core.evaluation.study_stats import short_label

    text = html.escape(short_label(method))
    kind = method_style(method)["kind"]
    if kind == "control":
        return f'<span style="color:#777777"><i>{text} (control)</i></span>'
    if method.partition("[")[0] == "atwu":
        return f"<b>{text}</b>"
    return text


def _study_order(method: str) -> tuple:
    """Legend order, the study's ATWU rows (`study.ATWU_ROWS`) in the order the study names them."""
    from atwu_core.evaluation.study_stats import ATWU_ROWS

    rank = method_style(method)["rank"]
    return rank, ATWU_ROWS.index(method) if method in ATWU_ROWS else len(ATWU_ROWS), method


def _study_seeds(board: pd.DataFrame) -> int:
    return int(board["seed"].nunique()) if len(board) else 0


def study_dots(
    board: pd.DataFrame,
    metric: str = "selectivity",
    *,
    regime: str | None = None,
    metric_label: str | None = None,
) -> go.Figure:
    """One row per method of a study board: its mean over seeds ± the 95 % CI half-width
    (`study.summarise`), every seed as a faint dot behind it, the controls' means as vertical
    lines. Rows in legend order (ATWU and its variants first, controls last); the axis shows
    `short_label`s, the hover the full method label. Methods without a value on any seed are
    named under the plot (e.g. selectivity, defined only when the facts were forgotten)."""
    from atwu_core.evaluation import study_stats as study

    regime = regime if regime is not None else str(board["regime"].iloc[0])
    sub = board[board["regime"] == regime]
    label = metric_label or study.VIEW_METRICS.get(metric, metric)
    summary = study.summarise(sub, [metric]) if metric in sub else pd.DataFrame()
    has = summary.dropna(subset=[metric]) if len(summary) else summary
    missing = sorted(set(sub["method"]) - set(has["method"] if len(has) else ()))
    methods = sorted((str(m) for m in has["method"]) if len(has) else (), key=_study_order)
    stats_of = has.set_index("method") if len(has) else has
    ticks = {m: _study_tick(m) for m in methods}
    fig = go.Figure()
    for m in methods:
        style = method_style(m)
        color = style["color"]
        seeds = sub[sub["method"] == m][["seed", metric]].dropna()
        fig.add_trace(
            go.Scatter(
                x=seeds[metric].tolist(),
                y=[ticks[m]] * len(seeds),
                mode="markers",
                marker={"color": color, "size": 7, "opacity": 0.3},
                name=f"{m}: seeds",
                showlegend=False,
                customdata=seeds["seed"].tolist(),
                hovertemplate=(
                    f"{html.escape(m)}<br>seed %{{customdata}}: %{{x:.3f}}<extra></extra>"
                ),
            )
        )
        mean = float(stats_of.loc[m, metric])
        half = float(stats_of.loc[m, f"{metric}_ci"])
        n = int(stats_of.loc[m, f"{metric}_n"])
        ci = f" ± {half:.3f} (95 % CI)" if math.isfinite(half) else " (one seed: no CI)"
        fig.add_trace(
            go.Scatter(
                x=[mean],
                y=[ticks[m]],
                mode="markers",
                marker={
                    "color": color,
                    "size": 13 if style["kind"] == "atwu" else 11,
                    "symbol": style["symbol"],
                    "line": {"color": color, "width": 2},
                },
                error_x={
                    "type": "data",
                    "array": [half if math.isfinite(half) else 0.0],
                    "visible": True,
                    "color": color,
                    "thickness": 2,
                    "width": 5,
                },
                name=m,
                showlegend=False,
                hovertemplate=(
                    f"<b>{html.escape(m)}</b><br>{html.escape(label)}: {mean:.3f}{ci}"
                    f"<br>{n} seed(s)<extra></extra>"
                ),
            )
        )
    for control in ("atwu_frozen", "oracle_saturated"):
        if control in methods:
            style = method_style(control)
            fig.add_vline(
                x=float(stats_of.loc[control, metric]),
                line={"color": style["color"], "dash": "dot", "width": 1},
                opacity=0.6,
            )
    n_seeds = _study_seeds(sub)
    direction = study.METRICS.get(metric)
    better = f" ({direction} = better)" if direction else ""
    fig.update_layout(
        title={
            "text": f"{html.escape(label)} per method: mean ± 95 % CI over {n_seeds} seeds"
            "<br><sup>faint dots: single seeds · dotted lines: the controls' means "
            "(atwu_frozen, oracle_saturated)</sup>",
            "x": 0,
        },
        height=130 + 30 * max(len(methods), 1) + (30 if missing else 0),
        margin={"l": 10, "r": 20, "t": 70, "b": 50 + (30 if missing else 0)},
        xaxis={"title": html.escape(label) + better, "zeroline": False},
        yaxis={
            "categoryorder": "array",
            "categoryarray": [ticks[m] for m in reversed(methods)],
            "automargin": True,
        },
        hoverlabel={"font_size": 14},
        font={"size": 13},
        template="plotly_white",
        meta={"missing": missing, "seeds": n_seeds},
    )
    if missing:
        fig.add_annotation(
            text="No value on any seed: " + html.escape(", ".join(missing)),
            xref="paper",
            yref="paper",
            x=0,
            y=0,
            yshift=-75,
            xanchor="left",
            showarrow=False,
            font={"size": 12, "color": "#555555"},
        )
    return fig


def study_paired(
    board: pd.DataFrame,
    *,
    against: str = "atwu_frozen",
    metrics: Sequence[str] | None = None,
    regime: str | None = None,
) -> go.Figure:
    """ATWU rows minus `against` (the frozen control), paired per seed (`study.paired_table`):
    one panel per metric, one row per ATWU setting, the mean difference ± its 95 % CI and a line
    at 0. A filled marker = the CI excludes 0 (a measurable effect), open = it includes 0."""
    from atwu_core.evaluation import study_stats as study

    regime = regime if regime is not None else str(board["regime"].iloc[0])
    metrics = list(metrics) if metrics is not None else list(study.VIEW_METRICS)
    metrics = [m for m in metrics if m in board]
    table = study.paired_table(board, regime, against, metrics)
    methods = list(dict.fromkeys(table["method"]))
    ticks = {m: _study_tick(m) for m in methods}
    titles = [html.escape(study.VIEW_METRICS.get(m, m)) for m in metrics]
    fig = make_subplots(
        rows=1,
        cols=max(len(metrics), 1),
        shared_yaxes=True,
        subplot_titles=titles or [""],
        horizontal_spacing=0.03,
    )
    for j, metric in enumerate(metrics, start=1):
        rows = table[table["metric"] == metric]
        lo, hi = 0.0, 0.0
        for row in rows.itertuples(index=False):
            color = method_style(row.method)["color"]
            half = row.ci if math.isfinite(row.ci) else 0.0
            if math.isfinite(row.mean):
                lo, hi = min(lo, row.mean - half), max(hi, row.mean + half)
            verdict = "CI excludes 0" if row.excludes_zero else "CI includes 0"
            fig.add_trace(
                go.Scatter(
                    x=[row.mean],
                    y=[ticks[row.method]],
                    mode="markers",
                    marker={
                        "color": color,
                        "size": 12,
                        "symbol": "circle" if row.excludes_zero else "circle-open",
                        "line": {"color": color, "width": 2},
                    },
                    error_x={
                        "type": "data",
                        "array": [half],
                        "visible": True,
                        "color": color,
                        "thickness": 2,
                        "width": 5,
                    },
                    name=f"{row.method} · {metric}",
                    showlegend=False,
                    hovertemplate=(
                        f"<b>{html.escape(row.method)}</b> − {html.escape(against)}<br>"
                        f"{html.escape(metric)}: {row.mean:+.3f} ± {half:.3f} (95 % CI, "
                        f"{row.n} seeds)<br>{verdict}<extra></extra>"
                    ),
                ),
                row=1,
                col=j,
            )
        pad = 0.15 * (hi - lo) or 0.05
        fig.update_xaxes(range=[lo - pad, hi + pad], zeroline=False, row=1, col=j)
        fig.add_vline(x=0, line={"color": "#444444", "width": 1.5}, row=1, col=j)
    n = int(table["n"].max()) if len(table) else 0
    fig.update_yaxes(
        categoryorder="array",
        categoryarray=[ticks[m] for m in reversed(methods)],
        automargin=True,
    )
    fig.update_layout(
        title={
            "text": f"ATWU − its frozen control ({html.escape(against)}), paired per seed: "
            f"mean difference ± 95 % CI over {n} seeds"
            "<br><sup>right of 0 = higher than the control · filled: the CI excludes 0 "
            "(a measurable effect) · open: it includes 0</sup>",
            "x": 0,
        },
        height=170 + 45 * max(len(methods), 1),
        margin={"l": 10, "r": 20, "t": 95, "b": 40},
        hoverlabel={"font_size": 14},
        font={"size": 13},
        template="plotly_white",
    )
    return fig
