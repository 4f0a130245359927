"""Per-token snapshots of a run and how well they align with the forget spans (METHOD.md §4).

A snapshot is a list of tidy rows, one per answer token (docs/FORMATS.md, `token_weights.parquet`
and `final_weights.parquet`). The training loop builds them from its tensors; everything else here
works on those rows, so the dashboard, `atwu compare` and the study read the same numbers.

What gets scored against what (all on the rows that are in the loss):
- the method's weights against the template forget spans, all answer tokens and without the end
  token (which every method sees in every answer);
- per span field: that field's tokens against every non-span token;
- score-only references, which no method trains: the final NLL `ℓ_t`, its rise since step 0 and
  the retain model's NLL (the paper's criterion: what a model that never saw the forget set
  cannot predict);
- the weights against a second label, the retain model's `p_t < 0.5` (`ℓ_retain > ln 2`).

No torch here: the dashboard imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from atwu_core.evaluation.metrics import alignment_if_defined, selectivity

# A token the retain model gives probability < 0.5 is "unpredictable without the forget set".
RETAIN_LABEL_NLL = math.log(2.0)
REFERENCE_SCORES = ("nll", "nll_rise", "retain_nll")
ALIGNMENT_METRICS = ("auroc", "ap", "precision_at_k", "mass_in_span")


def token_rows(
    step: int,
    encoded: Sequence[Any],
    weights: np.ndarray,
    nll: np.ndarray,
    in_loss: np.ndarray,
    decode: Callable[[int], str],
    *,
    nll_before: dict[tuple[str, int], float],
    conflict: Mapping[tuple[str, int], float] | None = None,
    retain_nll: Mapping[tuple[str, int], float] | None = None,
) -> list[dict[str, Any]]:
    """Tidy rows for the answer tokens of `encoded` rows (data.encode.Encoded).

    `weights`, `nll`, `in_loss` are (B, T) arrays in the shifted frame of `collate` + `shift`:
    index t holds target token t+1 of the input, so answer token `pos` of row b sits at
    `answer_start - 1 + pos`. `nll_before` is filled on first sight of a (row, position) and read
    after, so the first snapshot defines "before".
    """
    rows = []
    for b, enc in enumerate(encoded):
        first = enc.answer_start - 1
        for pos, tok_id in enumerate(enc.input_ids[enc.answer_start :]):
            t = first + pos
            key = (enc.id, pos)
            value = float(nll[b, t])
            nll_before.setdefault(key, value)
            start, end = enc.answer_offsets[pos]
            rows.append(
                {
                    "step": step,
                    "example_id": enc.id,
                    "position": pos,
                    "token": decode(tok_id),
                    "char_start": start,
                    "char_end": end,
                    "weight": float(weights[b, t]),
                    "nll": value,
                    "nll_before": nll_before[key],
                    "in_span": bool(enc.in_span[pos]),
                    "in_loss": bool(in_loss[b, t]),
                    "span_field": enc.span_field[pos] if enc.span_field else "",
                    "is_end": bool(enc.is_end[pos]) if enc.is_end else False,
                    "conflict": conflict.get(key) if conflict else None,
                    "retain_nll": retain_nll.get(key) if retain_nll else None,
                }
            )
    return rows


def _entries(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`span_alignment` output as eval.json entries `<prefix>/<metric>` (pooled agg_value)."""
    out = {}
    for name, pooled in result["pooled"].items():
        if pooled is None:
            continue
        per = result["per_example"].get(name) or {"value_by_index": {}}
        out[f"{prefix}/{name}"] = {"agg_value": pooled, "value_by_index": per["value_by_index"]}
    return out


def _aligned(scores, labels, ids, prefix: str) -> dict[str, Any]:
    """Alignment entries, or none when the labels hold one class only (undefined)."""
    result = alignment_if_defined(np.asarray(scores, dtype=float), labels, ids)
    return {} if result is None else _entries(result, prefix)


