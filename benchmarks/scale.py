"""Memory and step time of full fine-tuning vs LoRA vs gradient checkpointing (issue: real models).

    python benchmarks/scale.py [--hidden 512] [--layers 8] [--steps 6] [--method npo]

Builds a randomly initialised Llama (default ~26 M parameters, large enough that weights,
gradients and Adam states dominate memory) with the sample benchmark's tokenizer, then runs the
same short unlearning job once per setting, each in a fresh process so peak RSS is its own. NPO
is the default method because it reads a reference model: a full run keeps a frozen copy, a LoRA
run switches its adapters off instead. Prints peak RSS above the loaded-model baseline and the
mean step time; settings run one after the other, so compare them within one invocation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = {
    "full": {},
    "full + checkpointing": {"grad_checkpointing": True},
    "LoRA r=16": {"lora_r": 16, "lora_alpha": 32.0},
    "LoRA r=16 + checkpointing": {"lora_r": 16, "lora_alpha": 32.0, "grad_checkpointing": True},
}

CHILD = """
import json, resource, sys, torch
torch.set_num_threads(1)
from atwu_core.cli import _quiet_transformers
from atwu_core.config import UnlearnConfig
from atwu_core.model import load_model
from atwu_core.runs import load_run
from atwu_core.train import unlearn
_quiet_transformers()
args = json.loads(sys.argv[1])
load_model(args["model"])  # the baseline: python + torch + one copy of the model
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cfg = UnlearnConfig(**args["config"])
metrics = load_run(unlearn(cfg, runs_dir=args["runs"])).metrics
t = metrics["time_s"].tolist()[1:-1]
steps = [b - a for a, b in zip(t, t[1:])]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_mb": (peak - base) / 1024, "step_s": sum(steps) / len(steps)}))
"""


def build_model(root: Path, hidden: int, layers: int) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from atwu_core.data.schema import load_benchmark
    from atwu_core.model import save_model, train_tokenizer
    from atwu_core.prepare import corpus_texts

    tok = train_tokenizer(corpus_texts(load_benchmark("sample_data/benchmark")), 1024)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=int(hidden * 2.6875),
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    save_model(model, tok, root / "model")
    return root / "model", sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--method", default="npo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, n_params = build_model(Path(tmp), args.hidden, args.layers)
        print(
            f"random Llama: {n_params / 1e6:.1f} M parameters, method {args.method}, "
            f"{args.steps} steps, batch 8"
        )
        print(f"{'setting':<28} {'peak RSS above model (MB)':>26} {'step (s)':>9}")
        for name, extra in SETTINGS.items():
            config = {
                "method": args.method,
                "model": str(model_dir),
                "data": "sample_data/benchmark",
                "max_steps": args.steps,
                "snapshot_every": 10_000,
                "conflict": False,
                "device": "cpu",
                **extra,
            }
            payload = json.dumps({"model": str(model_dir), "config": config, "runs": tmp})
            out = subprocess.run(
                [sys.executable, "-c", CHILD, payload], capture_output=True, text=True, check=True
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name:<28} {result['extra_mb']:>26.0f} {result['step_s']:>9.3f}")


if __name__ == "__main__":
    main()
