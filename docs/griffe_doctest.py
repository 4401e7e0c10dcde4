"""A griffe extension for the API reference: doctest examples and Sphinx roles in docstrings render as code.

The docstrings hold runnable ``>>>`` examples (pytest runs them). Outside a fenced block,
Markdown would read ``x["id"]`` in them as a link; this fences each run of doctest lines.
"""

from __future__ import annotations

import re
from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """`text` with each block of ``>>>`` lines (and their continuation and output lines) fenced."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj):`~?([^`]+)`")
"""A Sphinx cross-reference role (``:class:`hybrid.Table```), which Markdown would show as is."""


def plain_roles(text: str) -> str:
    """`text` with Sphinx roles turned into inline code: ``:meth:`x``` -> ```x```."""
    return ROLE.sub(r"`\1`", text)


class DoctestFences(griffe.Extension):
    """Fences the doctest examples of every docstring griffe loads and turns Sphinx roles into code."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(plain_roles(obj.docstring.value))
