"""Tokenizer, tiny model, Hugging Face round trip and loading errors (atwu_core.model, config)."""

from __future__ import annotations

import pytest
import torch

from atwu_core.config import FinetuneConfig, TinyModelConfig, UnlearnConfig
from atwu_core.model import build_tiny_model, load_model, pick_dtype, save_model, train_tokenizer

TEXTS = [
    "What is the capital of France?",
    "Paris",
    "Basil Al-Kuwaiti was born in Kuwait City.",
    "Where was Basil Al-Kuwaiti born?",
] * 5


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=320)


def test_chat_template_prompt_is_user_turn_then_assistant_tag(tok):
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Where was X born?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert text == "<|user|>Where was X born?<|assistant|>"
    # A full conversation closes the assistant turn with the eos token the model learns to emit.
    convo = tok.apply_chat_template(
        [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}], tokenize=False
    )
    assert convo == "<|user|>Q?<|end|><|assistant|>A.<|end|>"
    assert tok.eos_token == "<|end|>" and tok.pad_token == "<|pad|>"


def test_answer_offsets_start_at_zero_and_cover_text(tok):
    answer = "Basil was born in Paris."
    enc = tok(answer, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    assert offsets[0][0] == 0
    assert offsets[-1][1] == len(answer)
    assert tok.decode(enc["input_ids"]) == answer


def test_save_and_load_round_trip_gives_same_logits(tok, tmp_path):
    torch.manual_seed(0)
    cfg = TinyModelConfig(vocab_size=320, hidden_size=32, intermediate_size=64, num_heads=4)
    model = build_tiny_model(cfg, tok).eval()
    save_model(model, tok, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    loaded, tok2 = load_model(tmp_path / "m", device="cpu")
    ids = torch.tensor([tok("Paris is the capital", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, loaded.eval()(ids).logits)
    assert tok2.chat_template == tok.chat_template
    assert loaded.config.tie_word_embeddings


def test_missing_model_path_names_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ValueError, match="does not exist"):
        load_model(str(missing))


def test_folder_without_weights_is_a_clear_error(tok, tmp_path):
    tok.save_pretrained(tmp_path / "only_tok")
    with pytest.raises(ValueError, match="could not load"):
        load_model(tmp_path / "only_tok", device="cpu")


def test_cpu_uses_float32():
    assert pick_dtype("auto", torch.device("cpu")) is torch.float32
    assert pick_dtype("bfloat16", torch.device("cpu")) is torch.bfloat16


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (TinyModelConfig, {"hidden_size": 30, "num_heads": 4}, "num_heads"),
        (FinetuneConfig, {"lr": 0}, "lr"),
        (UnlearnConfig, {"batch_size": 0}, "batch_size"),
        (UnlearnConfig, {"retain_loss": "mse"}, "retain_loss"),
        (UnlearnConfig, {"device": "tpu"}, "device"),
    ],
)
def test_config_errors_name_field_and_value(cls, kwargs, field):
    with pytest.raises(ValueError, match=field):
        cls(**kwargs)


def test_config_error_keeps_field_value_and_rule():
    """A form (the dashboard's launcher) words the error with its own label."""
    from atwu_core.config import ConfigError

    with pytest.raises(ConfigError) as err:
        UnlearnConfig(lr=0.0)
    assert (err.value.name, err.value.value, err.value.rule) == ("lr", 0.0, "must be > 0")
    assert str(err.value) == "lr=0.0 is invalid: must be > 0"


def test_unlearn_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="lrr"):
        UnlearnConfig.from_dict({"lrr": 1.0})
