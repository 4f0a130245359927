"""Checks of the CLI's inputs that run before torch loads: one clear line naming what and where.

Every check raises ValueError (the CLI prints it as `atwu <command>: error: ...`, exit code 2).
No torch at import: only `check_device` imports it, and only for a non-CPU device.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path

from atwu_core.data import spec as data_spec

# A hub id is "name" or "org/name" (atwu_core.model); anything else is a path.
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


def check_number(option: str, value: float, *, positive: bool = True) -> None:
    """`--lr inf`, `--lr 0`: a finite number (> 0 when `positive`)."""
    if not math.isfinite(value) or (positive and value <= 0):
        need = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{option} must be {need}, got {value}")


def check_runs_dir(path: str | os.PathLike[str], option: str = "--runs-dir") -> None:
    """The folder runs are written to: a folder (or creatable) and writable. Creates nothing."""
    runs = Path(path)
    if runs.exists() and not runs.is_dir():
        raise ValueError(f"{option} {runs} is a file, not a folder; pass a folder for the runs")
    existing = runs
    while not existing.exists():  # the nearest folder that exists is where mkdir would write
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ValueError(f"{option} {runs}: {existing} is a file, so the folder cannot be made")
    where = "" if existing == runs else f" ({existing} is where it would be created)"
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {runs} is not writable{where}; pick another folder")
    try:  # os.access says yes to root everywhere: a real write answers for read-only mounts too
        fd, probe = tempfile.mkstemp(prefix=".atwu-write-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ValueError(
            f"{option} {runs} is not writable{where}: {reason}; pick another folder"
        ) from None


def is_model_path(spec: str) -> bool:
    """True for a local folder (or path-like spec); False for hub ids and GGUF specs."""
    if spec == "smollm2" or spec.startswith("gguf:"):
        return False
    return Path(spec).expanduser().exists() or not (
        _HUB_ID.fullmatch(spec) is not None and not spec.startswith(".")
    )


def check_model(spec: str, option: str = "--model") -> None:
    """A model folder exists and holds a config.json (hub ids and GGUF specs pass through)."""
    if not is_model_path(spec):
        return
    path = Path(spec).expanduser()
    if not path.exists():
        raise ValueError(
            f"{option}: model path {spec!r} does not exist; build the sample models with "
            "`atwu prepare` or pass a Hugging Face hub id"
        )
    if not path.is_dir():
        raise ValueError(f"{option} {spec} is a file; pass the model's folder")
    if not (path / "config.json").is_file():
        raise ValueError(
            f"{option} {spec}: the folder has no config.json, so it holds no saved model "
            "(a model folder is what `atwu prepare` or `--save-model` writes)"
        )


def check_data(spec: str, option: str = "--data") -> None:
    """A local benchmark folder has non-empty forget.jsonl and retain.jsonl (tofu:/rwku: specs
    are checked by their loaders)."""
    if data_spec.parse(spec).loader != "benchmark":
        return
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        what = "is a file, not a benchmark folder" if folder.exists() else "does not exist"
        raise ValueError(
            f"{option} {spec} {what}; pass a benchmark folder (`atwu prepare` builds one), "
            "tofu:<split> or rwku:<subjects>"
        )
    for name in ("forget.jsonl", "retain.jsonl"):
        file = folder / name
        if not file.is_file():
            raise ValueError(f"{option}: {file} is missing; a benchmark folder holds {name}")
        with open(file, "rb") as f:
            if not any(line.strip() for line in f):
                raise ValueError(f"{option}: {file} is empty (no rows)")


def check_device(device: str) -> None:
    """`--device cuda` on a machine (or torch build) without CUDA: say so before any loading."""
    if device in ("auto", "cpu"):
        return
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"--device {device}: not a device name (auto, cpu, cuda, cuda:1, mps)"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: this torch ({torch.__version__}) sees no CUDA GPU; "
                "use --device cpu (or auto)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")