def span_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every alignment number of one snapshot as eval.json entries (module docstring).

    Keys: `span/<m>` (weights vs spans), `span/no_end/<m>`, `span/field/<field>/auroc`,
    `span/ref/<score>/<auroc|ap>` for the score-only references, `span/retain_label/<m>`;
    `<m>` is one of ALIGNMENT_METRICS. A key is absent where it is undefined (one class only,
    or a reference the run could not compute).
    """
    scored = [r for r in rows if r["in_loss"]]
    if not scored:
        return {}
    ids = [r["example_id"] for r in scored]
    labels = np.array([r["in_span"] for r in scored], dtype=bool)
    weights = np.array([r["weight"] for r in scored], dtype=float)
    out = _aligned(weights, labels, ids, "span")

    ids_arr = np.array(ids, dtype=object)

    keep = np.array([not r.get("is_end", False) for r in scored])
    out |= _aligned(weights[keep], labels[keep], list(ids_arr[keep]), "span/no_end")

    field_of = [r.get("span_field") or "" for r in scored]
    for field in sorted({f for f, y in zip(field_of, labels, strict=True) if y} - {""}):
        # this field's tokens against every token outside the forget spans
        pick = np.array([f == field or not y for f, y in zip(field_of, labels, strict=True)])
        sub = _aligned(weights[pick], labels[pick], list(ids_arr[pick]), f"span/field/{field}")
        if f"span/field/{field}/auroc" in sub:
            out[f"span/field/{field}/auroc"] = sub[f"span/field/{field}/auroc"]

    for score in REFERENCE_SCORES:
        values = reference_scores(scored, score)
        if values is None:
            continue
        ref = _aligned(values, labels, ids, f"span/ref/{score}")
        out |= {k: v for k, v in ref.items() if k.rsplit("/", 1)[1] in ("auroc", "ap")}

    retain = reference_scores(scored, "retain_nll")
    if retain is not None:
        out |= _aligned(weights, retain > RETAIN_LABEL_NLL, ids, "span/retain_label")
    return out


def reference_scores(rows: Sequence[Mapping[str, Any]], score: str) -> np.ndarray | None:
    """A score-only reference per row: `nll`, `nll_rise` (nll - nll_before) or `retain_nll`;
    None when any row lacks it (a run without a retain model, an old run folder)."""
    if score == "nll":
        return np.array([r["nll"] for r in rows], dtype=float)
    if score == "nll_rise":
        if any(r.get("nll_before") is None for r in rows):
            return None
        return np.array([r["nll"] - r["nll_before"] for r in rows], dtype=float)
    if score == "retain_nll":
        values = [r.get("retain_nll") for r in rows]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            return None
        return np.array(values, dtype=float)
    raise ValueError(f"unknown reference score {score!r}; one of {REFERENCE_SCORES}")


def pooled_alignment(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Pooled AUROC / AP / ... of one snapshot's weights, as `align/<m>` scalars for
    metrics.jsonl; empty when the snapshot holds one class only."""
    entries = _aligned(
        [r["weight"] for r in rows if r["in_loss"]],
        [r["in_span"] for r in rows if r["in_loss"]],
        [r["example_id"] for r in rows if r["in_loss"]],
        "align",
    )
    return {k: v["agg_value"] for k, v in entries.items()}


def trajectory_metrics(trajectory: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """eval.json entries of the forget answers' token accuracy over the run: the last snapshot's
    span-token and other-token accuracy, and `selectivity` (other-token accuracy where span
    accuracy first reaches metrics.SELECTIVITY_AT; absent when it never does)."""
    if not trajectory:
        return {}
    span_acc, other_acc = zip(*trajectory, strict=True)
    out = {
        "forget/span_token_acc": {"agg_value": span_acc[-1], "value_by_index": {}},
        "forget/other_token_acc": {"agg_value": other_acc[-1], "value_by_index": {}},
    }
    value = selectivity(span_acc, other_acc)
    if value is not None:
        out["selectivity"] = {"agg_value": value, "value_by_index": {}}
    return out
