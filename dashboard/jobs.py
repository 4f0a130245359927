"""Background unlearning runs launched from the dashboard, and the method table they offer.

The dashboard never imports torch: a run is `python -m atwu_core.cli unlearn ...` in a subprocess
whose stdout/stderr go to a log file next to the runs. The method table is
`dashboard/methods.json`, the committed output of `atwu methods --json`, so the form is ready at
start-up without torch. When that file is missing or was made from other method code (its
`source_hash`, `atwu_core.cache.method_code_hash`), the dashboard runs the command in a
subprocess instead and caches the table as JSON in the runs folder. `ATWU_CLI_MODULE` swaps
the CLI module and `ATWU_METHODS_FILE` the table (the tests use
fast stand-ins).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atwu_core.cache import method_code_hash
from atwu_core.cancel import CANCEL_ENV
from atwu_core.config import UnlearnConfig

ROOT = Path(__file__).resolve().parents[1]
METHODS_CACHE = ".atwu_methods.json"
METHODS_FILE = Path(__file__).resolve().with_name("methods.json")
REGENERATE = "atwu methods --json > dashboard/methods.json"
# The CLI's defaults (`atwu unlearn` builds this config): the launcher form starts on them.
DEFAULTS = UnlearnConfig()


def cli_module() -> str:
    return os.environ.get("ATWU_CLI_MODULE", "atwu_core.cli")


def _code_hash() -> str:
    """Hash of the method code this dashboard runs: a saved table made from other code is stale."""
    return method_code_hash()


def normalise_methods(raw: Any) -> dict[str, dict[str, Any]]:
    """`{name: {"summary": str, "hparams": {name: default}}}` from `atwu methods --json` output.

    Accepts a list of method objects, `{"methods": [...]}`, or a mapping name -> object. A
    method's `scorer` settings (ATWU's scorer, METHOD.md §1) share the `--set` namespace, so they
    join its hyperparameters.
    """
    if isinstance(raw, Mapping) and "methods" in raw:
        raw = raw["methods"]
    items = raw.items() if isinstance(raw, Mapping) else ((m.get("name"), m) for m in raw)
    out = {}
    for name, spec in items:
        if not isinstance(name, str) or not isinstance(spec, Mapping):
            raise ValueError(f"method table entry {name!r}: expected a name and an object")
        hparams, scorer = spec.get("hparams", {}), spec.get("scorer") or {}
        if not isinstance(hparams, Mapping) or not isinstance(scorer, Mapping):
            raise ValueError(f"method {name!r}: 'hparams' and 'scorer' must be objects")
        out[name] = {"summary": str(spec.get("summary", "")), "hparams": {**hparams, **scorer}}
    if not out:
        raise ValueError("the method table is empty")
    return out


def methods_file() -> Path:
    return Path(os.environ.get("ATWU_METHODS_FILE", METHODS_FILE))


def read_bundled_methods(path: Path | None = None) -> dict[str, dict[str, Any]] | None:
    """The committed method table (`dashboard/methods.json`), or None when the file is missing or
    was made from other method code (a method added or changed since: its `source_hash` differs),
    so a new method file shows up without regenerating the table by hand.

    Raises ValueError naming the file when it exists but is not a valid table.
    """
    path = methods_file() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({e})") from None
    try:
        raw = json.loads(text)
        table = normalise_methods(raw)
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(
            f"{path}: not a valid method table ({e}); regenerate it with `{REGENERATE}`"
        ) from None
    fresh = isinstance(raw, Mapping) and raw.get("source_hash") == _code_hash()
    return table if fresh else None


def read_methods(runs_dir: Path) -> dict[str, dict[str, Any]] | None:
    """The cached method table, or None when absent, unreadable or older than the method code."""
    try:
        cached = json.loads((runs_dir / METHODS_CACHE).read_text())
        if cached.get("source_hash") != _code_hash():
            return None
        return normalise_methods(cached["methods"])
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None


def refresh_methods(runs_dir: Path, timeout: float = 120.0) -> dict[str, dict[str, Any]]:
    """Run `atwu methods --json` in a subprocess (it imports torch) and cache its table.

    Raises ValueError with the command's stderr tail when it fails.
    """
    cmd = [sys.executable, "-m", cli_module(), "methods", "--json"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ValueError(f"`{' '.join(cmd)}` did not answer within {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise ValueError(f"`{' '.join(cmd)}` exited with code {done.returncode}:\n{tail}")
    try:
        methods = normalise_methods(json.loads(done.stdout))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"`{' '.join(cmd)}` printed no valid method table: {e}") from None
    write_methods(runs_dir, methods)
    return methods


def write_methods(runs_dir: Path, methods: Mapping[str, Any]) -> None:
    """Cache a method table (as `read_methods` expects it) in `runs_dir`."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    payload = {"source_hash": _code_hash(), "methods": methods}
    tmp = runs_dir / f"{METHODS_CACHE}.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, runs_dir / METHODS_CACHE)


def check_overrides(overrides: Mapping[str, Any]) -> list[str]:
    """Problems with hyperparameter values the dashboard can see before launching."""
    problems = []
    for name, value in overrides.items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{name}={value} is not a finite number")
        if isinstance(value, str) and ("\n" in value or not value.strip()):
            problems.append(f"{name}={value!r} must be a non-empty single line")
    return problems


