"""hybrid: a hybrid (full-text + vector) search engine for RAG, as a Python library.

>>> import hybrid, tempfile
>>> db = hybrid.connect(tempfile.mkdtemp())
>>> t = db.create_table("docs", [{"id": 1, "text": "hello", "vector": [0.1, 0.2]}])
>>> t.schema.field("vector").type
FixedSizeListType(fixed_size_list<item: float>[2])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybrid.aio import AsyncDatabase, AsyncTable, connect_async
from hybrid.commits import Commit, VersionInfo
from hybrid.db import Database
from hybrid.errors import (
    AccessError,
    CommitConflictError,
    CorruptionError,
    DuplicateKeyError,
    EncryptionError,
    FilterError,
    HybridError,
    LimitError,
    MissingDependencyError,
    QueryError,
    ReadOnlyError,
    RowNotFoundError,
    SchemaError,
    StorageError,
    TableExistsError,
    TableNotFoundError,
    VectorError,
    VersionNotFoundError,
)
from hybrid.index.upkeep import DEFAULT_UPKEEP, Upkeep
from hybrid.query.limits import Limits, set_limits
from hybrid.scoped import ScopedDatabase, ScopedTable
from hybrid.storage.crypto import KeySource
from hybrid.storage.writer import CleanupStats
from hybrid.table import Table

__version__ = "0.1.0"


def connect(
    path: str | Path,
    *,
    upkeep: Upkeep | None = DEFAULT_UPKEEP,
    encryption_key: KeySource | None = None,
    previous_key: KeySource | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Database:
    """Open (creating if needed) the database stored in the folder `path`.

    `upkeep` says when tables opened through it compact their small fragments and merge
    their indexes by themselves after writes, in a background thread (None: never).
    `encryption_key` (32 bytes, 64 hex digits, or a callable returning one; default: the
    ``HYBRID_ENCRYPTION_KEY`` environment variable) encrypts the database's files at rest
    with AES-256-GCM (the `encryption` extra; see docs/data-protection.md). `previous_key`: the old
    key, only to finish a key rotation (`Database.rotate_key`) that was interrupted.

    `path` may also be a URI: ``s3://bucket/prefix`` (and ``gs://``, ``az://``, ``memory://``) keeps
    the database on an object store, configured by `storage_options` (endpoint, credentials,
    ``cache_dir``, ``cache_size``; the `s3` extra, see docs/object-storage.md); ``file:///folder``
    is a local folder.
    """
    return Database(
        path, upkeep, encryption_key=encryption_key, previous_key=previous_key, storage_options=storage_options
    )


__all__ = [
    "AccessError",
    "AsyncDatabase",
    "AsyncTable",
    "CleanupStats",
    "Commit",
    "CommitConflictError",
    "CorruptionError",
    "Database",
    "Upkeep",
    "DuplicateKeyError",
    "EncryptionError",
    "FilterError",
    "HybridError",
    "LimitError",
    "Limits",
    "MissingDependencyError",
    "QueryError",
    "ReadOnlyError",
    "RowNotFoundError",
    "SchemaError",
    "StorageError",
    "ScopedDatabase",
    "ScopedTable",
    "Table",
    "TableExistsError",
    "TableNotFoundError",
    "VectorError",
    "VersionInfo",
    "VersionNotFoundError",
    "__version__",
    "connect",
    "connect_async",
    "set_limits",
]
