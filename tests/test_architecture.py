"""The import graph tells the architecture: no circles, and no layer imports one above it.

Read from the source (ast), imports inside functions included: a lazy import hides a circle from
Python's loader but not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lower layers first; a module may import its own layer and the ones before it.
LAYERS = [
    # pure building blocks: settings, data, losses and methods, metrics, the cache
    (
        "atwu_core.config",
        "atwu_core.settings",
        "atwu_core.scorer_config",
        "atwu_core.fileio",
        "atwu_core.space",
        "atwu_core.cancel",
        "atwu_core.progress",
        "atwu_core.checks",
        "atwu_core.data",
        "atwu_core.losses",
        "atwu_core.methods",
        "atwu_core.evaluation",  # the package imports nothing; its pure modules:
        "atwu_core.evaluation.metrics",
        "atwu_core.evaluation.rwku_metrics",
        "atwu_core.evaluation.study_stats",
        "atwu_core.cache",
        "atwu_core.runs",
        "atwu_core.snapshots",
        "atwu_core.viz",
    ),
    # models and the loops that train them, and the evaluation that runs models
    (
        "atwu_core.model",
        "atwu_core.gguf",
        "atwu_core.scale",
        "atwu_core.scorer",
        "atwu_core.batches",
        "atwu_core.forward",
        "atwu_core.conflict",
        "atwu_core.run_setup",
        "atwu_core.finetune",
        "atwu_core.evaluation.evaluate",
        "atwu_core.evaluation.protocol",
        "atwu_core.evaluation.rwku",
        "atwu_core.train",
        "atwu_core.probe",
        "atwu_core.prepare",
    ),
    # commands that orchestrate runs
    ("atwu_core.compare", "atwu_core.tune", "atwu_core.study", "atwu_core.cli"),
    ("dashboard",),
]


def _modules() -> dict[str, Path]:
    mods = {}
    for folder in ("atwu_core", "dashboard"):
        for path in (ROOT / folder).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        found |= {t for t in targets if t in known and t != name}
    return found


def _layer(module: str) -> int:
    if module == "atwu_core":
        return 0  # the package itself holds only its version
    best = None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    assert best is not None, f"{module} is in no layer of tests/test_architecture.py: add it"
    return best[0]


def test_no_import_circles_and_no_upward_imports():
    mods = _modules()
    graph = {m: _imports(m, p, set(mods)) for m, p in mods.items()}
    # Packages import their own submodules (registration, re-exports): not a layer edge.
    upward = [
        f"{m} -> {t}" for m, targets in graph.items() for t in targets if _layer(t) > _layer(m)
    ]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)

    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if t.startswith(m + "."):
                continue  # a package's own submodule
            if state.get(t) == 1:
                cycle = [*path[path.index(t) :], t] if t in path else [m, t]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
