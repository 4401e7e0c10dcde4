"""The package's layers depend one way: storage -> index -> query -> table facade.

Read from the source with `ast` (every import, including those under
``if TYPE_CHECKING:`` and inside functions), so an upward import anywhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hybrid

PACKAGE = Path(hybrid.__file__).parent
FORBIDDEN = {
    "storage": ("hybrid.index", "hybrid.query", "hybrid.table", "hybrid.db", "hybrid.embedders"),
    "index": ("hybrid.query", "hybrid.table", "hybrid.db"),
}


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, relative imports resolved against its package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def upward_imports(layer: str, root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted((root / layer).rglob("*.py")):
        for line, module in imported_modules(path, root):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(root.parent).as_posix()}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_never_import_upper_ones(layer: str) -> None:
    assert upward_imports(layer) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The detector itself works: a planted upward import (under TYPE_CHECKING, relative) is found."""
    (tmp_path / "hybrid" / "index").mkdir(parents=True)
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..table import Table\n"
    (tmp_path / "hybrid" / "index" / "planted.py").write_text(source, encoding="utf-8")
    (tmp_path / "hybrid" / "index" / "fine.py").write_text("from hybrid.storage import files\n", encoding="utf-8")
    found = upward_imports("index", tmp_path / "hybrid")
    assert found == [
        "hybrid/index/planted.py:3 imports hybrid.table",
        "hybrid/index/planted.py:3 imports hybrid.table.Table",
    ]
