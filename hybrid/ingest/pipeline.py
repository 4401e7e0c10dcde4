"""`ingest`: load files, chunk them, embed the new chunks and upsert them into a table.

The table holds one row per chunk (see :data:`CHUNK_SCHEMA`) plus a ``vector``
column bound to an embedder, so text queries are embedded the same way later.
Chunk ids come from the source path, the chunk's position and its content
(:func:`hybrid.ingest.chunking.chunk_id`), so ingesting the same files again
changes nothing, and a changed file has its new chunks merged in (on ``id``)
and its old ones deleted. Only new chunks are embedded.

>>> import hybrid, tempfile, pathlib
>>> from hybrid.embedders import HashingEmbedder
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "notes.md").write_text("# Notes\\n\\nVACUUM reclaims storage.\\n")
>>> db = hybrid.connect(root / "db")
>>> report = ingest(db, "docs", [root / "notes.md"], embedder=HashingEmbedder(dim=32))
>>> (report.files, report.chunks, report.added), ingest(db, "docs", [root / "notes.md"]).added
((1, 1, 1), 0)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hybrid.embedders.twins import same_vectors
from hybrid.errors import SchemaError
from hybrid.ingest.chunking import HEADING_SEPARATOR, Chunk, Chunker
from hybrid.ingest.document import Document, Skipped
from hybrid.ingest.loaders import LoadOptions, decode, load_file, walk

if TYPE_CHECKING:
    from hybrid.db import Database
    from hybrid.embedders.base import Embedder
    from hybrid.table import Table

log = logging.getLogger(__name__)

CHUNK_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("title", pa.string()),
        pa.field("source", pa.string()),
        pa.field("heading", pa.string()),
        pa.field("page", pa.int32()),
        pa.field("chunk", pa.int32()),
        pa.field("metadata", pa.string()),
    ]
)
"""The columns of an ingested table, besides the bound ``vector`` column.

``source``: the file's path relative to the ingested folder; ``heading``: the
heading path (``"Chapter > Section"``); ``page``: the 1-based PDF page (else
null); ``chunk``: the chunk's number within its file; ``metadata``: a JSONL
record's other fields as JSON (else null)."""
VECTOR_COLUMN = "vector"
FTS_COLUMNS = ("title", "heading", "text")
TITLE_ROW = "is_title"
"""The boolean column of a table ingested with ``Chunker(titles="once")``: true on each document's title
row (declared the table's title row column; its full-text index covers heading and text only, the
title being a row of its own)."""
PARENT_SCHEMA = pa.schema(
    [pa.field("source", pa.string(), nullable=False), pa.field("title", pa.string()), pa.field("text", pa.string())]
)
"""The parent table ``<table>__parents``: each ingested file's whole text, for ``.expand(parent=True)``
(a text or markdown file's own text; the extracted text of other kinds)."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, stage one of "reading", "embedding", "indexing"."""


