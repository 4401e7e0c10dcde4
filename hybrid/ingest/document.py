"""What a loader produces: a `Document` of `Section`s, or a `Skipped` file with the reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DocumentKind = Literal["markdown", "text", "html", "pdf", "jsonl"]


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path; chunks never cross a section.

    `blocks` are paragraphs (prose with whitespace collapsed) or preformatted
    pieces (code, tables) that keep their line breaks. `page` is the 1-based PDF
    page; `metadata` holds a JSONL record's other fields.
    """

    heading: tuple[str, ...]
    blocks: tuple[str, ...]
    page: int | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Skipped:
    """A file (or a JSONL line, ``data.jsonl:7``) that produced no text, and why."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class Document:
    """One loaded file. `source` is its path relative to the ingested root, with ``/`` separators."""

    source: str
    path: Path
    kind: DocumentKind
    title: str
    sections: tuple[Section, ...]
    skipped: tuple[Skipped, ...] = field(default=())
    """Parts of the file left out (JSONL lines that are not records with text)."""

    @property
    def empty(self) -> bool:
        return not any(b.strip() for s in self.sections for b in s.blocks)
