"""Manifests: the immutable description of one table version.

A manifest lists the schema (with stable field ids, so renames and drops never
touch data files), the fragments and their data / deletion / row-id files, and
the counters that keep row ids and field ids unique forever.

On disk the fragments live in *pages* (see :mod:`hybrid.storage.pages`): immutable
files of up to a few hundred fragments each, shared by every version whose
fragments they still describe. The manifest file lists its pages in order and
then the last few fragments inline, so it stays small however many fragments
the table has, and a commit writes only the pages that changed (an append
usually none). Manifests of format 1 list every fragment inline; they are still
read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

import pyarrow as pa

from hybrid.errors import CorruptionError

FORMAT_VERSION = 4
"""The newest format this code reads and the one it writes; 1: fragments inline, 2: pages of fragments,
then the last few inline, 3: as 2 (pages optional) and sealed with a checksum (:mod:`hybrid.storage.checksums`),
which a reader requires; 4: as 3, and data files may hold long text in compressed blocks
(:mod:`hybrid.storage.blocks`), which older readers would misread."""
SEALED_FORMAT = 3


@dataclass(frozen=True)
class DataFile:
    """One Arrow IPC file holding some columns of a fragment, in `field_ids` order."""

    path: str
    field_ids: tuple[int, ...]


@dataclass(frozen=True)
class Fragment:
    """A run of rows stored together; row ids are ascending inside a fragment.

    Row ids are either contiguous (`rowid_start` .. `rowid_start + physical_rows - 1`,
    the case for every appended fragment) or listed in `rowid_file` (after
    compaction purged deleted rows).
    """

    id: int
    files: tuple[DataFile, ...]
    physical_rows: int
    rowid_start: int | None = None
    rowid_file: str | None = None
    rowid_min: int = 0
    rowid_max: int = -1
    deletion_file: str | None = None
    deleted_rows: int = 0

    @property
    def live_rows(self) -> int:
        return self.physical_rows - self.deleted_rows

    def with_rowid_start(self, start: int) -> Fragment:
        return replace(
            self,
            rowid_start=start,
            rowid_min=start,
            rowid_max=start + self.physical_rows - 1,
        )

    def file_paths(self) -> Iterator[str]:
        yield from (f.path for f in self.files)
        if self.rowid_file:
            yield self.rowid_file
        if self.deletion_file:
            yield self.deletion_file


@dataclass(frozen=True)
class Page:
    """An immutable file (`path`, relative to the table folder) holding a run of fragments."""

    path: str
    fragments: tuple[Fragment, ...] = field(repr=False)
    live_rows: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "live_rows", sum(f.live_rows for f in self.fragments))


PageReader = Callable[[str], Page]
"""Given a page's path, the page."""