@dataclass
class IngestReport:
    """What one `ingest` call did."""

    table: str
    files: int = 0
    """Files read (each gave text)."""
    chunks: int = 0
    """Chunks those files give now."""
    added: int = 0
    """Chunks written (new or changed)."""
    removed: int = 0
    """Old chunks deleted (of changed, emptied or pruned files)."""
    new_files: int = 0
    changed_files: int = 0
    unchanged_files: int = 0
    pruned_files: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    version: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: "read" (load and chunk), "embed", "write" (upsert and delete), "index"."""


def ingest(
    db: Database,
    table_name: str,
    paths: Sequence[str | os.PathLike[str]],
    *,
    embedder: Embedder | None = None,
    chunker: Chunker | None = None,
    options: LoadOptions | None = None,
    prune: bool = False,
    build_indexes: bool = True,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest files and folders into `table_name`, creating it (bound to `embedder`) if needed.

    `embedder` defaults to the table's bound one, or for a new table to the one chosen
    by the language of the chunks (:mod:`hybrid.embedders.auto`: English text gets
    all-MiniLM-L6-v2, any other language or a mix the multilingual e5-small). `prune` also deletes the
    chunks of sources that were not seen in `paths` (files deleted since the last
    ingest of the same paths). With `build_indexes`, the full-text index over
    title, heading and text (BM25F) and the HNSW index are created or brought up to date.
    Files that cannot be read are listed in ``report.skipped``; nothing raises for them.
    """
    started = time.perf_counter()
    chunker = chunker or Chunker()
    options = options or LoadOptions()
    report = IngestReport(table_name)
    notify = progress or (lambda stage, done, total: None)

    documents = _read(paths, options, report, notify)
    chunks_by_source = {d.source: chunker.chunks(d) for d in documents}
    report.timings["read"] = time.perf_counter() - started
    report.files = len(documents)
    report.chunks = sum(len(c) for c in chunks_by_source.values())

    texts = (c.text for cs in chunks_by_source.values() for c in cs)
    table = _open_or_create(db, table_name, embedder, texts, chunker.titles == "once")
    existing = _existing_ids(table)
    emptied = {s.source for s in report.skipped if s.reason == "empty file" or s.reason.startswith("no text")}
    to_write: list[Chunk] = []
    stale: list[str] = []
    for source, chunks in [*chunks_by_source.items(), *((s, []) for s in sorted(emptied))]:
        old = existing.get(source, set())
        new = {c.id for c in chunks}
        if new == old:
            report.unchanged_files += bool(chunks)
            continue
        if old and chunks:
            report.changed_files += 1
        elif chunks:
            report.new_files += 1
        to_write.extend(c for c in chunks if c.id not in old)
        stale.extend(sorted(old - new))
    if prune:
        seen = set(chunks_by_source) | {s.source for s in report.skipped}
        gone = sorted(set(existing) - seen)
        report.pruned_files = len(gone)
        stale.extend(i for s in gone for i in sorted(existing[s]))

    clock = time.perf_counter()
    rows = _rows(table, to_write, notify) if to_write else None
    report.timings["embed"], clock = time.perf_counter() - clock, time.perf_counter()
    if rows is not None:
        table.merge_insert(rows, on="id")
        report.added = len(to_write)
    if stale:
        table.delete(_id_filter(stale))
        report.removed = len(stale)
    changed = {c.source for c in to_write}
    _write_parents(
        db, table, [d for d in documents if d.source in changed], {s for s in existing} - set(chunks_by_source)
    )
    report.timings["write"], clock = time.perf_counter() - clock, time.perf_counter()
    if build_indexes:
        _update_indexes(table, notify)
    report.timings["index"] = time.perf_counter() - clock
    report.version = table.version
    report.seconds = time.perf_counter() - started
    return report


def _read(
    paths: Iterable[str | os.PathLike[str]], options: LoadOptions, report: IngestReport, notify: Progress
) -> list[Document]:
    files = list(walk(paths, options))
    documents = []
    for done, (path, root) in enumerate(files, start=1):
        loaded = load_file(path, root, options)
        if isinstance(loaded, Skipped):
            report.skipped.append(loaded)
        else:
            documents.append(loaded)
            report.skipped.extend(loaded.skipped)
        notify("reading", done, len(files))
    seen: dict[str, str] = {}
    unique = []
    for doc in documents:  # two roots holding the same relative path: keep the first, report the rest
        if doc.source in seen:
            report.skipped.append(Skipped(doc.source, f"same source name as {seen[doc.source]} (ingest separately)"))
            continue
        seen[doc.source] = str(doc.path)
        unique.append(doc)
    return unique


def _open_or_create(db: Database, name: str, embedder: Embedder | None, texts: Iterable[str], once: bool) -> Table:
    if name in db:
        table = db.open_table(name)
        missing = [f.name for f in CHUNK_SCHEMA if f.name not in table.schema.names]
        if missing:
            raise SchemaError(f"table {name!r} was not made by ingest: it lacks the columns {missing}")
        made = "once" if TITLE_ROW in table.schema.names else "every"
        if made != ("once" if once else "every"):
            raise SchemaError(
                f"table {name!r} was ingested with titles={made!r}: ingest with the same, or into another table"
            )
        bound = table.embeddings.get(VECTOR_COLUMN)
        if bound is None or bound[0] != "text":
            raise SchemaError(f"table {name!r} has no embedder bound to its text column {VECTOR_COLUMN!r}")
        if embedder is not None and not same_vectors(embedder, bound[1]):
            raise SchemaError(
                f"table {name!r} embeds with {bound[1].name} {bound[1].to_config()}, not {embedder.name} "
                f"{embedder.to_config()}: leave the embedder out, or ingest into another table"
            )
        if table.chunking is None:  # made before ingest declared its layout
            _declare_chunking(table)
        return table
    if embedder is None:
        from hybrid.embedders.auto import embedder_for

        embedder = embedder_for(texts)
    schema = CHUNK_SCHEMA.append(pa.field(TITLE_ROW, pa.bool_())) if once else CHUNK_SCHEMA
    table = db.create_table(name, schema=schema, embedding={VECTOR_COLUMN: ("text", embedder)})
    _declare_chunking(table)
    return table


def parents_table_name(name: str) -> str:
    """The name of the table holding the whole texts of the documents ingested into `name`."""
    return f"{name}__parents"


