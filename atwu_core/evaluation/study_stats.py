"""The seed study's protocol constants and the statistics of its headline table (pure).

Protocol (docs/RESULTS.md, "The study"):
1. **Benchmarks.** One *tuning* generator seed, never reported, and several *report* seeds. Each
   seed gets its own built-in benchmark and its own full and retain models (`atwu prepare
   --bench-seed`), cached under `$ATWU_CACHE/study/`, so a second study reuses them.
2. **Tuning** (optional, before the study): `atwu tune --methods ... --trials N` gives every
   method, controls included, the same N Optuna trials on the tuning seed; `atwu study --tuned
   DIR` then runs each method's best config.
3. **Runs.** Every method on every report seed in each regime: `default` (the library's defaults,
   50 steps), and on request `long` (200 steps). On benchmark v2 the default regime is already
   where the choice of tokens decides: uniform weighting (the frozen control) erodes the forget
   answers' shared words while the oracle keeps them (docs/RESULTS.md); 200 steps erode them for
   every weighting but the oracle.
4. **Tables.** Mean ± 95 % CI over report seeds (Student t); paired differences per seed of ATWU
   minus its frozen control and ATWU minus the best probability heuristic (WGA or SatImp, whichever
   has the better mean on that metric); which methods keep utility ≥ 0.9 × the full model's.

The statistics are pure functions of a table of runs (`summarise`, `paired`), tested on hand-made
numbers; `atwu_core.study.run_study` only orchestrates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TUNING_SEED = 100  # generator seed the tuner sees; never a report seed
REPORT_SEEDS = (1, 2, 3, 4, 5)
REGIMES: dict[str, dict[str, Any]] = {"default": {}, "long": {"epochs": 40}}
CONTROLS = ("atwu_frozen", "oracle_saturated")
HEURISTICS = ("wga", "satimp")  # token weights from the probability alone
# ATWU as the authors run it (scorer on the token's own state, an update every 5 steps) and the
# variant that scores the state predicting the token, updated every step (issue notes, RESULTS).
ATWU_PREV = "atwu[scorer_position=prev,update_every=1]"
# ... with a weaker L2 on the scorer: chosen from six exploratory runs on generator seed 0 (the
# sample benchmark, never a report seed), docs/RESULTS.md "How the ATWU settings were chosen".
ATWU_PREV_L2 = "atwu[scorer_position=prev,update_every=1,lambda_2=0.01]"
ATWU_ROWS = ("atwu", ATWU_PREV, ATWU_PREV_L2)
CORE_METHODS = (*ATWU_ROWS, *CONTROLS, *HEURISTICS, "seul")
UTILITY_KEEP = 0.9  # a method "keeps utility" at >= 0.9 x the full model's
# eval.json metrics the study reports, with the direction that is better.
METRICS = {
    "log10_fq": "higher",
    "model_utility": "higher",
    "selectivity": "higher",
    "forget/span_token_acc": "lower",
    "forget/other_token_acc": "higher",
    "span/auroc": "higher",
    "span/no_end/auroc": "higher",
    "span/ref/nll_rise/auroc": "higher",
    "span/ref/retain_nll/auroc": "higher",
}
QUICK = {"report_seeds": (1, 2), "methods": CORE_METHODS[:7], "regimes": ("default",)}


def parse_method(label: str) -> tuple[str, dict[str, str]]:
    """`atwu[scorer_position=prev,update_every=1]` -> ("atwu", {...}); a bare name has no
    overrides. The label names the row of the study's tables."""
    name, bracket, rest = label.partition("[")
    if not bracket:
        return label.strip(), {}
    if not rest.endswith("]"):
        raise ValueError(f"method label {label!r}: expected name[key=value,...]")
    overrides = {}
    for pair in filter(None, (p.strip() for p in rest[:-1].split(","))):
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"method label {label!r}: {pair!r} is not key=value")
        overrides[key.strip()] = value.strip()
    return name.strip(), overrides


