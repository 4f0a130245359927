"""Scaling a run up: LoRA adapters, gradient checkpointing and data-parallel processes.

Nothing here changes what a run computes, only where and how cheaply:

- LoRA (`peft`): only the adapter matrices train; the frozen base doubles as the reference model
  (adapters switched off), so methods that need one cost no second copy of the weights.
- Gradient checkpointing: activations are recomputed in the backward pass instead of stored.
- Data parallel (`accelerate` / `torchrun`): every process draws the same global batch from the
  same seeded stream and trains on its own slice; DDP averages the gradients, so N processes with
  batch B take the same steps as 1 process with B split into N accumulation micro-batches.

`peft` and `accelerate` are the `scale` extra: they are imported only when a run asks for them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def _require(package: str) -> None:
    try:
        __import__(package)
    except ImportError:
        raise ValueError(
            f"this run needs `{package}`: pip install -e '.[scale]' (installs peft and accelerate)"
        ) from None


# --------------------------------------------------------------------------------------------
# LoRA


def apply_lora(model: torch.nn.Module, r: int, alpha: float, targets: str) -> torch.nn.Module:
    """Wrap `model` with rank-`r` LoRA adapters on `targets` ("all-linear" or "q_proj,v_proj").

    Dropout is 0 so the adapters-off model is exactly the base (the reference model relies on it).
    """
    _require("peft")
    from peft import LoraConfig, get_peft_model

    modules: str | list[str] = targets if targets == "all-linear" else targets.split(",")
    try:
        return get_peft_model(
            model,
            LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=modules),
        )
    except ValueError as err:
        raise ValueError(f"lora_targets={targets!r}: {' '.join(str(err).split())}") from err


def merge_adapter(model: torch.nn.Module, adapter_dir: str | os.PathLike[str]) -> torch.nn.Module:
    """`model` with a saved LoRA adapter (peft's safetensors folder) merged into its weights."""
    _require("peft")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()


class AdaptersOff(torch.nn.Module):
    """The reference model of a LoRA run: the same module with its adapters switched off.

    The base weights are frozen, so this *is* the starting model, without a second copy in memory.
    """

    def __init__(self, peft_model: torch.nn.Module) -> None:
        super().__init__()
        self.peft_model = peft_model

    @torch.no_grad()
    def forward(self, **inputs: Any) -> Any:
        with self.peft_model.disable_adapter():
            return self.peft_model(**inputs)


def enable_checkpointing(model: torch.nn.Module) -> None:
    """Recompute activations in backward. Non-reentrant, so it works with frozen inputs (LoRA)
    and with DDP, and `use_cache` is off (a KV cache is useless while training)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False


# --------------------------------------------------------------------------------------------
# Data parallel


def split_batch(rows: Sequence[T], rank: int, world: int, accum: int) -> list[list[T]]:
    """This process's `accum` micro-batches of one global batch.

    The batch is dealt into `world x accum` interleaved chunks (chunk c = rows[c::world*accum]) and
    process `rank` takes chunks rank, rank + world, ... So 2 processes x 1 micro-batch train on
    exactly the chunks of 1 process x 2 micro-batches: the runs match up to float rounding.
    The caller guarantees `len(rows) % (world * accum) == 0`, so every process runs the same number
    of equally sized micro-batches (DDP's collectives need that).
    """
    n = world * accum
    return [list(rows[c::n]) for c in range(rank, n, world)]


class DataParallel:
    """One process of a data-parallel run started by `accelerate launch` or `torchrun`."""

    def __init__(self, cpu: bool, find_unused: bool = False) -> None:
        _require("accelerate")
        from accelerate import Accelerator, DistributedDataParallelKwargs

        # RMU-style losses read an intermediate layer: the layers above it get no gradient, and
        # DDP must be told to expect that.
        ddp = DistributedDataParallelKwargs(find_unused_parameters=find_unused)
        self.accelerator = Accelerator(cpu=cpu, kwargs_handlers=[ddp])
        self.rank = self.accelerator.process_index
        self.world = self.accelerator.num_processes
        self.device = self.accelerator.device
        self.is_main = self.accelerator.is_main_process

    @staticmethod
    def from_env(device: str, find_unused: bool = False) -> DataParallel | None:
        """A `DataParallel` when launched with more than one process, else None."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        cpu = device == "cpu" or not torch.cuda.is_available()
        return DataParallel(cpu=cpu, find_unused=find_unused)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DDP around `model`; it broadcasts rank 0's weights, so all processes start equal."""
        return self.accelerator.prepare_model(model)

    def no_sync(self, model: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce on accumulation micro-batches (all but the last)."""
        return contextlib.nullcontext() if sync else self.accelerator.no_sync(model)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over processes (logged scalars, the scorer's gradients)."""
        return self.accelerator.reduce(values.to(self.device), reduction="mean")

    def mean_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Average `.grad` over processes in place: the scorer stays identical everywhere."""
        for p in params:
            if p.grad is not None:
                p.grad.copy_(self.mean(p.grad))


def no_sync_unless(
    parallel: DataParallel | None, model: torch.nn.Module, sync: bool
) -> contextlib.AbstractContextManager:
    """`parallel.no_sync(model, sync)`, or nothing to skip in a single-process run."""
    return contextlib.nullcontext() if parallel is None else parallel.no_sync(model, sync)
