"""The method registry: one decorator, one place.

A method is a pure function of per-token tensors. Its keyword-only arguments with defaults are its
hyperparameter schema, so `resolve_hparams` can reject a misspelt name at start-up and list the
allowed ones. The training loop does every forward pass once and hands the method a `ForgetBatch`
holding exactly the fields the method declared in `needs`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from atwu_core.settings import cast_setting

from ..space import validate_space

# Everything a method may ask the training loop for. Anything not listed is always present.
KNOWN_NEEDS = frozenset(
    {
        "ref_logp",  # per-token log-probs under the frozen reference model
        "logits",  # full model logits (B, T, V) at the answer positions
        "ref_logits",  # reference logits (B, T, V)
        "hidden",  # model hidden states at `layer` (B, T, D), in the graph (RMU)
        "ref_hidden",  # reference hidden states at `layer` (B, T, D)
        "scorer",  # learned ATWU token weights g (B, T), detached
        "alt",  # log-probs of an "I don't know" answer, and under the reference (IdkDPO)
        "span_mask",  # ground-truth forget-span labels (B, T) (oracle only)
        # per-token answer log-probs (B, T) under the current model with the question masked
        # (prompt tokens but the last replaced by pad), detached (TokenUnlearn's Δ)
        "ctx_masked_logp",
    }
)
NEEDS_REFERENCE = frozenset({"ref_logp", "ref_logits", "ref_hidden", "alt"})
# Which `ForgetBatch` fields each need fills: the loop fills them, `validate_batch` checks them.
NEED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "ref_logp": ("ref_logp",),
    "logits": ("logits",),
    "ref_logits": ("ref_logits",),
    "hidden": ("hidden",),
    "ref_hidden": ("ref_hidden",),
    "scorer": ("scorer_weights",),
    "alt": ("alt_logp", "alt_mask", "alt_ref_logp"),
    "span_mask": ("span_mask",),
    "ctx_masked_logp": ("ctx_masked_logp",),
}


@dataclass
class ForgetBatch:
    """Per-token tensors of one forget batch, aligned on target positions.

    Position t holds the prediction of target token y_t (labels already shifted), so
    `logp[b, t] = log p_θ(y_t | x, y_<t)`. `mask` is 1 on answer tokens and 0 on prompt and padding:
    every loss is a masked mean over it.
    """

    logp: torch.Tensor  # (B, T) float, in the model graph
    mask: torch.Tensor  # (B, T) float {0, 1}
    labels: torch.Tensor | None = None  # (B, T) long target ids
    ref_logp: torch.Tensor | None = None  # (B, T) detached
    logits: torch.Tensor | None = None  # (B, T, V) in graph
    ref_logits: torch.Tensor | None = None  # (B, T, V) detached
    hidden: torch.Tensor | None = None  # (B, T, D) in graph
    ref_hidden: torch.Tensor | None = None  # (B, T, D) detached
    scorer_weights: torch.Tensor | None = None  # (B, T) in (0, 1), detached
    span_mask: torch.Tensor | None = None  # (B, T) float {0, 1}
    alt_logp: torch.Tensor | None = None  # (B, T') log-probs of the alternative answer, in graph
    alt_mask: torch.Tensor | None = None  # (B, T')
    alt_ref_logp: torch.Tensor | None = None  # (B, T') detached
    ctx_masked_logp: torch.Tensor | None = None  # (B, T) detached, question masked in the prompt


@dataclass
class MethodOutput:
    """A method's forget loss and the weight it implicitly gives each token.

    `token_weights` (B, T), detached, is what the run store records and the dashboard shows:
    1 for plain ascent, p^β for WGA, the learned g for ATWU, the mask for SEUL, and so on.
    `parts` are extra scalars worth logging (e.g. `{"npo/log_ratio": ...}`).
    """

    loss: torch.Tensor  # scalar
    token_weights: torch.Tensor  # (B, T)
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fn: Callable[..., MethodOutput]
    needs: frozenset[str]
    retain: str  # "nll" | "kl" | "none" | "hidden": the retain term the loop adds by default
    hparams: Mapping[str, Any]  # name -> default
    summary: str  # one line, shown by `atwu methods` and in the dashboard
    # name -> dimension (atwu_core.space) that `atwu tune` searches; a subset of `hparams`
    search: Mapping[str, Any] = field(default_factory=dict)
    # What the loop would otherwise have to know about particular methods:
    alt_answers: tuple[str, ...] = ()  # preferred answers paired with forget questions ("alt")
    # retain="hidden": (hidden, ref_hidden, mask) -> L_r on the states at `layer_hparam`'s layer
    retain_term: Callable[..., torch.Tensor] | None = None
    layer_hparam: str | None = None  # the hyperparameter naming the layer of `batch.hidden`

    @property
    def needs_reference(self) -> bool:
        return bool(self.needs & NEEDS_REFERENCE) or self.retain in ("kl", "hidden")

    def hidden_layer(self, hparams: Mapping[str, Any]) -> int:
        """Index into `outputs.hidden_states` for `batch.hidden`: the method's layer or the last."""
        return int(hparams[self.layer_hparam]) if self.layer_hparam else -1


