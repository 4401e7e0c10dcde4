"""Manifests: the immutable description of one table version.

A manifest lists the schema (with stable field ids, so renames and drops never
touch data files), the fragments and their data / deletion / row-id files, and
the counters that keep row ids and field ids unique forever.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

FORMAT_VERSION = 1


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

    @property
    def num_rows(self) -> int:
        return sum(f.live_rows for f in self.fragments)

    def field_id(self, name: str) -> int:
        return self.field_ids[self.schema.get_field_index(name)]

    def file_paths(self) -> Iterator[str]:
        """Every file (and index folder) this version needs, relative to the table folder."""
        for frag in self.fragments:
            yield from frag.file_paths()
        for entry in self.indexes:
            yield entry["path"]

    def to_json(self) -> str:
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
                "fragments": [_fragment_to_dict(f) for f in self.fragments],
                "indexes": list(self.indexes),
            },
            separators=(",", ":"),  # compact, and encoded by the C encoder (indent is pure Python)
        )

    @staticmethod
    def from_json(text: str) -> Manifest:
        d = json.loads(text)
        if d.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"table format {d['format_version']} is newer than this hybridsearch "
                f"understands ({FORMAT_VERSION}); upgrade hybridsearch"
            )
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(d["schema"])))
        return Manifest(
            version=d["version"],
            timestamp=d["timestamp"],
            operation=d["operation"],
            schema=schema,
            field_ids=tuple(d["field_ids"]),
            fragments=tuple(_fragment_from_dict(f) for f in d["fragments"]),
            next_field_id=d["next_field_id"],
            next_rowid=d["next_rowid"],
            next_fragment_id=d["next_fragment_id"],
            schema_epoch=d["schema_epoch"],
            lineage_epoch=d["lineage_epoch"],
            metadata=d["metadata"],
            details=d.get("details", {}),
            indexes=tuple(d.get("indexes", ())),
        )


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
