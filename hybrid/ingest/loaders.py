"""Loaders by file type: Markdown, plain text, HTML, PDF and JSONL, from files or folders.

Every loader turns one file into a :class:`Document` of heading-scoped
:class:`Section`\\ s, or into a :class:`Skipped` with the reason (unsupported
type, binary or undecodable content, a corrupt or encrypted PDF, no text); a
file never raises.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "guide.md").write_text("# Guide\\n\\n## Install\\n\\nRun pip.\\n")
>>> _ = (root / "logo.png").write_bytes(b"\\x89PNG")
>>> [str(x) if isinstance(x, Skipped) else x.sections[0].heading for x in load_paths([root])]
[('Guide', 'Install'), 'logo.png: unsupported file type .png']
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid.errors import require
from hybrid.ingest.document import Document, DocumentKind, Section, Skipped

log = logging.getLogger(__name__)

EXTENSIONS: dict[str, DocumentKind] = {
    ".md": "markdown", ".markdown": "markdown", ".mdown": "markdown",
    ".txt": "text", ".text": "text", ".rst": "text",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
}  # fmt: skip
"""File extension -> loader; anything else is skipped as unsupported."""

_SPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")


@dataclass(frozen=True)
class LoadOptions:
    """How files are read.

    `text_field` / `title_field`: the JSONL record fields holding the text and
    (optionally) a title used as the record's heading; every other field is kept
    as metadata. `max_bytes`: larger files are skipped. `include_hidden`: also walk
    names starting with ``.`` in folders.
    """

    text_field: str = "text"
    title_field: str | None = "title"
    max_bytes: int = 256 * 2**20
    include_hidden: bool = False


def collapse(text: str) -> str:
    """Runs of whitespace as one space, trimmed."""
    return _SPACE.sub(" ", text).strip()


# -- discovery --------------------------------------------------------------------------


def walk(paths: Iterable[str | os.PathLike[str]], options: LoadOptions = LoadOptions()) -> Iterator[tuple[Path, Path]]:
    """``(file, root)`` for every file under `paths`: folders recursively in sorted order, files as
    given (their root is their folder, so their source is their name; a missing one is reported by
    :func:`load_file`)."""
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            yield path, path.parent
            continue
        for folder, dirs, files in os.walk(path):
            if not options.include_hidden:
                dirs[:] = [d for d in dirs if not d.startswith(".")]
            dirs.sort()
            for name in sorted(files):
                if options.include_hidden or not name.startswith("."):
                    yield Path(folder) / name, path


def source_name(path: Path, root: Path) -> str:
    """`path` relative to `root`, with ``/`` separators (the chunks' `source`)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def load_paths(
    paths: Iterable[str | os.PathLike[str]], options: LoadOptions = LoadOptions()
) -> Iterator[Document | Skipped]:
    """Load every file under `paths` (see :func:`walk`), one Document or Skipped each."""
    for path, root in walk(paths, options):
        yield load_file(path, root, options)


def load_file(path: Path, root: Path | None = None, options: LoadOptions = LoadOptions()) -> Document | Skipped:
    """Load one file by its extension; never raises for a bad file, returns Skipped instead."""
    source = source_name(path, root if root is not None else path.parent)
    kind = EXTENSIONS.get(path.suffix.lower())
    if not path.exists():
        return Skipped(source, "no such file or directory")
    if kind is None:
        return Skipped(source, f"unsupported file type {path.suffix.lower() or '(no extension)'}")
    try:
        size = path.stat().st_size
        if size > options.max_bytes:
            return Skipped(source, f"larger than {options.max_bytes} bytes ({size})")
        data = path.read_bytes()
    except OSError as exc:
        return Skipped(source, f"cannot read: {exc.strerror or exc}")
    if not data.strip():
        return Skipped(source, "empty file")
    try:
        doc = _LOADERS[kind](data, source, path, options)
    except _Unreadable as exc:
        return Skipped(source, str(exc))
    except RecursionError:
        return Skipped(source, f"{kind} nested too deeply to read")
    except Exception as exc:  # a third-party parser failing on a corrupt file must not stop the ingest
        log.debug("loading %s failed", path, exc_info=True)
        return Skipped(source, f"cannot parse {kind}: {type(exc).__name__}: {exc}")
    if doc.empty:
        return Skipped(source, "no text found" + _EMPTY_HINTS.get(kind, ""))
    return doc