# ----------------------------------------------------------------------------- statistics


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the Student-t confidence interval, n) of the finite values.

    The half-width is NaN for fewer than two values (no spread to speak of)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(x[0]), math.nan, 1
    from scipy import stats  # lazy: ~1.3 s to import, and the dashboard reads this module

    half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


def summarise(board: pd.DataFrame, metrics: Sequence[str] = tuple(METRICS)) -> pd.DataFrame:
    """Mean, CI half-width and n per (regime, method) and metric: columns `<m>`, `<m>_ci`,
    `<m>_n`. `board` has one row per run with `regime`, `method`, `seed` and metric columns."""
    rows = []
    for (regime, method), group in board.groupby(["regime", "method"], sort=False):
        row: dict[str, Any] = {"regime": regime, "method": method, "seeds": group["seed"].nunique()}
        for m in metrics:
            if m not in group:
                continue
            row[m], row[f"{m}_ci"], row[f"{m}_n"] = mean_ci(group[m].tolist())
        rows.append(row)
    return pd.DataFrame(rows)


def paired(
    board: pd.DataFrame, regime: str, a: str, b: str, metric: str
) -> tuple[float, float, int]:
    """Mean ± 95 % CI of the per-seed difference `a - b` on `metric` (seeds where both ran)."""
    at = board[(board["regime"] == regime) & (board["method"] == a)].set_index("seed")[metric]
    bt = board[(board["regime"] == regime) & (board["method"] == b)].set_index("seed")[metric]
    diff = (at - bt).dropna()
    return mean_ci(diff.tolist())


def best_heuristic(board: pd.DataFrame, regime: str, metric: str) -> str | None:
    """The probability heuristic (HEURISTICS) with the better mean on `metric` in `regime`."""
    sub = board[(board["regime"] == regime) & board["method"].isin(HEURISTICS)]
    if sub.empty or metric not in sub or sub[metric].isna().all():
        return None
    means = sub.groupby("method")[metric].mean().dropna()
    better_high = METRICS.get(metric, "higher") == "higher"
    return str(means.idxmax() if better_high else means.idxmin())


def gap_closed(
    board: pd.DataFrame, regime: str, metric: str = "selectivity", method: str = "atwu"
) -> float:
    """Share of the frozen -> oracle gap `method` closes on `metric`, from the means over seeds."""
    sub = board[board["regime"] == regime].groupby("method")[metric].mean()
    if not {method, *CONTROLS} <= set(sub.index):
        return math.nan
    gap = sub["oracle_saturated"] - sub["atwu_frozen"]
    return float((sub[method] - sub["atwu_frozen"]) / gap) if gap else math.nan


def best_forgetter(board: pd.DataFrame, regime: str) -> str | None:
    """Method with the best mean log10 forget quality among those whose mean utility keeps
    UTILITY_KEEP x the full model's (`utility_ok` on every seed), controls excluded."""
    sub = board[(board["regime"] == regime) & ~board["method"].isin(CONTROLS)]
    keep = sub.groupby("method")["utility_ok"].all()
    means = sub[sub["method"].isin(keep[keep].index)].groupby("method")["log10_fq"].mean()
    return None if means.empty else str(means.idxmax())


# ----------------------------------------------------------------------------- tables


