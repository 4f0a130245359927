"""Adding a method is one new file: the registry, the CLI listing and the dashboard's method
table all follow it, with no other edit (the issue's promise, checked on a copy of the package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOY = '''"""A throwaway method for the test: ascend every answer token, half as hard."""

from ..losses import masked_mean
from .base import ForgetBatch, MethodOutput, register


@register("toy_half_ascent")
def toy_half_ascent(batch: ForgetBatch, *, scale: float = 0.5) -> MethodOutput:
    """Raise every answer token's NLL with weight `scale` (a test stand-in)."""
    return MethodOutput(loss=scale * masked_mean(batch.logp, batch.mask), token_weights=batch.mask)
'''


def test_one_new_file_reaches_registry_cli_and_dashboard(tmp_path, monkeypatch):
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "atwu_core", copy / "atwu_core", ignore=shutil.ignore_patterns("__pycache__")
    )
    (copy / "atwu_core" / "methods" / "toy_half_ascent.py").write_text(TOY, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    monkeypatch.chdir(tmp_path)  # `python -m` puts the working directory first on sys.path

    # the registry and the CLI listing of the copy
    listed = subprocess.run(
        [sys.executable, "-m", "atwu_core.cli", "methods", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    table = json.loads(listed.stdout)
    toy = next(m for m in table["methods"] if m["name"] == "toy_half_ascent")
    assert toy["hparams"] == {"scale": 0.5} and toy["summary"].startswith("Raise every answer")

    # the dashboard: the committed table was made from other code, so it is not used ...
    sys.path.insert(0, str(ROOT))
    from dashboard import jobs

    monkeypatch.setattr(jobs, "_code_hash", lambda: table["source_hash"])
    assert jobs.read_bundled_methods(ROOT / "dashboard" / "methods.json") is None
    # ... and the table the dashboard loads instead (the CLI in a subprocess) offers the method
    monkeypatch.setenv("PYTHONPATH", str(copy))
    methods = jobs.refresh_methods(tmp_path / "runs")
    assert methods["toy_half_ascent"]["hparams"] == {"scale": 0.5}
    assert jobs.read_methods(tmp_path / "runs") == methods  # cached for the next start
