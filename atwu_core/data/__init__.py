"""Data layer: the benchmark row schema, the built-in benchmark generator and the TOFU loader.

Torch-free on purpose (the dashboard imports it). Tokenisation and batching need torch and live in
`atwu_core.data.encode`, imported explicitly.
"""

from atwu_core.data.benchmark import generate_benchmark
from atwu_core.data.schema import (
    SCHEMA_VERSION,
    SPLITS,
    Benchmark,
    QAItem,
    Span,
    load_benchmark,
    read_json_objects,
    read_jsonl,
    save_benchmark,
    write_jsonl,
)
from atwu_core.data.tofu import TOFU_FORGET_CONFIGS, load_tofu

__all__ = [
    "SCHEMA_VERSION",
    "SPLITS",
    "TOFU_FORGET_CONFIGS",
    "Benchmark",
    "QAItem",
    "Span",
    "generate_benchmark",
    "load_benchmark",
    "load_tofu",
    "read_json_objects",
    "read_jsonl",
    "save_benchmark",
    "write_jsonl",
]
