"""The layering of DESIGN.md as a test: an upward import fails CI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "src" / "dockyard"

# What each layer may import (besides itself, the leaf modules errdefs and metadb, the
# package root (its version constants) and the standard library).
ALLOWED = {
    "spec": set(),
    "http": {"spec"},
    "linux": {"spec"},
    "runtime": {"spec", "linux"},
    "content": {"spec", "linux"},
    "snapshot": {"spec", "linux"},
    "vm": {"spec", "linux", "http"},
    "image": {"spec", "linux", "content", "snapshot"},
    "build": {"spec", "linux", "content", "snapshot", "image", "runtime"},
    "registry": {"spec", "linux", "content", "snapshot", "image", "http"},
    "network": {"spec", "linux", "content", "snapshot", "image", "runtime"},
    "volume": {"spec", "linux", "content", "snapshot", "image", "runtime", "http"},
    "engine": {"spec", "linux", "content", "snapshot", "image", "runtime", "build", "registry",
               "network", "volume", "http"},
    "swarm": {"spec", "linux", "engine", "http", "network"},
    "api": {"spec", "linux", "engine", "swarm", "http"},
    "cli": {"spec", "http"},
    "testing": None,  # test support may use anything
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m.split(".")[1] for m in found if m.startswith("dockyard.") and m.count(".") >= 1}


def _modules():
    return sorted(p for p in PKG.rglob("*.py") if p.parent != PKG)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_point_down(path: Path):
    layer = path.relative_to(PKG).parts[0]
    assert layer in ALLOWED, f"{layer}/ is not a layer of DESIGN.md; add it to this test"
    allowed = ALLOWED[layer]
    if allowed is None:
        return
    bad = {m for m in _imports(path) if m not in allowed | {layer, "errdefs", "metadb", "__init__"}}
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)} above or beside its layer"