def _declare_chunking(table: Table) -> None:
    """Chunks know their document: ``source`` is the parent key, ``chunk`` the position, ``heading`` the
    path; the documents' whole texts are in the parent table."""
    table.set_chunking(
        parent="source",
        position="chunk",
        heading="heading",
        text="text",
        parent_table=parents_table_name(table.name),
        parent_key="source",
        parent_text="text",
        title_row=TITLE_ROW if TITLE_ROW in table.schema.names else None,
    )


def document_text(doc: Document) -> str:
    """A document's whole text: a text or markdown file's own text, else its sections' headings and blocks."""
    if doc.kind in ("text", "markdown"):
        try:
            return decode(doc.path.read_bytes())
        except (OSError, ValueError):
            pass
    parts: list[str] = []
    for section in doc.sections:
        if section.heading and (not parts or parts[-1] != HEADING_SEPARATOR.join(section.heading)):
            parts.append(HEADING_SEPARATOR.join(section.heading))
        parts.extend(b for b in section.blocks if b.strip())
    return "\n\n".join(parts)


def _write_parents(db: Database, table: Table, documents: list[Document], gone: set[str]) -> None:
    """Upsert the changed documents' whole texts into the parent table; drop those of `gone` sources."""
    layout = table.chunking
    if layout is None or layout.parent_table is None or not (documents or gone):
        return
    name = layout.parent_table
    parents = db.open_table(name) if name in db else db.create_table(name, schema=PARENT_SCHEMA)
    if documents:
        rows = pa.table(
            {
                "source": [d.source for d in documents],
                "title": [d.title for d in documents],
                "text": [document_text(d) for d in documents],
            },
            schema=PARENT_SCHEMA,
        )
        parents.merge_insert(rows, on="source")
    live = {s for s in parents.to_arrow(["source"]).column("source").to_pylist()}
    dropped = sorted((gone & live) - set(table.to_arrow(["source"]).column("source").to_pylist()))
    if dropped:
        parents.delete("source IN (" + ", ".join("'" + s.replace("'", "''") + "'" for s in dropped) + ")")


def _existing_ids(table: Table) -> dict[str, set[str]]:
    data = table.to_arrow(["id", "source"])
    out: dict[str, set[str]] = {}
    for chunk_id, source in zip(data.column("id").to_pylist(), data.column("source").to_pylist()):
        out.setdefault(source, set()).add(chunk_id)
    return out


def _rows(table: Table, chunks: list[Chunk], notify: Progress) -> pa.Table:
    """The chunks as rows of `table`, their vectors embedded in batches (with progress)."""
    _, embedder = table.embeddings[VECTOR_COLUMN]
    texts = [c.text for c in chunks]
    embedded = [c.embedding_text for c in chunks]
    step = max(1, int(getattr(embedder, "batch_size", 64)))
    vectors = np.empty((len(texts), embedder.dim), dtype=np.float32)
    notify("embedding", 0, len(texts))
    for start in range(0, len(texts), step):
        vectors[start : start + step] = embedder.embed_documents(embedded[start : start + step])
        notify("embedding", min(start + step, len(texts)), len(texts))
    columns: dict[str, Any] = {
        "id": [c.id for c in chunks],
        "text": texts,
        "title": [c.title for c in chunks],
        "source": [c.source for c in chunks],
        "heading": [c.heading for c in chunks],
        "page": [c.page for c in chunks],
        "chunk": [c.chunk for c in chunks],
        "metadata": [None if c.metadata is None else json.dumps(c.metadata, default=str) for c in chunks],
    }
    schema = CHUNK_SCHEMA
    if TITLE_ROW in table.schema.names:
        columns[TITLE_ROW] = [c.is_title for c in chunks]
        schema = schema.append(pa.field(TITLE_ROW, pa.bool_()))
    arrays = [pa.array(columns[f.name], f.type) for f in schema]
    vector_type = table.schema.field(VECTOR_COLUMN).type
    arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), embedder.dim))
    schema = schema.append(pa.field(VECTOR_COLUMN, vector_type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _id_filter(ids: Sequence[str]) -> str:
    quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
    return f"id IN ({quoted})"


def _update_indexes(table: Table, notify: Progress) -> None:
    if table.count_rows() == 0:
        return
    kinds = {s["kind"] for s in table.index_stats()}
    notify("indexing", 0, 1)
    if "fts" not in kinds:  # a title row holds its title as text: the other rows' title is not indexed
        once = TITLE_ROW in table.schema.names
        table.create_fts_index([c for c in FTS_COLUMNS if not (once and c == "title")])
    if "vector" not in kinds:
        table.create_vector_index(VECTOR_COLUMN)
    table.optimize()
    notify("indexing", 1, 1)