_EMPTY_HINTS = {"pdf": " (a scanned PDF?)", "html": " (only navigation, scripts or a table of contents)"}


class _Unreadable(Exception):
    """A file that is not what its extension says (binary, undecodable, encrypted)."""


# -- text decoding ----------------------------------------------------------------------


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252; binary content is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise _Unreadable("undecodable UTF-16 text") from None
    if b"\x00" in data[:8192]:
        raise _Unreadable("binary content (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > len(text[:8192]) * 0.01 or text.count("\ufffd") > len(text) * 0.01:
        raise _Unreadable("binary content, not text")
    return text


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, whitespace collapsed (hard-wrapped lines are joined)."""
    return [p for p in (collapse(b) for b in _BLANK_LINES.split(text)) if p]


# -- plain text -------------------------------------------------------------------------


def _load_text(data: bytes, source: str, path: Path, options: LoadOptions) -> Document:
    text = decode(data).replace("\r\n", "\n")
    return Document(source, path, "text", path.stem, (Section((), tuple(paragraphs(text))),))


# -- markdown ---------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)


class _Sections:
    """Collects blocks under a heading stack (h1..h6)."""

    def __init__(self, prefix: tuple[str, ...] = ()) -> None:
        self.prefix = prefix
        self.stack: list[tuple[int, str]] = []
        self.blocks: list[str] = []
        self.sections: list[Section] = []
        self.floor = 0
        """Headings below this stack depth belong to an enclosing container and are not popped."""

    def heading(self, level: int, text: str) -> None:
        self.flush()
        while len(self.stack) > self.floor and self.stack[-1][0] >= level:
            self.stack.pop()
        if text:
            self.stack.append((level, text))

    def add(self, block: str) -> None:
        if block.strip():
            self.blocks.append(block)

    def path(self) -> tuple[str, ...]:
        names = tuple(t for _, t in self.stack)
        if self.prefix and names[: len(self.prefix)] != self.prefix:
            return self.prefix + names
        return names

    def flush(self) -> None:
        if self.blocks:
            self.sections.append(Section(self.path(), tuple(self.blocks)))
            self.blocks = []

    def done(self) -> tuple[Section, ...]:
        self.flush()
        return tuple(self.sections)


def _inline_text(token: Any) -> str:
    parts: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return collapse("".join(parts))


def _load_markdown(data: bytes, source: str, path: Path, options: LoadOptions) -> Document:
    markdown_it: Any = require("markdown_it", "ingest")
    text = decode(data).replace("\r\n", "\n")
    title = ""
    front = _FRONT_MATTER.match(text)
    if front:
        text = text[front.end() :]
        found = re.search(r"^title:\s*(.+)$", front.group(1), re.M)
        title = found.group(1).strip().strip("'\"") if found else ""
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(text)
    out = _Sections()
    lists: list[str] = []  # "-" or "1." per open list
    item_prefix = ""
    row: list[str] = []
    table_rows: list[str] = []
    in_table = False
    for i, tok in enumerate(tokens):
        kind = tok.type
        if kind == "heading_open":
            heading = _inline_text(tokens[i + 1])
            title = title or (heading if tok.tag == "h1" else "")
            out.heading(int(tok.tag[1]), heading)
        elif kind in ("bullet_list_open", "ordered_list_open"):
            lists.append("-" if kind == "bullet_list_open" else "1.")
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            item_prefix = "  " * (len(lists) - 1) + (f"{tok.info}." if lists[-1] != "-" and tok.info else lists[-1])
        elif kind == "table_open":
            in_table, table_rows = True, []
        elif kind == "table_close":
            in_table = False
            out.add("\n".join(table_rows))
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            table_rows.append(" | ".join(row))
        elif kind == "inline":
            if tokens[i - 1].type == "heading_open":
                continue
            content = _inline_text(tok)
            if in_table:
                row.append(content)
            elif content:
                out.add(f"{item_prefix} {content}" if item_prefix else content)
                item_prefix = ""
        elif kind in ("fence", "code_block"):
            out.add(tok.content.rstrip("\n"))
        elif kind == "html_block":
            out.add(_html_fragment_text(tok.content))
    return Document(source, path, "markdown", title or path.stem, out.done())


def _html_fragment_text(html: str) -> str:
    bs4: Any = require("bs4", "ingest")
    return collapse(bs4.BeautifulSoup(html, "html.parser").get_text(" "))


# -- HTML -------------------------------------------------------------------------------

_DROP_TAGS = frozenset(
    {"script", "style", "nav", "noscript", "template", "svg", "canvas", "iframe", "object", "button", "select",
     "textarea", "head"}
)  # fmt: skip
_DROP_CLASSES = frozenset(
    {"navheader", "navfooter", "navbar", "navigation", "breadcrumb", "breadcrumbs", "toc", "sidebar", "skip-link"}
)  # fmt: skip
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "main", "aside", "header", "footer", "li", "ul", "ol", "dl", "dt", "dd",
     "blockquote", "figure", "figcaption", "address", "details", "summary", "form", "fieldset", "caption",
     "hr", "br", "body", "html"}
)  # fmt: skip


def _dropped(tag: Any) -> bool:
    if tag.name in _DROP_TAGS:
        return True
    attrs = tag.attrs or {}
    if attrs.get("role") in ("navigation", "search") or attrs.get("aria-hidden") == "true" or "hidden" in attrs:
        return True
    classes = attrs.get("class") or ()
    return any(c in _DROP_CLASSES for c in classes)


def _scopes(tag: Any) -> set[int]:
    """ids of the elements that hold both a heading and other text (outside dropped elements)."""
    import bs4

    found: set[int] = set()

    def visit(node: Any) -> tuple[bool, bool]:
        heading = text = False
        for child in node.children:
            if isinstance(child, bs4.element.Tag):
                if _dropped(child):
                    continue
                if child.name in _HEADINGS:
                    heading = True
                    continue
                h, t = visit(child)
                heading, text = heading or h, text or t
            elif type(child) is bs4.element.NavigableString and not text and child.strip():
                text = True
        if heading and text:
            found.add(id(node))
        return heading, text

    visit(tag)
    return found


class _HtmlText:
    def __init__(self, out: _Sections, scopes: set[int]) -> None:
        import bs4

        self.element: Any = bs4.element
        self.out = out
        self.scopes = scopes
        self.buffer: list[str] = []
        self.first_heading = ""

    def flush(self) -> None:
        text = collapse("".join(self.buffer))
        self.buffer = []
        self.out.add(text)

    def walk(self, node: Any) -> None:
        for child in node.children:
            if isinstance(child, self.element.Tag):
                self.tag(child)
            elif type(child) is self.element.NavigableString or isinstance(child, self.element.CData):
                self.buffer.append(str(child))

    def tag(self, tag: Any) -> None:
        name = tag.name
        if _dropped(tag):
            return
        if name in _HEADINGS:
            self.flush()
            text = collapse(tag.get_text(" "))
            self.first_heading = self.first_heading or text
            self.out.heading(_HEADINGS[name], text)
        elif name == "pre":
            self.flush()
            self.out.add(tag.get_text().strip("\n"))
        elif name == "table":
            self.flush()
            rows = []
            for tr in tag.find_all("tr"):
                cells = [collapse(c.get_text(" ")) for c in tr.find_all(["th", "td"], recursive=False)]
                if any(cells):
                    rows.append(" | ".join(cells))
            self.out.add("\n".join(rows))
        elif name in _BLOCK_TAGS and id(tag) in self.scopes:
            # a container holding headings and text is a section (or a note box): its headings
            # nest under the ones outside it and end with it
            self.flush()
            saved, floor = list(self.out.stack), self.out.floor
            self.out.floor = len(saved)
            self.walk(tag)
            self.flush()
            self.out.flush()
            self.out.stack, self.out.floor = saved, floor
        elif name in _BLOCK_TAGS:
            self.flush()
            self.walk(tag)
            self.flush()
        else:
            self.walk(tag)


def _load_html(data: bytes, source: str, path: Path, options: LoadOptions) -> Document:
    bs4: Any = require("bs4", "ingest")
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _Unreadable("binary content (NUL bytes), not HTML")
    soup = bs4.BeautifulSoup(data, "html.parser")
    title_tag = soup.find("title")
    title = collapse(title_tag.get_text(" ")) if title_tag else ""
    out = _Sections(prefix=(title,) if title else ())
    body = soup.body or soup
    walker = _HtmlText(out, _scopes(body))
    walker.walk(body)
    walker.flush()
    return Document(source, path, "html", title or walker.first_heading or path.stem, out.done())


# -- PDF --------------------------------------------------------------------------------


def _pdf_outline(reader: Any) -> list[tuple[int, tuple[str, ...]]]:
    """(0-based page, heading path) for each bookmark, in outline order."""
    found: list[tuple[int, tuple[str, ...]]] = []

    def visit(items: Sequence[Any], parents: tuple[str, ...]) -> None:
        last: tuple[str, ...] = parents
        for item in items:
            if isinstance(item, list):
                visit(item, last)
                continue
            title = collapse(str(getattr(item, "title", "") or ""))
            last = (*parents, title)
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # a bookmark pointing nowhere is just left out
                continue
            if page is not None and page >= 0 and title:
                found.append((page, last))

    try:
        visit(reader.outline, ())
    except Exception:  # a broken outline only loses the headings, not the text
        log.debug("cannot read the PDF outline", exc_info=True)
    return found


def _page_heading(outline: list[tuple[int, tuple[str, ...]]], page: int) -> tuple[str, ...]:
    """The first bookmark starting on `page`, else the last one before it."""
    before: tuple[str, ...] = ()
    for start, heading in outline:
        if start == page:
            return heading
        if start < page:
            before = heading
    return before


def _pdf_blocks(text: str) -> tuple[str, ...]:
    text = re.sub(r"(\w)-\n(?=[a-z])", r"\1", text.replace("\r\n", "\n"))
    return tuple(paragraphs(text))


def _load_pdf(data: bytes, source: str, path: Path, options: LoadOptions) -> Document:
    import io

    pypdf: Any = require("pypdf", "ingest")
    if not data.lstrip()[:5] == b"%PDF-":
        raise _Unreadable("not a PDF (no %PDF- header)")
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception:
            opened = 0
        if not opened:
            raise _Unreadable("encrypted PDF (needs a password)")
    outline = _pdf_outline(reader)
    sections = []
    for number, page in enumerate(reader.pages):
        blocks = _pdf_blocks(page.extract_text() or "")
        if blocks:
            sections.append(Section(_page_heading(outline, number), blocks, page=number + 1))
    meta = reader.metadata
    title = collapse(str(meta.title)) if meta is not None and meta.title else ""
    return Document(source, path, "pdf", title or path.stem, tuple(sections))


# -- JSONL ------------------------------------------------------------------------------


def _load_jsonl(data: bytes, source: str, path: Path, options: LoadOptions) -> Document:
    text = decode(data)
    sections, skipped = [], []
    field_name, title_field = options.text_field, options.title_field
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            skipped.append(Skipped(where, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            skipped.append(Skipped(where, f"a JSON {type(record).__name__}, not an object"))
            continue
        body = record.get(field_name)
        if not isinstance(body, str) or not body.strip():
            skipped.append(Skipped(where, f"no text in field {field_name!r}"))
            continue
        heading = record.get(title_field) if title_field else None
        heading_path = (collapse(str(heading)),) if heading not in (None, "") else ()
        metadata = {k: v for k, v in record.items() if k not in (field_name, title_field)}
        blocks = tuple(paragraphs(body.replace("\r\n", "\n")))
        sections.append(Section(heading_path, blocks, metadata=metadata))
    if not sections and skipped:
        raise _Unreadable(f"no JSON records with text in field {field_name!r} ({len(skipped)} lines rejected)")
    return Document(source, path, "jsonl", path.stem, tuple(sections), tuple(skipped))


_LOADERS: dict[str, Callable[[bytes, str, Path, LoadOptions], Document]] = {
    "text": _load_text,
    "markdown": _load_markdown,
    "html": _load_html,
    "pdf": _load_pdf,
    "jsonl": _load_jsonl,
}
