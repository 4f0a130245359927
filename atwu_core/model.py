"""Models and tokenizers: the tiny from-scratch Llama, and loading any Hugging Face causal LM.

The tiny model is a standard `LlamaForCausalLM` saved as a standard Hugging Face folder
(safetensors + config + tokenizer with a chat template), so any Hugging Face tool can load it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from atwu_core.config import TinyModelConfig
from atwu_core.gguf import gguf_folder, is_gguf_spec

SPECIAL_TOKENS = ("<|pad|>", "<|user|>", "<|assistant|>", "<|end|>")
# One user turn, then the assistant's answer ends with <|end|> (the eos). The model is trained on
# exactly what `apply_chat_template(..., add_generation_prompt=True)` produces.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}"
    "{% if message['role'] != 'user' or not loop.last %}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained in-process (< 0.1 s on the benchmark), with offsets and a template."""
    tok = Tokenizer(models.BPE())
    # Byte-level so any text round-trips; no prefix space so an answer tokenised on its own keeps
    # offsets that start at character 0.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|pad|>",
        eos_token="<|end|>",
        bos_token=None,
        unk_token=None,
        model_max_length=128,
        padding_side="right",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(cfg: TinyModelConfig, tokenizer: PreTrainedTokenizerBase) -> LlamaForCausalLM:
    """A small Llama with tied embeddings; vocabulary taken from the tokenizer."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def save_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path
) -> None:
    """Standard Hugging Face folder: safetensors weights, config, tokenizer, chat template."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)


_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_PROBE_TEXT = "Hello world"


def _one_line(err: BaseException) -> str:
    """An exception's message on one line: the CLI prints errors as a single line."""
    return " ".join(str(err).split())


def _what_to_do(err: BaseException, name: str) -> str:
    """The fix for a failed hub load: gated models need a licence and a login, not a new id."""
    if "gated" in str(err).lower():
        return (
            f"{name} is a gated model: accept its licence on https://huggingface.co/{name} "
            "with your account, then log in here (`hf auth login`, or set HF_TOKEN)."
        )
    return (
        "Check the id/path, that you are logged in for gated models (`hf auth login`, after "
        "accepting the licence on the model page), and that the hub is reachable "
        "(HF_HUB_OFFLINE unset)."
    )


def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """bf16 where the hardware does it natively, else fp32 (bf16 on CPU is slower, not faster)."""
    if dtype == "float32":
        return torch.float32
    if dtype == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_model(
    name_or_path: str | Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load a causal LM and its fast tokenizer from a local folder or (if asked) a hub id.

    Safetensors only (`use_safetensors=True`); remote code only when `trust_remote_code=True`.
    `smollm2` and `gguf:<file>` name GGUF models, converted once into a cached folder
    (`atwu_core.gguf`).
    """
    name = str(name_or_path)
    if is_gguf_spec(name):
        name = str(gguf_folder(name))
    local = Path(name).expanduser()
    # A hub id is "name" or "org/name"; anything else (absolute, ./, ~, deeper paths) is a path.
    is_hub_id = _HUB_ID.fullmatch(name) is not None and not name.startswith(".")
    if not local.exists() and not is_hub_id:
        raise ValueError(
            f"model path {name!r} does not exist; build the sample models with `atwu prepare` "
            f"or pass a Hugging Face hub id (e.g. open-unlearning/tofu_Llama-3.2-1B-Instruct_full)"
        )
    if local.exists() and not local.is_dir():
        raise ValueError(f"model path {name!r} is a file; pass the model's folder")
    where = (
        f"folder {name!r}" if local.is_dir() else f"hub id {name!r} (no local folder of that name)"
    )
    name = str(local) if local.is_dir() else name
    dev = pick_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"could not load a tokenizer from {where}: {_one_line(err)}. {_what_to_do(err, name)}"
        ) from err
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{where} has no fast tokenizer; token offsets (span mapping) need one. "
            "Convert it with `PreTrainedTokenizerFast` or pick a model that ships tokenizer.json."
        )
    if not tokenizer(_PROBE_TEXT, add_special_tokens=False)["input_ids"]:
        # transformers builds an empty tokenizer (special tokens only) from a config whose
        # vocabulary files are missing, instead of failing: every answer would encode to nothing.
        raise ValueError(
            f"the tokenizer of {where} encodes text to no tokens (vocabulary of {len(tokenizer)}): "
            "its vocabulary is missing; copy the model's tokenizer.json into the folder"
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            name,
            dtype=pick_dtype(dtype, dev),
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
        )
    except (OSError, ValueError) as err:
        raise ValueError(
            f"could not load model weights (safetensors) from {where}: {_one_line(err)}"
        ) from err
    if tokenizer.pad_token_id is None:
        # Many base models have no pad token; padding is masked out anyway.
        tokenizer.pad_token = tokenizer.eos_token
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ValueError(
            f"tokenizer of {name!r} has {len(tokenizer)} tokens but the model's embedding has "
            f"{model.get_input_embeddings().num_embeddings}: tokenizer and model do not match"
        )
    return model.to(dev), tokenizer


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