def _fmt(mean: float, half: float, digits: int = 3) -> str:
    if mean is None or not np.isfinite(mean):
        return "–"
    if half is None or not np.isfinite(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def report_markdown(board: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The headline tables of docs/RESULTS.md from a board of runs (one row per run)."""
    summary = summarise(board)
    lines = [
        f"Report seeds {meta['report_seeds']} (tuning seed {meta['tuning_seed']} never "
        f"reported), {meta['config']} configs, generator v{meta['generator_version']}; "
        f"{meta['runs']} runs ({meta.get('reused', 0)} reused from an earlier invocation) in "
        f"{meta['seconds'] / 60:.0f} min on {meta['machine']}. "
        "Mean ± 95 % CI over report seeds (Student t). `log10 FQ`: forget quality, higher is "
        "better; `sel.`: selectivity, the shared-token accuracy left at the end of a run whose "
        "span-token accuracy ended ≤ 0.1 (mean over the seeds where it did; – if none); "
        "`AUROC`: the method's token weights against the forget spans on every forget row "
        "(`no end`: without the end-of-turn token); `rise` / `retain`: the same run's NLL rise "
        "and the retain model's NLL as score-only references.",
        "",
    ]
    cols = [
        ("log10 FQ", "log10_fq"),
        ("utility", "model_utility"),
        ("sel.", "selectivity"),
        ("shared acc", "forget/other_token_acc"),
        ("span acc", "forget/span_token_acc"),
        ("AUROC", "span/auroc"),
        ("AUROC no end", "span/no_end/auroc"),
        ("rise AUROC", "span/ref/nll_rise/auroc"),
        ("retain AUROC", "span/ref/retain_nll/auroc"),
    ]
    for regime in board["regime"].unique():
        sub = summary[summary["regime"] == regime]
        lines += [f"#### Regime `{regime}`", ""]
        lines.append("| method | keeps utility | " + " | ".join(c for c, _ in cols) + " |")
        lines.append("|---" * (len(cols) + 2) + "|")
        keep = board[board["regime"] == regime].groupby("method")["utility_ok"].all()
        for _, row in sub.iterrows():
            cells = [_fmt(row.get(k), row.get(f"{k}_ci")) for _, k in cols]
            ok = "yes" if keep.get(row["method"], False) else "no"
            lines.append(f"| {row['method']} | {ok} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += _paired_lines(board, regime)
    return "\n".join(lines) + "\n"


def _paired_lines(board: pd.DataFrame, regime: str) -> list[str]:
    lines = ["| paired difference (per seed) | metric | mean ± 95 % CI | n |", "|---|---|---|---|"]
    rows = [m for m in ATWU_ROWS if m in set(board["method"])]
    for atwu in rows:
        for metric in ("selectivity", "forget/other_token_acc", "span/auroc", "log10_fq"):
            if metric not in board:
                continue
            against = [("atwu_frozen", "frozen control")]
            heuristic = best_heuristic(board, regime, metric)
            if heuristic:
                against.append((heuristic, f"best heuristic ({heuristic})"))
            for other, label in against:
                mean, half, n = paired(board, regime, atwu, other, metric)
                if n:
                    lines.append(f"| {atwu} − {label} | {metric} | {_fmt(mean, half)} | {n} |")
    lines.append("")
    for atwu in rows:
        gap = gap_closed(board, regime, method=atwu)
        lines.append(
            f"{atwu} closes {_fmt(100 * gap, math.nan, 0)} % of the frozen → oracle "
            "selectivity gap."
        )
    best = best_forgetter(board, regime)
    lines += [
        "",
        f"Best forget quality among methods keeping utility: **{best or 'none'}**.",
        "",
    ]
    return lines


def field_table(board: pd.DataFrame, regime: str, methods: Sequence[str]) -> str:
    """Per-field span AUROC (mean over seeds) of `methods` in `regime`, as markdown."""
    sub = board[board["regime"] == regime]
    fields = sorted(
        c.split("/")[2]
        for c in board.columns
        if c.startswith("span/field/") and c.endswith("auroc")
    )
    present = [m for m in methods if m in set(sub["method"])]
    lines = ["| field | " + " | ".join(present) + " |", "|---" * (len(present) + 1) + "|"]
    for field in fields:
        col = f"span/field/{field}/auroc"
        cells = [
            _fmt(*mean_ci(sub.loc[sub["method"] == m, col].tolist())[:2], digits=2) for m in present
        ]
        lines.append(f"| {field} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- study files


# The metrics the dashboard's seed-study view offers, with their axis labels.
VIEW_METRICS = {
    "selectivity": "selectivity",
    "span/auroc": "span AUROC",
    "log10_fq": "log10 forget quality",
    "model_utility": "model utility",
}
BOARD_COLUMNS = ("regime", "method", "seed", *VIEW_METRICS)
# Baselines a token weighting must beat by GOAL_MARGIN in span AUROC (docs/RESULTS.md goals).
TOKEN_BASELINES = ("wga", "satimp", "seul")
GOAL_GAP, GOAL_AUROC, GOAL_MARGIN = 0.5, 0.90, 0.10
# Readable pieces of a method label's overrides (`short_label`); None = the value alone.
_SHORT_KEYS = {
    "scorer_position": None,
    "update_every": "ue",
    "lambda_1": "λ₁=",
    "lambda_2": "λ₂=",
    "budget": "budget=",
}
ATWU_TITLES = {"atwu": "ATWU (authors' settings)"}


class StudyFileError(ValueError):
    """A study CSV that cannot be used; the message names the file and what is wrong."""


def load_board(path: str | Path) -> pd.DataFrame:
    """A study's board (one row per run, as `run_study` writes `study.csv`), checked: the file
    reads as CSV, has the columns BOARD_COLUMNS and at least one row; metric columns are numeric
    (unreadable cells become NaN) and `utility_ok` is boolean when present."""
    path = Path(path)
    try:
        board = pd.read_csv(path)
    except FileNotFoundError:
        raise StudyFileError(f"Study file {path}: not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise StudyFileError(f"Study file {path}: not a readable CSV ({e})") from None
    missing = [c for c in BOARD_COLUMNS if c not in board.columns]
    if missing:
        raise StudyFileError(
            f"Study file {path}: missing column(s) {', '.join(repr(c) for c in missing)} "
            f"(a study CSV has {', '.join(BOARD_COLUMNS)}, ...)"
        )
    if board.empty:
        raise StudyFileError(f"Study file {path}: no runs (the file has a header only)")
    seeds = pd.to_numeric(board["seed"], errors="coerce")
    if seeds.isna().any():
        raise StudyFileError(f"Study file {path}: column 'seed' has non-numeric values")
    board["seed"] = seeds.astype(int)
    board["method"] = board["method"].astype(str)
    board["regime"] = board["regime"].astype(str)
    for m in METRICS:
        if m in board:
            board[m] = pd.to_numeric(board[m], errors="coerce")
    if "utility_ok" in board:
        board["utility_ok"] = board["utility_ok"].map(
            lambda v: str(v).strip().lower() in ("true", "1", "1.0", "yes")
        )
    return board


def study_label(path: str | Path) -> str:
    """`study_default_5seeds.csv` -> "Default settings, 5 seeds"; `study_tuned10_5seeds.csv` ->
    "Tuned (10 trials), 5 seeds"; any other `study_<name>.csv` -> its name, spaced."""
    stem = Path(path).stem.removeprefix("study_")
    m = re.fullmatch(r"(?P<kind>[a-z]+?)(?P<trials>\d*)_(?P<seeds>\d+)seeds", stem)
    if not m:
        return stem.replace("_", " ")
    kind = {"default": "Default settings", "tuned": "Tuned"}.get(m["kind"], m["kind"].title())
    if m["trials"]:
        kind += f" ({m['trials']} trials)"
    return f"{kind}, {m['seeds']} seeds"


def study_files(folder: str | Path) -> dict[str, Path]:
    """{readable label: path} of every `study_*.csv` in `folder`: default settings first, then
    the tuned studies by trial budget, then the rest by name."""

    def key(p: Path) -> tuple[int, int, str]:
        m = re.match(r"study_(default|tuned)(\d*)_", p.name)
        kind = {"default": 0, "tuned": 1}[m[1]] if m else 2
        return kind, int(m[2]) if m and m[2] else 0, p.name

    files = sorted(Path(folder).glob("study_*.csv"), key=key)
    return {study_label(p): p for p in files}


def short_label(label: str) -> str:
    """A method label short enough for an axis: `atwu[scorer_position=prev,update_every=1,
    lambda_2=0.01]` -> "atwu · prev, ue1, λ₂=0.01"; a bare name is itself."""
    try:
        name, overrides = parse_method(label)
    except ValueError:
        return label
    if not overrides:
        return name
    parts = []
    for key, value in overrides.items():
        prefix = _SHORT_KEYS.get(key, f"{key}=")
        parts.append(value if prefix is None else f"{prefix}{value}")
    return f"{name} · " + ", ".join(parts)


def atwu_variants(board: pd.DataFrame) -> list[str]:
    """The board's ATWU rows (plain `atwu` and `atwu[...]`, not the plug-ins like atwu_npo):
    ATWU_ROWS first in their order, then any other variant by name."""
    found = set()
    for label in board["method"].unique():
        try:
            if parse_method(str(label))[0] == "atwu":
                found.add(str(label))
        except ValueError:
            continue
    return [m for m in ATWU_ROWS if m in found] + sorted(found - set(ATWU_ROWS))


def atwu_title(label: str, config: str = "default") -> str:
    """Name of an ATWU row in sentences: "ATWU (authors' settings)", "ATWU · prev, ue1";
    a row whose config is "tuned" says so ("ATWU (tuned)")."""
    name = short_label(label).replace("atwu", "ATWU", 1)
    if config == "tuned":
        return f"{name} (tuned)"
    return ATWU_TITLES.get(label, name)


def method_config(board: pd.DataFrame, method: str) -> str:
    """The `config` column's value for `method` ("tuned" / "default"), "default" without one."""
    if "config" not in board:
        return "default"
    values = board.loc[board["method"] == method, "config"].dropna().astype(str).unique()
    return values[0] if len(values) == 1 else "default"


def paired_table(
    board: pd.DataFrame,
    regime: str,
    against: str = "atwu_frozen",
    metrics: Sequence[str] = tuple(VIEW_METRICS),
) -> pd.DataFrame:
    """`paired` differences of every ATWU row minus `against`, one row per (method, metric):
    mean, ci (half-width), n and `excludes_zero` (n ≥ 2 and the CI lies on one side of 0)."""
    rows = []
    if against in set(board.loc[board["regime"] == regime, "method"]):
        for method in atwu_variants(board[board["regime"] == regime]):
            for metric in metrics:
                if metric not in board:
                    continue
                mean, half, n = paired(board, regime, method, against, metric)
                excludes = bool(n >= 2 and np.isfinite(half) and abs(mean) > half)
                rows.append(
                    {
                        "method": method,
                        "config": method_config(board, method),
                        "metric": metric,
                        "mean": mean,
                        "ci": half,
                        "n": n,
                        "excludes_zero": excludes,
                    }
                )
    columns = ["method", "config", "metric", "mean", "ci", "n", "excludes_zero"]
    return pd.DataFrame(rows, columns=columns)


def _signed(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


def _digits(half: float) -> int:
    """Decimals that show a CI half-width with two significant digits at most (2 at least)."""
    if not np.isfinite(half) or half <= 0 or half >= 0.01:
        return 2
    return min(6, 1 - math.floor(math.log10(half)))


def paired_sentence(row: Mapping[str, Any], against: str = "frozen control") -> str:
    """One row of `paired_table` in words: "ATWU (authors' settings) − frozen control,
    selectivity: −0.03 ± 0.10 over 5 seeds (CI includes 0: no measurable effect)"."""
    metric = str(row["metric"])
    title = atwu_title(str(row["method"]), str(row.get("config", "default")))
    head = f"{title} − {against}, {VIEW_METRICS.get(metric, metric)}: "
    n = int(row["n"])
    if n == 0:
        return head + "no seed where both ran"
    if n < 2 or not np.isfinite(row["ci"]):
        return head + f"{_signed(row['mean'])} on {n} seed (no CI from one seed)"
    d = _digits(row["ci"])
    numbers = f"{_signed(row['mean'], d)} ± {row['ci']:.{d}f} over {n} seeds"
    if not row["excludes_zero"]:
        return head + numbers + " (CI includes 0: no measurable effect)"
    higher = row["mean"] > 0
    better = higher == (METRICS.get(metric, "higher") == "higher")
    return (
        head
        + numbers
        + (
            f" (CI excludes 0: {'higher' if higher else 'lower'}, "
            f"{'better' if better else 'worse'} than the control)"
        )
    )


def _means(board: pd.DataFrame, regime: str, metric: str) -> pd.Series:
    sub = board[board["regime"] == regime]
    if metric not in sub:
        return pd.Series(dtype=float)
    return sub.groupby("method")[metric].mean().dropna()


def goal_checks(board: pd.DataFrame, regime: str) -> pd.DataFrame:
    """docs/RESULTS.md "What the study shows, against the goals", per ATWU row, from the board:
    closes ≥ 50 % of the frozen → oracle selectivity gap (`gap_closed`); mean span AUROC ≥ 0.90;
    mean span AUROC above the same runs' NLL-rise reference; ≥ 0.10 above the best of WGA /
    SatImp / SEUL; best mean log10 FQ among methods keeping utility (`best_forgetter`). Columns
    method, goal, value (text), met (True / False, None when the board cannot tell)."""
    auroc = _means(board, regime, "span/auroc")
    rise = _means(board, regime, "span/ref/nll_rise/auroc")
    baselines = auroc[[m for m in TOKEN_BASELINES if m in auroc.index]]
    best_base = str(baselines.idxmax()) if len(baselines) else None
    best = best_forgetter(board, regime) if "utility_ok" in board else None
    rows = []
    for method in atwu_variants(board[board["regime"] == regime]):

        def add(goal: str, value: str, met: bool | None, method: str = method) -> None:
            rows.append({"method": method, "goal": goal, "value": value, "met": met})

        gap = gap_closed(board, regime, method=method) if "selectivity" in board else math.nan
        add(
            f"closes ≥ {100 * GOAL_GAP:.0f} % of the frozen → oracle selectivity gap",
            f"{100 * gap:.0f} %" if np.isfinite(gap) else "–",
            bool(gap >= GOAL_GAP) if np.isfinite(gap) else None,
        )
        a = auroc.get(method, math.nan)
        add(
            f"span AUROC ≥ {GOAL_AUROC:.2f}",
            f"{a:.2f}" if np.isfinite(a) else "–",
            bool(a >= GOAL_AUROC) if np.isfinite(a) else None,
        )
        r = rise.get(method, math.nan)
        add(
            "span AUROC above the same runs' NLL-rise reference",
            f"{a:.2f} vs {r:.2f}" if np.isfinite(a) and np.isfinite(r) else "–",
            bool(a > r) if np.isfinite(a) and np.isfinite(r) else None,
        )
        if best_base is not None and np.isfinite(a):
            b = float(baselines[best_base])
            add(
                f"span AUROC ≥ {GOAL_MARGIN:.2f} above the best of WGA / SatImp / SEUL",
                f"{a:.2f} vs {best_base} {b:.2f} ({_signed(a - b)})",
                bool(a - b >= GOAL_MARGIN - 1e-12),
            )
        else:
            add(f"span AUROC ≥ {GOAL_MARGIN:.2f} above the best of WGA / SatImp / SEUL", "–", None)
        add(
            "best mean forget quality among methods keeping utility",
            f"best: {short_label(best)}" if best else "–",
            (best == method) if best else None,
        )
    return pd.DataFrame(rows, columns=["method", "goal", "value", "met"])


def summary_table(
    board: pd.DataFrame, regime: str, metrics: Sequence[str] = tuple(VIEW_METRICS)
) -> pd.DataFrame:
    """`summarise` as text for a table: method, seeds, keeps utility (on every seed) and each
    metric as "mean ± CI" (– where no seed has a value), in the board's method order."""
    sub = board[board["regime"] == regime]
    summary = summarise(sub, metrics)
    keep = sub.groupby("method")["utility_ok"].all() if "utility_ok" in sub else None
    rows = []
    for _, row in summary.iterrows():
        out: dict[str, Any] = {"method": row["method"], "seeds": int(row["seeds"])}
        if keep is not None:
            out["keeps utility"] = "yes" if keep.get(row["method"], False) else "no"
        for m in metrics:
            out[VIEW_METRICS.get(m, m)] = _fmt(row.get(m), row.get(f"{m}_ci"))
        rows.append(out)
    return pd.DataFrame(rows)