@dataclass(frozen=True)
class Manifest:
    """Everything a reader needs to see version `version` of a table."""

    version: int
    timestamp: float
    operation: str
    schema: pa.Schema
    field_ids: tuple[int, ...]
    fragments: tuple[Fragment, ...] = ()
    next_field_id: int = 0
    next_rowid: int = 0
    next_fragment_id: int = 0
    schema_epoch: int = 0
    lineage_epoch: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    indexes: tuple[dict[str, Any], ...] = ()
    """Index entries (opaque to storage); each has a "name" and a "path" folder."""
    pages: tuple[Page, ...] = field(default=(), compare=False, repr=False)
    """The pages this manifest was read from or published with. After `replace` changed the
    fragments they need not cover them any more: publishing reuses the ones that still match."""

    @property
    def num_rows(self) -> int:
        covered = self.paged_prefix()
        if covered is None:
            return sum(f.live_rows for f in self.fragments)
        return sum(p.live_rows for p in self.pages) + sum(f.live_rows for f in self.fragments[covered:])

    def field_id(self, name: str) -> int:
        return self.field_ids[self.schema.get_field_index(name)]

    def file_paths(self) -> Iterator[str]:
        """Every file (and index folder) this version needs, relative to the table folder."""
        for frag in self.fragments:
            yield from frag.file_paths()
        for entry in self.indexes:
            yield entry["path"]

    def page_paths(self) -> Iterator[str]:
        """The pages this manifest lists when written (relative to the table folder)."""
        if self.paged_prefix() is not None:
            yield from (p.path for p in self.pages)

    def paged_prefix(self) -> int | None:
        """How many leading fragments `pages` hold, or None if they do not hold a prefix of `fragments`."""
        covered = 0
        for page in self.pages:
            end = covered + len(page.fragments)
            if self.fragments[covered:end] != page.fragments:  # identical objects compare fast
                return None
            covered = end
        return covered

    def to_json(self) -> str:
        """The manifest file's JSON (unsealed): its pages (when they hold a prefix of the fragments), then the
        rest inline."""
        covered = self.paged_prefix()
        body: dict[str, Any] = (
            {
                "fragment_count": len(self.fragments),
                "pages": [{"path": p.path, "fragments": len(p.fragments)} for p in self.pages],
                "fragments": fragments_to_dicts(self.fragments[covered:]),
            }
            if covered is not None and self.pages
            else {"fragments": fragments_to_dicts(self.fragments)}
        )
        return json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "version": self.version,
                "timestamp": self.timestamp,
                "operation": self.operation,
                "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
                "columns": [f"{f.name}: {f.type}" for f in self.schema],
                "field_ids": list(self.field_ids),
                "next_field_id": self.next_field_id,
                "next_rowid": self.next_rowid,
                "next_fragment_id": self.next_fragment_id,
                "schema_epoch": self.schema_epoch,
                "lineage_epoch": self.lineage_epoch,
                "metadata": self.metadata,
                "details": self.details,
                "num_rows": self.num_rows,
                **body,
                "indexes": list(self.indexes),
            },
            separators=(",", ":"),  # compact, and encoded by the C encoder (indent is pure Python)
        )

    @staticmethod
    def from_json(text: str, read_page: PageReader | None = None, sealed: bool = False) -> Manifest:
        """Parse a manifest's JSON; `read_page` loads the pages a paged manifest lists; `sealed`: its
        checksum was verified (required from format 3 on)."""
        d = json.loads(text)
        if d.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"table format {d['format_version']} is newer than this hybridsearch "
                f"understands ({FORMAT_VERSION}); upgrade hybridsearch"
            )
        if d.get("format_version", 0) >= SEALED_FORMAT and not sealed:
            raise CorruptionError(f"manifest of version {d.get('version')} lost its checksum")
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(d["schema"])))
        pages: tuple[Page, ...] = ()
        fragments = tuple(fragments_from_dicts(d["fragments"]))
        if d.get("pages"):
            if read_page is None:
                raise ValueError("a paged manifest needs a page reader")
            pages = tuple(_load_page(read_page, p["path"], p["fragments"]) for p in d["pages"])
            fragments = tuple(chain.from_iterable(p.fragments for p in pages)) + fragments
        return Manifest(
            version=d["version"],
            timestamp=d["timestamp"],
            operation=d["operation"],
            schema=schema,
            field_ids=tuple(d["field_ids"]),
            fragments=fragments,
            next_field_id=d["next_field_id"],
            next_rowid=d["next_rowid"],
            next_fragment_id=d["next_fragment_id"],
            schema_epoch=d["schema_epoch"],
            lineage_epoch=d["lineage_epoch"],
            metadata=d["metadata"],
            details=d.get("details", {}),
            indexes=tuple(d.get("indexes", ())),
            pages=pages,
        )


def _load_page(read_page: PageReader, path: str, count: int) -> Page:
    page = read_page(path)
    if len(page.fragments) != count:
        raise CorruptionError(f"page {path} holds {len(page.fragments)} fragments; the manifest lists {count}", path)
    return page


def fragments_to_dicts(fragments: Sequence[Fragment]) -> list[dict[str, Any]]:
    return [_fragment_to_dict(f) for f in fragments]


def fragments_from_dicts(dicts: list[dict[str, Any]]) -> list[Fragment]:
    return [_fragment_from_dict(d) for d in dicts]


def _fragment_to_dict(f: Fragment) -> dict[str, Any]:
    return {
        "id": f.id,
        "files": [{"path": df.path, "field_ids": list(df.field_ids)} for df in f.files],
        "physical_rows": f.physical_rows,
        "rowid_start": f.rowid_start,
        "rowid_file": f.rowid_file,
        "rowid_min": f.rowid_min,
        "rowid_max": f.rowid_max,
        "deletion_file": f.deletion_file,
        "deleted_rows": f.deleted_rows,
    }


def _fragment_from_dict(d: dict[str, Any]) -> Fragment:
    return Fragment(
        id=d["id"],
        files=tuple(DataFile(x["path"], tuple(x["field_ids"])) for x in d["files"]),
        physical_rows=d["physical_rows"],
        rowid_start=d["rowid_start"],
        rowid_file=d["rowid_file"],
        rowid_min=d["rowid_min"],
        rowid_max=d["rowid_max"],
        deletion_file=d["deletion_file"],
        deleted_rows=d["deleted_rows"],
    )
