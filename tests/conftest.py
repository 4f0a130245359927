"""Shared fixtures. No test touches the network: hub access is switched off before any import."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Reference evaluations and conflicts are cached by content hash; keep the tests' cache private.
os.environ["ATWU_CACHE"] = tempfile.mkdtemp(prefix="atwu-test-cache-")

from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
TOFU_DIR = REPO.parent / "shared" / "data" / "tofu"


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and far faster when other processes share the two
    cores (measured: 0.04 s vs 0.32 s per step with two threads under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_llama(
    vocab_size: int,
    *,
    hidden: int = 32,
    intermediate: int | None = None,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 64,
    seed: int | None = 0,
    **extra,
):
    """A randomly initialised small `LlamaForCausalLM` built from a config (nothing downloads)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if seed is not None:
        torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        **extra,
    )
    return LlamaForCausalLM(config)


@dataclass
class TinyLab:
    """A 6-author benchmark and a small model fine-tuned on it, saved as Hugging Face folders."""

    root: Path
    bench_dir: Path
    model_dir: Path  # fine-tuned on every author ("full")
    retain_model_dir: Path  # never saw the forget authors


@pytest.fixture(scope="session")
def tiny_lab(tmp_path_factory: pytest.TempPathFactory) -> TinyLab:
    """Built once per session (~10 s): small enough for fast tests, trained enough to forget."""
    import torch
    from transformers.utils import logging as hf_logging

    from atwu_core.config import FinetuneConfig, TinyModelConfig
    from atwu_core.data.benchmark import generate_benchmark
    from atwu_core.data.schema import save_benchmark
    from atwu_core.finetune import finetune
    from atwu_core.model import build_tiny_model, save_model, train_tokenizer
    from atwu_core.prepare import corpus_texts

    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_lab")
    bench = generate_benchmark(n_authors=6, forget_fraction=0.34, n_holdout=2, seed=1)
    save_benchmark(root / "benchmark", bench)
    tok = train_tokenizer(corpus_texts(bench), vocab_size=512)
    model_cfg = TinyModelConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_heads=4)
    ft = FinetuneConfig(epochs=12, lr=3e-3, batch_size=16, warmup_steps=10)
    for name, items in (
        ("full", [*bench.forget, *bench.retain, *bench.world_facts]),
        ("retain", [*bench.retain, *bench.world_facts]),
    ):
        torch.manual_seed(0)
        model = build_tiny_model(model_cfg, tok)
        finetune(model, tok, items, ft)
        save_model(model, tok, root / "models" / name)
    return TinyLab(
        root=root,
        bench_dir=root / "benchmark",
        model_dir=root / "models" / "full",
        retain_model_dir=root / "models" / "retain",
    )
