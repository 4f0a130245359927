"""Unlearning methods: importing this package registers every method in `REGISTRY`.

Adding a method = one file in this folder: every module here but `base` is imported below for its
`@register` side effect, and the test suite loops over the registry, so the new method is tested
automatically.
"""

import importlib
import pkgutil

from .base import (
    KNOWN_NEEDS,
    NEED_FIELDS,
    REGISTRY,
    ForgetBatch,
    MethodOutput,
    MethodSpec,
    get_method,
    register,
    resolve_hparams,
    validate_batch,
)

for _module in pkgutil.iter_modules(__path__):  # sorted by name, so the order is stable
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "KNOWN_NEEDS",
    "NEED_FIELDS",
    "REGISTRY",
    "ForgetBatch",
    "MethodOutput",
    "MethodSpec",
    "get_method",
    "register",
    "resolve_hparams",
    "validate_batch",
]
