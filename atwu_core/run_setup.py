"""Setting a run up: its method and scorer settings from one `--set` namespace, its data, the
probe rows, and the models (LoRA-wrapped, with a reference model only when needed)."""

from __future__ import annotations

import copy
import platform
from collections.abc import Sequence
from typing import Any

import torch

import atwu_core
from atwu_core.config import UnlearnConfig
from atwu_core.data import spec as data_spec
from atwu_core.data.schema import Benchmark, QAItem
from atwu_core.methods import MethodSpec, resolve_hparams
from atwu_core.model import load_model
from atwu_core.scale import AdaptersOff, DataParallel, apply_lora, enable_checkpointing
from atwu_core.scorer import ScorerConfig


def split_hparams(spec: MethodSpec, overrides: dict[str, Any]) -> tuple[dict, ScorerConfig | None]:
    """Method hyperparameters and, for scorer methods, the scorer's (one `--set` namespace)."""
    if "scorer" not in spec.needs:
        return resolve_hparams(spec.name, overrides), None
    scorer_fields = ScorerConfig.__dataclass_fields__
    scorer_over = {k: v for k, v in overrides.items() if k in scorer_fields}
    method_over = {k: v for k, v in overrides.items() if k not in scorer_fields}
    try:
        hparams = resolve_hparams(spec.name, method_over)
    except ValueError as err:
        raise ValueError(f"{err}; scorer settings: {', '.join(scorer_fields)}") from None
    return hparams, ScorerConfig.from_overrides(scorer_over)


def load_data(data: str) -> Benchmark:
    """The benchmark a `--data` string names (atwu_core.data.spec)."""
    return data_spec.load(data)


def pick_probe(items: Sequence[QAItem], n: int) -> list[QAItem]:
    """Evenly spaced forget rows, so every forget author and question type shows up."""
    n = min(n, len(items))
    return [items[round(i * (len(items) - 1) / max(1, n - 1))] for i in range(n)]


def environment(device: torch.device, processes: int = 1) -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "processes": str(processes),
        "atwu_core": atwu_core.__version__,
        "platform": platform.platform(),
    }


def load_for_training(
    config: UnlearnConfig, needs_ref: bool, parallel: DataParallel | None
) -> tuple[torch.nn.Module, Any, torch.nn.Module | None, torch.device]:
    """The model to train (LoRA-wrapped if asked), its tokenizer, the frozen reference model (only
    for methods that read one) and the device."""
    model, tokenizer = load_model(
        config.model,
        device=str(parallel.device) if parallel else config.device,
        dtype=config.dtype,
        trust_remote_code=config.trust_remote_code,
    )
    device = next(model.parameters()).device
    ref = None
    if needs_ref and not config.lora_r:
        # A full copy doubles memory; a LoRA run gets its reference for free below.
        ref = copy.deepcopy(model).eval().requires_grad_(False)
    if config.grad_checkpointing:
        enable_checkpointing(model)
    if config.lora_r:
        model = apply_lora(model, config.lora_r, config.lora_alpha, config.lora_targets)
        ref = AdaptersOff(model) if needs_ref else None
    return model, tokenizer, ref, device
