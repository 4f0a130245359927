"""The run store: the only code that reads or writes run folders (docs/FORMATS.md, "Run folders").

A run folder holds `run.json` (config, environment, status), `metrics.jsonl` (one flat JSON object
per logged step, streamed while training), `token_weights.parquet` (per-token snapshots of the probe
examples, METHOD.md §4) and `eval.json` (TOFU metrics, METHOD.md §3).

Writing goes through `RunWriter`. Every file except the append-only `metrics.jsonl` is written to a
temporary file and moved into place with `os.replace`, so a reader never sees half a file; each
metrics line is flushed and fsynced, so a killed writer leaves at most one truncated last line,
which readers skip. `status` turns final last (`RunWriter.finish`), so a "finished" run is complete.

Reading goes through `load_run` (one run, strict: a bad file raises `RunFormatError` naming it) and
`list_runs` (a table of many runs that never raises: a bad folder becomes a row with an `error`).

This module must not import torch: the dashboard imports it at start-up.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from atwu_core.fileio import atomic_write
from atwu_core.scorer_config import scorer_overrides

SCHEMA = 1
RUN_JSON = "run.json"
METRICS = "metrics.jsonl"
TOKEN_WEIGHTS = "token_weights.parquet"
# Every forget row's tokens at step 0 and at the last step (same columns as TOKEN_WEIGHTS): span
# alignment is measured on all forget rows, the probe rows of TOKEN_WEIGHTS are for the replay.
FORGET_WEIGHTS = "forget_weights.parquet"
EVAL_JSON = "eval.json"
RUN_FILES = (RUN_JSON, METRICS, TOKEN_WEIGHTS, FORGET_WEIGHTS, EVAL_JSON)

FINAL_STATUSES = ("finished", "failed", "interrupted")
STALE = "running (stale?)"
# A live writer touches run.json (steps_done) or metrics.jsonl at least every few steps; ten
# minutes of silence means the process most likely died without calling `finish`.
STALE_AFTER_S = 600.0

TOKEN_WEIGHT_COLUMNS = (
    "step",
    "example_id",
    "position",
    "token",
    "char_start",
    "char_end",
    "weight",
    "nll",
    "in_span",
    "in_loss",
)
# Key eval numbers copied into the `list_runs` table (metric names of evaluation.evaluate).
KEY_EVAL_METRICS = ("forget_quality", "model_utility", "forget/prob", "retain/prob")
LIST_COLUMNS = (
    "run_id",
    "method",
    "status",
    "seed",
    "created",
    "steps",
    "total_steps",
    *KEY_EVAL_METRICS,
    "reference",  # config "reference": true, an eval-only folder of a reference model
    "tuned",  # config "tuned_from" is set: the run used an `atwu tune` study's best config
    "variant",  # scorer settings that differ from the defaults, "scorer_position=prev,..."
    "path",
    "error",
)
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RunFormatError(ValueError):
    """A run folder's file is missing, corrupted or of an unknown schema; the message names it."""