REGISTRY: dict[str, MethodSpec] = {}


def validate_batch(
    batch: ForgetBatch, needs: frozenset[str] | tuple[str, ...], method: str
) -> None:
    """Check that `batch` holds what `needs` declares, with shapes aligned on (B, T).

    Raises ValueError naming the method, the field and the offending shape or value, so a loop bug
    fails at the first step instead of as a broadcasting error deep inside a loss.
    """

    def fail(msg: str) -> None:
        raise ValueError(f"method {method!r}: ForgetBatch.{msg}")

    if batch.logp.dim() != 2:
        fail(f"logp must be (B, T), got shape {tuple(batch.logp.shape)}")
    bt = tuple(batch.logp.shape)
    if tuple(batch.mask.shape) != bt:
        fail(f"mask has shape {tuple(batch.mask.shape)}, logp has {bt}")
    if not batch.mask.is_floating_point():
        fail(f"mask must be a float tensor of 0/1, got dtype {batch.mask.dtype}")
    if not bool(((batch.mask == 0) | (batch.mask == 1)).all()):
        fail("mask must hold only 0 and 1")
    for need in needs:
        for name in NEED_FIELDS[need]:
            if getattr(batch, name) is None:
                fail(f"{name} is None, but the method needs {need!r}")
    for name in ("labels", "ref_logp", "scorer_weights", "span_mask", "ctx_masked_logp"):
        value = getattr(batch, name)
        if value is not None and tuple(value.shape) != bt:
            fail(f"{name} has shape {tuple(value.shape)}, expected {bt} like logp")
    for name in ("logits", "ref_logits", "hidden", "ref_hidden"):
        value = getattr(batch, name)
        if value is not None and (value.dim() != 3 or tuple(value.shape[:2]) != bt):
            fail(f"{name} has shape {tuple(value.shape)}, expected {bt} + (V or D,)")
    if (
        batch.logits is not None
        and batch.ref_logits is not None
        and batch.logits.shape != batch.ref_logits.shape
    ):
        fail(
            f"ref_logits shape {tuple(batch.ref_logits.shape)} != logits shape "
            f"{tuple(batch.logits.shape)}"
        )
    if batch.scorer_weights is not None:
        w = batch.scorer_weights[batch.mask > 0]  # values off the answer are never read
        if not bool(((w >= 0) & (w <= 1)).all()):
            fail("scorer_weights must lie in [0, 1] on answer tokens (they are sigmoid outputs)")
    alt = [getattr(batch, n) for n in NEED_FIELDS["alt"]]
    present = [a for a in alt if a is not None]
    if present:
        shape = tuple(present[0].shape)
        if len(shape) != 2 or shape[0] != bt[0] or any(tuple(a.shape) != shape for a in present):
            fail(
                f"alt_logp/alt_mask/alt_ref_logp must share one shape (B, T') with B = {bt[0]}, "
                f"got {[tuple(a.shape) for a in present]}"
            )


