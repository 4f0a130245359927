"""Bad input for real models and real data: `atwu unlearn` answers with one clear line
and exit code 2, saying what to do. Nothing downloads: HF_HUB_OFFLINE=1 (tests/conftest.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLE


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A loadable tiny model, and copies of it with a broken tokenizer."""
    import torch
    from transformers.utils import logging as hf_logging

    from atwu_core.config import TinyModelConfig
    from atwu_core.model import build_tiny_model, save_model, train_tokenizer

    hf_logging.disable_progress_bar()
    root = tmp_path_factory.mktemp("models")
    tok = train_tokenizer(["the cat sat on the mat with a hat"] * 20, vocab_size=300)
    torch.manual_seed(0)
    cfg = TinyModelConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_heads=2)
    save_model(build_tiny_model(cfg, tok), tok, root / "good")
    # No tokenizer.json and no vocabulary files: transformers cannot build any tokenizer.
    shutil.copytree(root / "good", root / "no_tokenizer_json")
    (root / "no_tokenizer_json" / "tokenizer.json").unlink()
    # A slow tokenizer class whose vocabulary file (tokenizer.model) is missing: transformers
    # silently builds a tokenizer that knows only the special tokens.
    shutil.copytree(root / "no_tokenizer_json", root / "slow_without_vocab")
    config_path = root / "slow_without_vocab" / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(config | {"tokenizer_class": "LlamaTokenizer"}))
    return {p.name: p for p in root.iterdir()}


def _unlearn_error(argv: list[str], tmp_path: Path, capsys) -> str:
    from atwu_core.cli import main

    # An absolute --data (a later --data in argv wins): the data is loaded before the model.
    data = ["--data", str(SAMPLE / "benchmark")]
    code = main(["unlearn", "--max-steps", "1", "--runs-dir", str(tmp_path / "runs"), *data, *argv])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    # Progress lines ("[  0.4s] loading model ...") come before; the error is one line.
    lines = [line for line in captured.err.strip().splitlines() if not line.startswith("[")]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert lines[0].startswith("atwu unlearn: error: ")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    return lines[0]


def test_model_path_that_does_not_exist(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "model"
    line = _unlearn_error(["--model", str(missing)], tmp_path, capsys)
    assert f"model path '{missing}' does not exist" in line
    assert "atwu prepare" in line and "hub id" in line


def test_relative_path_that_looks_like_a_hub_id_says_both(tmp_path, capsys, monkeypatch):
    """`models/full` is also a valid hub id: the error names both readings, on one line."""
    monkeypatch.chdir(tmp_path)
    line = _unlearn_error(["--model", "models/full"], tmp_path, capsys)
    assert "hub id 'models/full' (no local folder of that name)" in line
    assert "hf auth login" in line


def test_gated_hub_id_says_accept_the_licence_and_log_in(tmp_path, capsys, monkeypatch):
    """What the hub answers for a gated model without access (simulated: nothing downloads)."""
    import atwu_core.model

    def gated(name, **kwargs):
        # transformers turns the hub's GatedRepoError into this OSError (utils/hub.py)
        raise OSError(
            "You are trying to access a gated repo.\nMake sure to have access to it at "
            f"https://huggingface.co/{name}.\n401 Client Error."
        )

    monkeypatch.setattr(atwu_core.model.AutoTokenizer, "from_pretrained", gated)
    line = _unlearn_error(["--model", "meta-llama/Llama-3.2-1B-Instruct"], tmp_path, capsys)
    assert "meta-llama/Llama-3.2-1B-Instruct is a gated model" in line
    assert "https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct" in line
    assert "hf auth login" in line and "HF_TOKEN" in line


def test_folder_without_tokenizer_json(model_dirs, tmp_path, capsys):
    folder = model_dirs["no_tokenizer_json"]
    line = _unlearn_error(["--model", str(folder)], tmp_path, capsys)
    assert f"could not load a tokenizer from folder '{folder}'" in line


def test_tokenizer_without_vocabulary_is_refused(model_dirs, tmp_path, capsys):
    folder = model_dirs["slow_without_vocab"]
    line = _unlearn_error(["--model", str(folder)], tmp_path, capsys)
    assert f"the tokenizer of folder '{folder}' encodes text to no tokens" in line
    assert "copy the model's tokenizer.json" in line


def test_unknown_tofu_split(model_dirs, tmp_path, capsys):
    argv = ["--model", str(model_dirs["good"]), "--data", f"tofu:forget07@{tmp_path}"]
    line = _unlearn_error(argv, tmp_path, capsys)
    assert "unknown TOFU forget config 'forget07'" in line
    assert "forget01, forget05, forget10" in line


def test_tofu_folder_that_does_not_exist(model_dirs, tmp_path, capsys):
    missing = tmp_path / "no_tofu"
    argv = ["--model", str(model_dirs["good"]), "--data", f"tofu:forget01@{missing}"]
    line = _unlearn_error(argv, tmp_path, capsys)
    assert f"TOFU folder {missing} does not exist" in line


def test_the_good_model_loads(model_dirs):
    """The broken copies fail because of what was removed, not because the original is broken."""
    from atwu_core.model import load_model

    model, tok = load_model(model_dirs["good"], device="cpu")
    assert tok.is_fast and tok("the cat", add_special_tokens=False)["input_ids"]
    assert model.get_input_embeddings().num_embeddings == len(tok)