# ---------------------------------------------------------------------------------------------
# Low-level atomic I/O


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_safe(value: Any) -> Any:
    """Plain-JSON copy of `value`: NaN/inf become null (strict JSON has no NaN), numpy scalars
    and arrays become Python numbers and lists, paths become strings."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalar / array (and torch tensors, without importing it)
        return _json_safe(value.tolist())
    raise ValueError(f"value {value!r} of type {type(value).__name__} cannot be stored as JSON")


def _dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(_json_safe(obj), allow_nan=False, ensure_ascii=False, indent=indent)


def _write_json(path: Path, obj: Any) -> None:
    data = (_dumps(obj, indent=2) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))


# ---------------------------------------------------------------------------------------------
# Writer


class RunWriter:
    """Writes one run folder. Create it with `RunWriter.create(...)`; end it with `finish(...)`."""

    def __init__(self, path: Path, info: dict[str, Any]) -> None:
        self.path = Path(path)
        self.info = info

    @property
    def run_id(self) -> str:
        return self.info["run_id"]

    @classmethod
    def create(
        cls,
        runs_dir: str | os.PathLike[str],
        method: str,
        config: Mapping[str, Any],
        environment: Mapping[str, Any],
        total_steps: int,
        run_id: str | None = None,
    ) -> RunWriter:
        """Create `<runs_dir>/<run_id>/run.json` with status "running".

        The default run id is `{YYYYmmdd-HHMMSS}-{method}-s{seed}` (seed from `config["seed"]`,
        0 if absent), suffixed `-2`, `-3`, ... when that folder already exists. An explicit
        `run_id` that exists is an error rather than a silent rename.
        """
        if not isinstance(method, str) or not _RUN_ID_RE.match(method):
            raise ValueError(
                f"method must be a non-empty name of letters/digits/._-, not {method!r}"
            )
        if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps < 0:
            raise ValueError(f"total_steps must be an integer >= 0, not {total_steps!r}")
        if run_id is not None and not _RUN_ID_RE.match(run_id):
            raise ValueError(
                f"run_id {run_id!r} must start with a letter or digit and hold only "
                "letters, digits, '.', '_' and '-'"
            )
        runs = Path(runs_dir)
        runs.mkdir(parents=True, exist_ok=True)
        if run_id is None:
            base = f"{time.strftime('%Y%m%d-%H%M%S')}-{method}-s{config.get('seed', 0)}"
            path = _make_unique_dir(runs, base)
        else:
            path = runs / run_id
            try:
                path.mkdir()
            except FileExistsError:
                raise ValueError(f"run folder {path} already exists") from None
        info = {
            "schema": SCHEMA,
            "run_id": path.name,
            "method": method,
            "status": "running",
            "reason": None,
            "failed_step": None,
            "config": dict(config),
            "environment": dict(environment),
            "created": _utc_now(),
            "updated": _utc_now(),
            "finished": None,
            "steps_done": 0,
            "total_steps": total_steps,
            # Lets a reader on the same machine tell a live run from one whose process died.
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        writer = cls(path, info)
        _write_json(path / RUN_JSON, info)
        return writer

    def path_for(self, name: str) -> Path:
        """Path of a file inside the run folder (e.g. "scorer.safetensors", "model")."""
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"file name {name!r} must be a relative path inside the run folder")
        return self.path / name

    def log(self, metrics: Mapping[str, Any]) -> None:
        """Append one flat JSON object to metrics.jsonl; flushed and fsynced before returning.

        NaN and ±inf are written as null (a diverged loss is worth recording, not crashing on).
        """
        self._check_open()
        if not isinstance(metrics, Mapping) or not metrics:
            raise ValueError(f"metrics must be a non-empty dict, not {metrics!r}")
        nested = [k for k, v in metrics.items() if isinstance(v, (Mapping, list, tuple))]
        if nested:
            raise ValueError(f"metrics must be flat (numbers/strings); nested values at {nested}")
        line = (_dumps(metrics) + "\n").encode()
        with open(self.path / METRICS, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def write_token_weights(self, df: pd.DataFrame, name: str = TOKEN_WEIGHTS) -> None:
        """Rewrite token_weights.parquet (or `name` = FORGET_WEIGHTS) atomically (FORMATS.md)."""
        self._check_open()
        if name not in (TOKEN_WEIGHTS, FORGET_WEIGHTS):
            raise ValueError(f"token weights go to {TOKEN_WEIGHTS} or {FORGET_WEIGHTS}, not {name}")
        missing = [c for c in TOKEN_WEIGHT_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(
                f"token weights for run {self.run_id} lack columns {missing}; "
                f"required: {list(TOKEN_WEIGHT_COLUMNS)}"
            )
        atomic_write(self.path / name, lambda f: df.to_parquet(f, index=False))

    def write_eval(self, d: Mapping[str, Any]) -> None:
        """Write eval.json atomically; `schema` is added when absent."""
        self._check_open()
        if not isinstance(d, Mapping):
            raise ValueError(f"eval must be a dict, not {type(d).__name__}")
        body = {"schema": SCHEMA, **d}
        if body["schema"] != SCHEMA:
            raise ValueError(f"eval schema {body['schema']!r} is not the supported {SCHEMA}")
        _write_json(self.path / EVAL_JSON, body)

    def update(self, **fields: Any) -> None:
        """Update run.json fields (e.g. `steps_done=12`, timings); status changes go via finish."""
        self._check_open()
        protected = {"schema", "run_id", "status", "created", "finished"} & set(fields)
        if protected:
            raise ValueError(f"run.json fields {sorted(protected)} cannot be set with update()")
        if "steps_done" in fields:
            steps = fields["steps_done"]
            if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
                raise ValueError(f"steps_done must be an integer >= 0, not {steps!r}")
        self.info.update(fields)
        self.info["updated"] = _utc_now()
        _write_json(self.path / RUN_JSON, self.info)

    def finish(
        self, status: str = "finished", reason: str | None = None, failed_step: int | None = None
    ) -> None:
        """Mark the run final. Call it after every other write: nothing may be written after."""
        self._check_open()
        if status not in FINAL_STATUSES:
            raise ValueError(f"final status must be one of {FINAL_STATUSES}, not {status!r}")
        self.info.update(
            status=status,
            reason=reason,
            failed_step=failed_step,
            finished=_utc_now(),
            updated=_utc_now(),
        )
        _write_json(self.path / RUN_JSON, self.info)

    def _check_open(self) -> None:
        if self.info["status"] != "running":
            raise RuntimeError(
                f"run {self.run_id} is already {self.info['status']}: "
                "finish() must be the last write"
            )


def _make_unique_dir(runs: Path, base: str) -> Path:
    """Create `runs/base`, or `runs/base-2`, `-3`, ...; `mkdir` is the atomic claim, so two
    writers started in the same second never share a folder."""
    for n in range(1, 10_000):
        path = runs / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ValueError(f"could not find a free run folder name for {runs / base}")


# ---------------------------------------------------------------------------------------------
# Reader


@dataclass
class Run:
    """One run folder as loaded by `load_run`."""

    path: Path
    info: dict[str, Any]
    metrics: pd.DataFrame
    token_weights: pd.DataFrame | None
    eval: dict[str, Any] | None

    @property
    def run_id(self) -> str:
        return str(self.info.get("run_id", self.path.name))

    @property
    def method(self) -> str:
        return str(self.info.get("method", "?"))

    @property
    def status(self) -> str:
        """The stored status, or "running (stale?)" for a running run whose writer looks dead."""
        return display_status(self.info, self.path)

    def eval_value(self, metric: str) -> float | None:
        """`eval.json` metrics[metric]["agg_value"], or None when absent."""
        return eval_value(self.eval, metric)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFormatError(f"{path}: file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFormatError(f"{path}: cannot be read ({e})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunFormatError(f"{path}: corrupted JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(obj, dict):
        raise RunFormatError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    schema = obj.get("schema")
    if schema != SCHEMA:
        raise RunFormatError(
            f"{path}: unknown schema {schema!r} (this atwu_core reads schema {SCHEMA}); "
            "was it written by a newer or older version?"
        )
    return obj


def read_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """run.json of the run folder `path`, schema checked."""
    return _read_json(Path(path) / RUN_JSON)


def read_metrics(path: str | os.PathLike[str]) -> pd.DataFrame:
    """metrics.jsonl as a DataFrame (one row per logged step; empty if nothing was logged yet).

    A truncated last line (a writer killed mid-write, or one still writing) is skipped; a
    corrupted line anywhere else raises `RunFormatError` naming file and line.
    """
    file = Path(path) / METRICS
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return pd.DataFrame()
    lines = raw.split(b"\n")
    # A complete file ends with "\n", so the last element is b"" unless the last write was cut.
    rows = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, found {type(row).__name__}")
        except ValueError as e:  # includes JSONDecodeError and UnicodeDecodeError
            if i == len(lines):
                continue  # truncated last line of a running or killed writer
            raise RunFormatError(f"{file}:{i}: corrupted metrics line ({e})") from None
        rows.append(row)
    df = pd.DataFrame(rows)
    # null (NaN/inf at write time) must come back as NaN in numeric columns, not object dtype.
    for col in df.columns:
        if df[col].dtype == object:
            converted = pd.to_numeric(df[col], errors="coerce")
            if converted.notna().sum() == df[col].notna().sum():
                df[col] = converted
    if "step" in df.columns:
        df = df.sort_values("step", kind="stable").reset_index(drop=True)
    return df


def read_token_weights(
    path: str | os.PathLike[str], name: str = TOKEN_WEIGHTS
) -> pd.DataFrame | None:
    """token_weights.parquet (or `name` = FORGET_WEIGHTS), or None when not written (yet)."""
    file = Path(path) / name
    if not file.exists():
        return None
    try:
        df = pd.read_parquet(file)
    except Exception as e:  # pyarrow raises several unrelated types for a damaged file
        raise RunFormatError(f"{file}: corrupted parquet ({type(e).__name__}: {e})") from None
    missing = [c for c in TOKEN_WEIGHT_COLUMNS if c not in df.columns]
    if missing:
        raise RunFormatError(f"{file}: missing columns {missing}")
    return df


def read_eval(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """eval.json, or None when the run has not been evaluated (yet)."""
    file = Path(path) / EVAL_JSON
    if not file.exists():
        return None
    d = _read_json(file)
    if not isinstance(d.get("metrics", {}), dict):
        raise RunFormatError(f"{file}: 'metrics' must be an object")
    return d


def load_run(path: str | os.PathLike[str]) -> Run:
    """Load one run folder; raises `RunFormatError` naming the file that is bad."""
    path = Path(path)
    if not path.is_dir():
        raise RunFormatError(f"{path}: not a run folder (no such directory)")
    info = read_info(path)
    return Run(
        path=path,
        info=info,
        metrics=read_metrics(path),
        token_weights=read_token_weights(path),
        eval=read_eval(path),
    )


def eval_value(eval_d: Mapping[str, Any] | None, metric: str) -> float | None:
    """`eval_d["metrics"][metric]["agg_value"]` as a float, or None when absent or not a number."""
    if not eval_d:
        return None
    entry = eval_d.get("metrics", {}).get(metric)
    value = entry.get("agg_value") if isinstance(entry, Mapping) else entry
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def last_activity(path: str | os.PathLike[str]) -> float | None:
    """Latest mtime (epoch seconds) of run.json / metrics.jsonl, None if neither exists."""
    times = []
    for name in (RUN_JSON, METRICS):
        with contextlib.suppress(OSError):
            times.append((Path(path) / name).stat().st_mtime)
    return max(times) if times else None


def display_status(
    info: Mapping[str, Any], path: str | os.PathLike[str], now: float | None = None
) -> str:
    """The status to show: "running (stale?)" for a running run whose writer looks dead.

    Dead means: the run was written on this host by a process that no longer exists, or nothing
    in the folder changed for `STALE_AFTER_S` seconds.
    """
    status = str(info.get("status", "?"))
    if status != "running":
        return status
    same_host = info.get("host") == socket.gethostname()
    if same_host and isinstance(info.get("pid"), int) and not _pid_alive(info["pid"]):
        return STALE
    last = last_activity(path)
    now = time.time() if now is None else now
    if last is not None and now - last > STALE_AFTER_S:
        return STALE
    return status


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    # A zombie (exited, not yet reaped by its parent: e.g. a dashboard's Popen) still answers
    # kill(0); /proc tells them apart on Linux.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _run_dirs(runs_dir: Path) -> list[Path]:
    """Sub-folders that look like runs: they hold at least one of the run files."""
    try:
        children = sorted(runs_dir.iterdir())
    except OSError:
        return []
    return [
        p
        for p in children
        if p.is_dir() and not p.name.startswith(".") and any((p / f).exists() for f in RUN_FILES)
    ]


def list_runs(*runs_dirs: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per run folder found in `runs_dirs`, newest first; never raises on a bad folder.

    Columns: see `LIST_COLUMNS`. A folder that cannot be read is listed with its `error` (and
    whatever could be read); missing folders are skipped. Only run.json and eval.json are read,
    so listing stays fast while runs are large.
    """
    rows = []
    for runs_dir in runs_dirs:
        for path in _run_dirs(Path(runs_dir)):
            rows.append(_list_row(path))
    df = pd.DataFrame(rows, columns=list(LIST_COLUMNS))
    if len(df):
        df = df.sort_values(["created", "run_id"], ascending=False, na_position="last")
        df = df.reset_index(drop=True)
    return df