def register(
    name: str,
    *,
    needs: tuple[str, ...] = (),
    retain: str = "nll",
    search: Mapping[str, Any] | None = None,
    alt_answers: tuple[str, ...] = (),
    retain_term: Callable[..., torch.Tensor] | None = None,
    layer_hparam: str | None = None,
) -> Callable[[Callable[..., MethodOutput]], Callable[..., MethodOutput]]:
    """Register `fn(batch: ForgetBatch, *, hparam=default, ...) -> MethodOutput` as a method.

    `search` maps hyperparameter names to the ranges `atwu tune` searches (`atwu_core.space`:
    Float, LogFloat, Int, Choice); it may only name the method's own hyperparameters. Names left
    out keep their default while tuning.

    The registered (and returned) function checks the batch with `validate_batch` before running,
    so every method gets the same clear error for a missing or misshapen input.
    """

    def wrap(fn: Callable[..., MethodOutput]) -> Callable[..., MethodOutput]:
        unknown = set(needs) - KNOWN_NEEDS
        if unknown:
            raise ValueError(f"method {name!r} needs unknown inputs {sorted(unknown)}")
        if retain not in ("nll", "kl", "none", "hidden"):
            raise ValueError(f"method {name!r}: retain must be nll/kl/none/hidden, not {retain!r}")
        if (retain == "hidden") != (retain_term is not None):
            raise ValueError(f"method {name!r}: retain='hidden' goes with retain_term, and only it")
        if ("alt" in needs) != bool(alt_answers):
            raise ValueError(f"method {name!r}: need 'alt' goes with alt_answers, and only it")
        if name in REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        params = inspect.signature(fn).parameters.values()
        hparams = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        missing = [k for k, v in hparams.items() if v is inspect.Parameter.empty]
        if missing:
            raise ValueError(f"method {name!r}: hyperparameters {missing} need defaults")
        validate_space(f"method {name!r}", search or {}, hparams)
        if layer_hparam is not None and layer_hparam not in hparams:
            raise ValueError(f"method {name!r}: layer_hparam {layer_hparam!r} is no hyperparameter")
        doc = (fn.__doc__ or "").strip().splitlines()
        frozen_needs = frozenset(needs)

        @functools.wraps(fn)
        def checked(batch: ForgetBatch, **hp: Any) -> MethodOutput:
            validate_batch(batch, frozen_needs, name)
            return fn(batch, **hp)

        REGISTRY[name] = MethodSpec(
            name=name,
            fn=checked,
            needs=frozen_needs,
            retain=retain,
            hparams=hparams,
            summary=doc[0] if doc else name,
            search=dict(search or {}),
            alt_answers=tuple(alt_answers),
            retain_term=retain_term,
            layer_hparam=layer_hparam,
        )
        return checked

    return wrap


def get_method(name: str) -> MethodSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def resolve_hparams(name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults merged with `overrides`, cast to the default's type; unknown names are an error."""
    spec = get_method(name)
    unknown = set(overrides) - set(spec.hparams)
    if unknown:
        allowed = ", ".join(f"{k}={v!r}" for k, v in spec.hparams.items()) or "(none)"
        raise ValueError(
            f"method {name!r} has no hyperparameter {', '.join(sorted(unknown))}; "
            f"allowed: {allowed}"
        )
    resolved = dict(spec.hparams)
    for key, value in overrides.items():
        kind = type(spec.hparams[key])
        resolved[key] = cast_setting(value, kind, f"method {name!r}: hyperparameter {key}")
    return resolved
