"""Unlearning methods: importing this package registers every method in `REGISTRY`.

Adding a method = one file in this folder + one name in the import below; the test suite loops over
the registry, so the new method is tested automatically.
"""

from . import (  # noqa: F401  (imported for their @register side effect)
    atwu,
    atwu_npo,
    atwu_simnpo,
    atwu_wga,
    grad_ascent,
    grad_diff,
    idk_dpo,
    npo,
    oracle_mask,
    rmu,
    satimp,
    seul,
    simnpo,
    tnpo,
    undial,
    wga,
)
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