def variant(config: Mapping[str, Any]) -> str:
    """A run's scorer settings that differ from the defaults, as the seed study names them
    (`scorer_position=prev,update_every=1,lambda_2=0.01`); "" for defaults or no scorer."""
    recorded = config.get("scorer")
    if not isinstance(recorded, Mapping):
        return ""
    changed = scorer_overrides(recorded)
    # Where the scorer reads first, as the seed study writes its rows (study_stats.ATWU_PREV_L2).
    order = sorted(changed, key=lambda k: k != "scorer_position")
    return ",".join(
        f"{k}={changed[k]:g}" if isinstance(changed[k], float) else f"{k}={changed[k]}"
        for k in order
    )


def _list_row(path: Path) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in LIST_COLUMNS}
    row.update(run_id=path.name, path=str(path), reference=False, tuned=False)
    try:
        info = read_info(path)
        config = info.get("config") if isinstance(info.get("config"), dict) else {}
        row.update(
            run_id=str(info.get("run_id", path.name)),
            method=info.get("method"),
            status=display_status(info, path),
            seed=config.get("seed"),
            created=info.get("created"),
            steps=info.get("steps_done"),
            total_steps=info.get("total_steps"),
            reference=config.get("reference") is True,
            tuned=bool(config.get("tuned_from")),
            variant=variant(config),
        )
        ev = read_eval(path)
        for metric in KEY_EVAL_METRICS:
            row[metric] = eval_value(ev, metric)
    except (RunFormatError, OSError) as e:
        row["error"] = str(e)
    return row


