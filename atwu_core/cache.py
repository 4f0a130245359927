"""The one home of on-disk caches: where they live and how their keys are made.

Fixed models (the full and retain models) are evaluated once per (model files, benchmark files,
settings): the key is a sha256 of their bytes, so any change to a file or a setting gives a fresh
entry. Converted GGUF models live here too. Root: `$ATWU_CACHE`, default `~/.cache/atwu`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from atwu_core.data import spec as data_spec
from atwu_core.fileio import atomic_write_text


def cache_root() -> Path:
    """`$ATWU_CACHE`, default `~/.cache/atwu`: cached evaluations and converted models."""
    return Path(os.environ.get("ATWU_CACHE", Path.home() / ".cache" / "atwu"))


def cache_dir() -> Path:
    return cache_root() / "evals"


def cached_value(model_dir: str, data: str, settings: dict, compute) -> dict[str, Any]:
    """`compute()` cached by content hash of (model, data, settings) when both are local folders.

    `data` is a benchmark folder or `<loader>:<selection>@<folder>` (e.g. `tofu:forget10@dir`):
    the folder's bytes and the selection both go into the key. Hub ids are never cached: their
    bytes are not known without a download.
    """
    parsed = data_spec.parse(data)
    folder, rest = parsed.local()
    if rest:
        settings = {**settings, "data": rest}
    if parsed.loader == "tofu":
        # TOFU's spans are derived at load time: a new span rule changes the benchmark while the
        # raw files (the hashed bytes) stay the same, so the rule is part of the key.
        from atwu_core.data.tofu import SPAN_RULE

        settings = {**settings, "span_rule": SPAN_RULE}
    if folder is not None and Path(model_dir).is_dir() and folder.is_dir():
        return cached_eval(model_dir, folder, cache_dir(), settings, compute)
    return compute()


def _hash_tree(h: Any, root: Path, label: str, skip: Path | None) -> None:
    """Feed every regular file under `root` (sorted relative paths, names and bytes) into `h`."""
    if not root.is_dir():
        raise ValueError(f"{label} {root} is not a directory")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not (skip is not None and p.resolve().is_relative_to(skip))
    )
    if not files:
        raise ValueError(f"{label} {root} holds no files")
    h.update(f"{label}\0".encode())
    for path in files:
        # Length-prefixed name and size: no two different trees can produce the same stream.
        rel = path.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(8, "little") + rel + path.stat().st_size.to_bytes(8, "little"))
        with path.open("rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(chunk)


def eval_cache_key(
    model_dir: str | os.PathLike[str],
    bench_dir: str | os.PathLike[str],
    settings: Mapping[str, Any],
    *,
    skip: str | os.PathLike[str] | None = None,
) -> str:
    """sha256 over the model files' bytes, the benchmark files' bytes and the settings (as sorted
    JSON). Files under `skip` (the cache itself, if it lives inside a hashed folder) are ignored."""
    try:
        settings_json = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise ValueError(f"settings must be JSON-serialisable ({err})") from None
    skip_path = Path(skip).resolve() if skip is not None else None
    h = hashlib.sha256()
    _hash_tree(h, Path(model_dir), "model_dir", skip_path)
    _hash_tree(h, Path(bench_dir), "bench_dir", skip_path)
    h.update(b"settings\0" + settings_json.encode())
    return h.hexdigest()


def cached_eval(
    model_dir: str | os.PathLike[str],
    bench_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    settings: Mapping[str, Any],
    compute: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """The eval of a fixed model (full or retain), computed once per (model, benchmark, settings).

    `compute()` runs the evaluation (typically a closure over `evaluate_model`) when no entry for
    `eval_cache_key(model_dir, bench_dir, settings)` exists in `cache_dir`; its JSON result is then
    stored atomically as `eval-<key>.json`. Any change to a model or benchmark file's bytes, or to
    `settings`, gives a new key and a fresh evaluation. A corrupted entry is recomputed.
    """
    cache = Path(cache_dir)
    key = eval_cache_key(model_dir, bench_dir, settings, skip=cache)
    path = cache / f"eval-{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass  # a torn or hand-damaged entry: fall through and recompute it
    result = compute()
    try:
        text = json.dumps(result, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"compute() must return a JSON-serialisable dict ({err})") from None
    atomic_write_text(path, text)
    return result


def method_code_hash(package: Path | None = None) -> str:
    """Content hash of the code that defines the method table (`atwu methods --json`): every file
    of `methods/`, the scorer's settings and the search-space descriptions. A saved table carries
    it, so a reader can tell a table made before a method was added or changed."""
    package = Path(__file__).resolve().parent if package is None else package
    files = [*sorted((package / "methods").glob("*.py")), package / "scorer_config.py"]
    files.append(package / "scorer.py")  # the scorer settings' search space
    files.append(package / "space.py")
    h = hashlib.sha256()
    for path in files:
        data = path.read_bytes()
        h.update(f"{path.name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]