@dataclass(frozen=True)
class Launch:
    """What the user chose in the "Run a new experiment" form."""

    method: str
    hparams: Mapping[str, Any]  # only the values that differ from the defaults
    max_steps: int
    seed: int = DEFAULTS.seed
    lr: float = DEFAULTS.lr
    alpha: float = DEFAULTS.alpha  # retain loss weight
    gamma: float = DEFAULTS.gamma  # forget loss weight
    evaluate: bool = False
    model: str | None = None  # model folder or spec; None = the CLI's default (sample models)
    data: str | None = None  # benchmark folder or tofu: spec; None = the CLI's default
    batch_size: int | None = None  # forget rows per step; None = the CLI's default
    conflict: bool = True  # False: skip the probe tokens' retain conflicts (slow on real models)
    lora_r: int = 0  # LoRA rank; 0 trains every weight


def check_config(launch: Launch) -> UnlearnConfig:
    """The run's `UnlearnConfig`, built as `atwu unlearn` builds it, so a value the CLI would
    refuse is refused before launching; raises `atwu_core.config.ConfigError` naming the field.
    The model and data are checked by the launched CLI (and the form, for folders)."""
    sized = {} if launch.batch_size is None else {"batch_size": int(launch.batch_size)}
    return UnlearnConfig(
        method=launch.method,
        hparams=dict(launch.hparams),
        lr=float(launch.lr),
        alpha=float(launch.alpha),
        gamma=float(launch.gamma),
        seed=int(launch.seed),
        max_steps=int(launch.max_steps),
        conflict=launch.conflict,
        lora_r=int(launch.lora_r),
        **sized,
    )


def build_command(launch: Launch, runs_dir: Path) -> list[str]:
    """`python -m atwu_core.cli unlearn --method M --set k=v ... --runs-dir R --max-steps N ...`."""
    cmd = [sys.executable, "-m", cli_module(), "unlearn", "--method", launch.method]
    for name, value in launch.hparams.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ["--set", f"{name}={text}"]
    cmd += ["--runs-dir", str(runs_dir), "--max-steps", str(int(launch.max_steps))]
    cmd += ["--seed", str(int(launch.seed)), "--lr", repr(float(launch.lr))]
    cmd += ["--alpha", repr(float(launch.alpha)), "--gamma", repr(float(launch.gamma))]
    cmd += ["--model", launch.model] if launch.model else []
    cmd += ["--data", launch.data] if launch.data else []
    cmd += ["--batch-size", str(int(launch.batch_size))] if launch.batch_size else []
    cmd += [] if launch.conflict else ["--no-conflict"]
    cmd += ["--lora-r", str(int(launch.lora_r))] if launch.lora_r else []
    return [*cmd, "--eval"] if launch.evaluate else cmd


@dataclass
class Job:
    """One launched run: the process, its log file and the run folder it created (once found)."""

    proc: subprocess.Popen
    cmd: list[str]
    log_path: Path
    runs_dir: Path
    existing: frozenset[str]
    started: float = field(default_factory=time.time)
    run_path: Path | None = None
    cancelled: bool = False
    cancel_path: Path | None = None  # the cancel file the run polls ($ATWU_CANCEL_FILE)

    def returncode(self) -> int | None:
        return self.proc.poll()

    def find_run(self) -> Path | None:
        """The run folder this job created: the newest folder absent before the launch."""
        if self.run_path is None:
            try:
                new = [
                    p
                    for p in self.runs_dir.iterdir()
                    if p.is_dir() and p.name not in self.existing and (p / "run.json").exists()
                ]
            except OSError:
                new = []
            if new:
                self.run_path = max(new, key=lambda p: p.stat().st_mtime)
        return self.run_path

    def cancel(self) -> None:
        """Write the cancel file (the training loop polls it every step) and send SIGTERM (which
        the CLI handles explicitly, so it also stops evaluation or loading): the run records
        status "interrupted" and exits. Neither depends on SIGINT, which a dashboard started from
        a background job passes on as ignored."""
        if self.proc.poll() is None:
            if self.cancel_path is not None:
                with contextlib.suppress(OSError):  # SIGTERM still stops it
                    self.cancel_path.write_text("cancelled from the dashboard\n")
            self.proc.send_signal(signal.SIGTERM)
            self.cancelled = True

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(log {self.log_path} cannot be read: {e})"
        return "\n".join(text.rstrip().splitlines()[-lines:])


def start_job(launch: Launch, runs_dir: Path) -> Job:
    """Launch the run in the background; output goes to `<runs_dir>/<time>-<method>.log`."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    existing = frozenset(p.name for p in runs_dir.iterdir() if p.is_dir())
    cmd = build_command(launch, runs_dir)
    log_path = runs_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{launch.method}.log"
    cancel_path = log_path.with_suffix(".cancel")
    cancel_path.unlink(missing_ok=True)
    env = {**os.environ, CANCEL_ENV: str(cancel_path)}
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
    return Job(
        proc=proc,
        cmd=cmd,
        log_path=log_path,
        runs_dir=runs_dir,
        existing=existing,
        cancel_path=cancel_path,
    )