def leaderboard(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per evaluated run: run_id, method, status, then every eval metric's agg_value.

    Columns are the metric names of eval.json (e.g. `forget_quality`, `model_utility`,
    `forget/prob`), so the table compares directly with other TOFU tools; `KEY_EVAL_METRICS`
    come first, the others follow in name order.
    """
    rows = []
    for run in runs:
        if not run.eval:
            continue
        row: dict[str, Any] = {"run_id": run.run_id, "method": run.method, "status": run.status}
        for metric in run.eval.get("metrics", {}):
            value = eval_value(run.eval, metric)
            if value is not None:
                row[metric] = value
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["run_id", "method", "status"])
    df = pd.DataFrame(rows)
    metrics = [c for c in df.columns if c not in ("run_id", "method", "status")]
    first = [m for m in KEY_EVAL_METRICS if m in metrics]
    rest = sorted(set(metrics) - set(first))
    return df[["run_id", "method", "status", *first, *rest]]


def attach_eval(path: str | os.PathLike[str], d: Mapping[str, Any]) -> None:
    """Write eval.json into an existing run folder (`atwu eval` on a finished run), atomically."""
    run_dir = Path(path)
    read_info(run_dir)  # a clear RunFormatError if this is not a run folder
    body = {"schema": SCHEMA, **d}
    _write_json(run_dir / EVAL_JSON, body)
