"""Structure-aware chunking: sections first, then paragraphs, lines, sentences and words.

A chunk never crosses a section (a heading, a PDF page, a JSONL record). Inside
a section, whole paragraphs are packed up to the target size; a paragraph that
is too long is cut at line breaks, then sentence ends, then spaces (and, for a
single enormous word, anywhere). Each new chunk of a section starts with the
last sentences (or words) of the previous one, up to `overlap`.

>>> from hybrid.ingest.document import Document, Section
>>> from pathlib import Path
>>> doc = Document("a.md", Path("a.md"), "markdown", "A", (
...     Section(("Guide", "Install"), ("One two three. Four five six. Seven eight nine.",)),))
>>> chunks = Chunker(size=32, overlap=15).chunks(doc)
>>> [(c.heading, c.text) for c in chunks]
[('Guide > Install', 'One two three. Four five six.'), ('Guide > Install', 'Four five six. Seven eight nine.')]

Each chunk also knows its place in the document (:func:`context_header`: the title and heading
path), which is embedded and indexed with its text while the stored text stays the chunk's own:

>>> chunks[1].context, chunks[1].embedding_text
('A > Guide > Install', 'A > Guide > Install\\n\\nFour five six. Seven eight nine.')
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hybrid.ingest.document import Document

SizeUnit = Literal["chars", "tokens"]
TitleLayout = Literal["every", "once"]
"""Where a document's title goes: with every chunk ("every": in its header, and in the ``title``
column the full-text index covers), or once, as a title row of its own ("once": marked
``is_title``, counted in its document's group score but never returned; :mod:`hybrid.query.title_rows`)."""
TITLE_CHUNK = -1
"""The chunk number of a document's title row (before its chunk 0)."""

_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|\w+|[^\w\s]")
_SENTENCE_END = re.compile(
    r"([.!?]+[\"'\u201d\u2019)\]]*)\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u00de\u0391-\u03a9\u0410-\u042f])"
    r"|([\u3002\uff01\uff1f]+[\u300d\u300f\u201d]*)\s*"
)
_WORD = re.compile(r"\S+")
HEADING_SEPARATOR = " > "


def count_tokens(text: str) -> int:
    """Approximate tokens: words, punctuation marks and CJK characters count one each.

    >>> count_tokens("Don't panic: 42 towels.")
    8
    """
    return len(_TOKEN.findall(text))


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: cut after ``.!?`` (and CJK ``。！？``) followed by a capital or digit.

    >>> split_sentences("It works, e.g. here. Does it? Yes! 3 cases.")
    ['It works, e.g. here.', 'Does it?', 'Yes!', '3 cases.']
    """
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end(1) if m.group(1) else m.end(2)
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = m.end()
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out


def _sentence_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in _SENTENCE_END.finditer(text) if m.end() < len(text))]


def chunk_id(source: str, chunk: int, page: int | None, heading: str, text: str, context: str = "") -> str:
    """A stable id from where a chunk is and what it says: the same file gives the same ids.

    A chunk embedded under a context header (`context`) has another id than the same text embedded
    bare, so turning the header on or off re-embeds the chunks at the next ingest."""
    parts: list[object] = [source, chunk, page, heading, text]
    if context:
        parts.append(context)
    key = json.dumps(parts, ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def context_header(title: str, heading: str) -> str:
    """A chunk's contextual header: its document's title, then its heading path (the title once,
    where the path already starts with it).

    A later chunk of a section does not name what the section is about; the header puts that back
    into what is embedded and indexed, as a reader would see it above the passage.

    >>> context_header("Install guide", "Install guide > Linux")
    'Install guide > Linux'
    >>> context_header("Django FAQ", "Databases")
    'Django FAQ > Databases'
    >>> context_header("", "")
    ''
    """
    path = [p for p in heading.split(HEADING_SEPARATOR) if p.strip()] if heading else []
    title = title.strip()
    if title and (not path or path[0].strip() != title):
        path.insert(0, title)
    return HEADING_SEPARATOR.join(path)


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, with the metadata stored next to it in the table."""

    id: str
    text: str
    source: str
    title: str
    heading: str
    chunk: int
    page: int | None = None
    metadata: Mapping[str, Any] | None = None
    context: str = ""
    """The contextual header embedded and indexed with the text ("" when the chunker adds none)."""
    is_title: bool = False
    """The document's title row (``Chunker(titles="once")``), not a passage."""

    @property
    def embedding_text(self) -> str:
        """What is embedded for this chunk: the contextual header, a blank line, the text."""
        return f"{self.context}\n\n{self.text}" if self.context else self.text


@dataclass(frozen=True)
class _Piece:
    text: str
    sep: str
    """Put before this piece when it follows another one in a chunk."""


@dataclass(frozen=True)
class Chunker:
    """Splits documents into chunks of at most `size` characters (or approximate tokens).

    `overlap` (< `size`) is how much of the end of a chunk is repeated at the start
    of the next chunk of the same section. `context`: each chunk carries its document's title
    and heading path (:func:`context_header`), embedded with its text (the stored text is the
    chunk's own); the header does not count toward `size`. `titles`: :data:`TitleLayout`; with
    "once" a titled document starts with a title row (chunk :data:`TITLE_CHUNK`), and its chunks'
    headers and heading paths leave out the title at their root.
    """

    size: int = 800
    overlap: int = 100
    unit: SizeUnit = "chars"
    context: bool = True
    titles: TitleLayout = "every"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"chunk size must be an integer of at least 8, got {self.size!r}")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or not 0 <= self.overlap < self.size:
            raise ValueError(f"overlap must be an integer in [0, size), got {self.overlap!r} with size {self.size}")
        if self.unit not in ("chars", "tokens"):
            raise ValueError(f"unit must be 'chars' or 'tokens', got {self.unit!r}")
        if not isinstance(self.context, bool):
            raise ValueError(f"context must be True or False, got {self.context!r}")
        if self.titles not in ("every", "once"):
            raise ValueError(f"titles must be 'every' or 'once', got {self.titles!r}")

    def measure(self, text: str) -> int:
        """The size of `text` in this chunker's unit."""
        return len(text) if self.unit == "chars" else count_tokens(text)

    def chunks(self, doc: Document) -> list[Chunk]:
        """The chunks of `doc`, numbered from 0 across the whole document."""
        out: list[Chunk] = []
        title = doc.title.strip() if self.titles == "once" else ""
        for section in doc.sections:
            root = bool(title and section.heading and section.heading[0].strip() == title)
            path = section.heading[1:] if root else section.heading
            heading = HEADING_SEPARATOR.join(path)
            context = context_header("" if title else doc.title, heading) if self.context else ""
            for text in self.split(section.blocks):
                n = len(out)
                out.append(
                    Chunk(
                        id=chunk_id(doc.source, n, section.page, heading, text, context),
                        text=text,
                        source=doc.source,
                        title=doc.title,
                        heading=heading,
                        chunk=n,
                        page=section.page,
                        metadata=section.metadata,
                        context=context,
                    )
                )
        if title and out:
            row = chunk_id(doc.source, TITLE_CHUNK, None, "", title, "title")
            out.insert(0, Chunk(row, title, doc.source, doc.title, "", TITLE_CHUNK, is_title=True))
        return out

    def split(self, blocks: tuple[str, ...] | list[str]) -> list[str]:
        """Chunk texts for one section's blocks."""
        pieces: list[_Piece] = []
        for block in blocks:
            if block.strip():
                pieces.extend(self._split(block.strip("\n"), 0, "\n\n"))
        return self._pack(pieces)

    # -- splitting ----------------------------------------------------------------------

    def _split(self, text: str, level: int, sep: str) -> list[_Piece]:
        if self.measure(text) <= self.size:
            return [_Piece(text, sep)] if text.strip() else []
        if level >= len(_LEVELS):
            return self._hard_cut(text, sep)
        parts = _LEVELS[level](text)
        if len(parts) <= 1:
            return self._split(text, level + 1, sep)
        out: list[_Piece] = []
        for i, (part, joiner) in enumerate(parts):
            out.extend(self._split(part, level + 1, sep if i == 0 else joiner))
        return out

    def _hard_cut(self, text: str, sep: str) -> list[_Piece]:
        if self.unit == "chars":
            bounds = list(range(0, len(text), self.size)) + [len(text)]
        else:
            starts = [m.start() for m in _TOKEN.finditer(text)]
            bounds = [0, *starts[self.size :: self.size], len(text)]
        cuts = [text[a:b] for a, b in zip(bounds, bounds[1:]) if text[a:b].strip()]
        return [_Piece(c.strip(), sep if i == 0 else "") for i, c in enumerate(cuts)]

    # -- packing ------------------------------------------------------------------------

    def _join(self, pieces: list[_Piece]) -> str:
        return "".join(p.sep + p.text if i else p.text for i, p in enumerate(pieces))

    def _fits(self, pieces: list[_Piece], limit: int) -> bool:
        return self.measure(self._join(pieces)) <= limit

    def _pack(self, pieces: list[_Piece]) -> list[str]:
        chunks: list[str] = []
        current: list[_Piece] = []
        for piece in pieces:
            if current and not self._fits([*current, piece], self.size):
                chunks.append(self._join(current))
                current = self._tail(current)
                while current and not self._fits([*current, piece], self.size):
                    current.pop(0)
            current.append(piece)
        if current:
            chunks.append(self._join(current))
        return chunks

    def _tail(self, pieces: list[_Piece]) -> list[_Piece]:
        """The end of a chunk, at most `overlap` long: whole pieces, else the last one's final sentences or words."""
        if self.overlap == 0:
            return []
        kept: list[_Piece] = []
        for piece in reversed(pieces):
            if self._fits([piece, *kept], self.overlap):
                kept.insert(0, piece)
                continue
            if kept:  # whole pieces only, once one fits
                break
            for starts in (_sentence_starts(piece.text), [m.start() for m in _WORD.finditer(piece.text)]):
                fitting = [i for i in starts if self._fits([_Piece(piece.text[i:], piece.sep), *kept], self.overlap)]
                if fitting:
                    kept.insert(0, _Piece(piece.text[min(fitting) :], piece.sep))
                    break
            break
        return kept


def _lines(text: str) -> list[tuple[str, str]]:
    return [(line, "\n") for line in text.split("\n") if line.strip()]


def _sentences(text: str) -> list[tuple[str, str]]:
    return [(s, " ") for s in split_sentences(text)]


def _words(text: str) -> list[tuple[str, str]]:
    return [(w, " ") for w in text.split()]


_LEVELS: list[Callable[[str], list[tuple[str, str]]]] = [_lines, _sentences, _words]
