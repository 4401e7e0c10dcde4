"""What writes return and how versions are described: :class:`Commit`, :class:`VersionInfo`,
and the manifest a restore or overwrite commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from hybrid.storage.manifest import Manifest


@dataclass(frozen=True)
class Commit:
    """What a write did: the version it created and the rows it touched."""

    version: int
    operation: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class VersionInfo:
    """One entry of :meth:`Table.versions`."""

    version: int
    timestamp: dt.datetime
    operation: str
    num_rows: int
    details: Mapping[str, Any]


def index_commit(manifest: Manifest) -> Commit:
    """The Commit of an index operation (it inserts, updates and deletes no rows)."""
    return Commit(manifest.version, manifest.operation)


def reset_content(latest: Manifest, content: Manifest) -> Manifest:
    """`content`'s schema and rows on top of `latest`'s counters (ids never reused)."""
    return replace(
        content,
        next_rowid=max(latest.next_rowid, content.next_rowid),
        next_field_id=max(latest.next_field_id, content.next_field_id),
        next_fragment_id=max(latest.next_fragment_id, content.next_fragment_id),
        schema_epoch=latest.schema_epoch + 1,
        lineage_epoch=latest.lineage_epoch + 1,
    )
