"""Validated configuration dataclasses.

Every field is checked in `__post_init__` with a `ValueError` that names the field and the value,
so a bad setting fails at start-up, before any model is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


class ConfigError(ValueError):
    """A setting that breaks its rule: "name=value is invalid: rule". `name`, `value` and `rule`
    are kept, so a form can word the message with its own label (the dashboard's launcher)."""

    def __init__(self, name: str, value: Any, rule: str) -> None:
        super().__init__(f"{name}={value!r} is invalid: {rule}")
        self.name, self.value, self.rule = name, value, rule


def _check(condition: bool, name: str, value: Any, rule: str) -> None:
    if not condition:
        raise ConfigError(name, value, rule)


@dataclass
class TinyModelConfig:
    """Architecture of the from-scratch Llama-style model (ENVIRONMENT.md, 'tiny model recipe')."""

    vocab_size: int = 1024
    hidden_size: int = 256
    intermediate_size: int = 672
    num_layers: int = 2
    num_heads: int = 4
    max_positions: int = 128

    def __post_init__(self) -> None:
        _check(
            self.vocab_size >= 300, "vocab_size", self.vocab_size, "must be >= 300 (bytes + merges)"
        )
        _check(self.hidden_size > 0, "hidden_size", self.hidden_size, "must be > 0")
        _check(
            self.hidden_size % self.num_heads == 0,
            "num_heads",
            self.num_heads,
            f"must divide hidden_size={self.hidden_size}",
        )
        _check(self.num_layers >= 1, "num_layers", self.num_layers, "must be >= 1")
        _check(self.max_positions >= 32, "max_positions", self.max_positions, "must be >= 32")


@dataclass
class FinetuneConfig:
    """How the full and retain models memorise the benchmark."""

    epochs: int = 30
    lr: float = 2e-3
    batch_size: int = 16
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        _check(self.lr > 0, "lr", self.lr, "must be > 0")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", self.min_lr_ratio, "must be in [0, 1]")


def _option(default: Any, help: str, **argparse_kw: Any) -> Any:
    """A run setting with its command-line help: `atwu unlearn/compare/tune` build their options
    from these fields (transformers.HfArgumentParser), so CLI and library share one default."""
    return field(default=default, metadata={"help": help, **argparse_kw})


@dataclass
class RunOptions:
    """The settings of a run that every command exposes as `--<name>` options."""

    model: str = _option("sample_data/models/full", "starting model: folder or hub id")
    data: str = _option(
        "sample_data/benchmark",
        "benchmark folder, tofu:<forget split>[+entity][@<folder|hf:locuslab/TOFU>] (+entity: "
        "the independent entity annotation as forget spans, docs/DATA.md), or "
        "rwku:<first10|name,name>@<folder|hf:jinzhuoran/RWKU> (docs/RWKU.md)",
    )
    retain_model: str | None = _option(
        None, "forget-quality reference model (default: 'retain' beside --model)"
    )
    gamma: float = _option(1.0, "forget loss weight")
    alpha: float = _option(1.0, "retain loss weight (ignored by methods with retain='none')")
    retain_loss: str = _option(
        "default", "retain term: the method's, nll or kl", choices=["default", "nll", "kl"]
    )
    # 1e-3 on the tiny model: 50 steps take span-token accuracy from 1.0 to < 0.1 with retain
    # accuracy > 0.98 (docs/RESULTS.md); 2e-4 barely moves a model memorised to loss 5e-4.
    lr: float = _option(1e-3, "learning rate (peak, after warm-up)")
    epochs: int = _option(10, "passes over the forget set")
    max_steps: int | None = _option(None, "stop after this many optimiser steps")
    batch_size: int = _option(8, "forget rows per optimiser step (all processes, micro-batches)")
    warmup_steps: int = _option(5, "linear warm-up steps")
    clip: float = _option(1.0, "gradient-norm clip")
    seed: int = _option(0, "seed of the run (data order, scorer init)")
    probe_examples: int = _option(8, "forget rows whose token weights are stored every snapshot")
    snapshot_every: int = _option(5, "steps between token-weight snapshots")
    device: str = _option("auto", "auto, cpu, cuda[:N] or mps")
    dtype: str = _option("auto", "auto: bf16 on CUDA", choices=["auto", "float32", "bfloat16"])
    save_model: bool = _option(False, "write the unlearned model into the run folder")
    conflict: bool = _option(
        True, "record each probe token's retain conflict at step 0 (a backward per token)"
    )
    trust_remote_code: bool = _option(False, "run a hub model's own code (off unless asked)")
    # Scale (docs/GPU.md). batch_size is the batch of one optimiser step over all processes and
    # accumulation micro-batches, so changing either leaves the optimisation the same.
    grad_accum: int = _option(1, "micro-batches per optimiser step")
    grad_checkpointing: bool = _option(False, "recompute activations in backward")
    lora_r: int = _option(0, "LoRA rank; 0 trains every weight")
    lora_alpha: float = _option(16.0, "LoRA scale numerator")
    lora_targets: str = _option("all-linear", '"all-linear" or module names, e.g. "q_proj,v_proj"')


@dataclass
class UnlearnConfig(RunOptions):
    """One unlearning run: a method, its hyperparameters (see `atwu methods`) and the options."""

    method: str = "atwu"
    hparams: dict[str, Any] = field(default_factory=dict)
    # The `atwu tune` study whose best config this run uses (None: the method's defaults). It
    # changes nothing in training; run.json keeps it, so every view can say "tuned".
    tuned_from: str | None = None

    def __post_init__(self) -> None:
        _check(self.gamma >= 0, "gamma", self.gamma, "must be >= 0")
        _check(self.alpha >= 0, "alpha", self.alpha, "must be >= 0")
        _check(
            self.retain_loss in ("default", "nll", "kl"),
            "retain_loss",
            self.retain_loss,
            "must be default, nll or kl",
        )
        _check(self.lr > 0, "lr", self.lr, "must be > 0")
        _check(self.epochs >= 1, "epochs", self.epochs, "must be >= 1")
        _check(
            self.max_steps is None or self.max_steps >= 1,
            "max_steps",
            self.max_steps,
            "must be >= 1",
        )
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _check(self.warmup_steps >= 0, "warmup_steps", self.warmup_steps, "must be >= 0")
        _check(self.clip > 0, "clip", self.clip, "must be > 0")
        _check(self.probe_examples >= 1, "probe_examples", self.probe_examples, "must be >= 1")
        _check(self.snapshot_every >= 1, "snapshot_every", self.snapshot_every, "must be >= 1")
        _check(
            self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:"),
            "device",
            self.device,
            "must be auto, cpu, cuda[:N] or mps",
        )
        _check(self.grad_accum >= 1, "grad_accum", self.grad_accum, "must be >= 1")
        _check(
            self.batch_size % self.grad_accum == 0,
            "batch_size",
            self.batch_size,
            f"must be a multiple of grad_accum={self.grad_accum}",
        )
        _check(self.lora_r >= 0, "lora_r", self.lora_r, "must be >= 0 (0 = no LoRA)")
        _check(self.lora_alpha > 0, "lora_alpha", self.lora_alpha, "must be > 0")
        _check(bool(self.lora_targets.strip()), "lora_targets", self.lora_targets, "is empty")
        _check(
            self.dtype in ("auto", "float32", "bfloat16"),
            "dtype",
            self.dtype,
            "must be auto, float32 or bfloat16",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UnlearnConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**d)
