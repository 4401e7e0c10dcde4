"""The exceptions `hybrid` raises.

Every error derives from :class:`HybridError` and also from the builtin that
fits it, so ``except ValueError`` keeps working for callers that do not know
our hierarchy::

    HybridError
    ├── SchemaError(ValueError)           data does not fit the table's schema
    │   └── VectorError                   wrong vector length, NaN or inf
    ├── FilterError(ValueError)           malformed, unsafe or unknown-column `where`
    ├── QueryError(ValueError)            an empty or malformed search query
    ├── DuplicateKeyError(ValueError)     merge_insert source repeats a key
    ├── TableNotFoundError(LookupError)   no such table
    ├── TableExistsError(FileExistsError) create_table on an existing name
    ├── VersionNotFoundError(LookupError) checkout/restore of a missing version
    ├── RowNotFoundError(KeyError)        take() of a row id that is not live
    ├── ReadOnlyError(PermissionError)    write to a checked-out old version
    ├── CommitConflictError(RuntimeError) a concurrent writer changed the same rows
    ├── EmbeddingError(ValueError)        empty text, a model that is missing or returns bad vectors
    ├── RegistryError(ValueError)         unknown or duplicate embedder name
    ├── MissingDependencyError(ImportError) an optional extra is not installed
    ├── CorruptionError(OSError)          a file of the table is damaged or missing
    ├── EncryptionError(PermissionError)  an encrypted database opened without its key, or with another
    ├── LimitError(RuntimeError)          a filter or query would exceed a time, memory or size bound
    ├── AccessError(PermissionError)      a scoped view or key may not read or write this
    ├── StorageError(OSError)             an object store is unreachable, refuses the credentials, lacks
    │                                     the bucket or cannot do conditional puts
    └── FeedbackError(ValueError)         feedback naming an unknown row, a label out of range, an empty query
"""

from __future__ import annotations


class HybridError(Exception):
    """Root of every error raised by `hybrid`."""


class SchemaError(HybridError, ValueError):
    """Data does not match the table's schema."""


class VectorError(SchemaError):
    """A vector has the wrong length or holds NaN / inf."""


class FilterError(HybridError, ValueError):
    """A `where` expression is malformed, unsafe or names an unknown column."""


class QueryError(HybridError, ValueError):
    """A search query is empty or malformed (no words to search for, a Boolean query without clauses...)."""


class DuplicateKeyError(HybridError, ValueError):
    """The source of a merge_insert holds the same key more than once."""


class TableNotFoundError(HybridError, LookupError):
    """No table of that name exists in the database."""


class TableExistsError(HybridError, FileExistsError):
    """A table of that name already exists."""


class VersionNotFoundError(HybridError, LookupError):
    """The requested table version does not exist (or was cleaned up)."""


class RowNotFoundError(HybridError, KeyError):
    """A requested row id is not a live row of this version."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ReadOnlyError(HybridError, PermissionError):
    """A write was attempted on a read-only view (a checked-out version)."""


class CommitConflictError(HybridError, RuntimeError):
    """A concurrent commit changed what this write depends on; nothing was written."""


class EmbeddingError(HybridError, ValueError):
    """Text cannot be embedded: it is empty, or the model is missing or returned bad vectors."""


class RegistryError(HybridError, ValueError):
    """An embedder name is unknown, or is registered twice."""


class MissingDependencyError(HybridError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def require_default(module: str) -> object:
    """Import a package of the default install, or raise :class:`MissingDependencyError` saying how to repair it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is not installed, though the default install has it: pip install --force-reinstall hybridsearch"
        ) from exc


def require(module: str, extra: str) -> object:
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{module} is not installed: pip install 'hybridsearch[{extra}]'") from exc


class CorruptionError(HybridError, OSError):
    """A file of a table is damaged (its checksum does not match), unreadable or missing; `path` names it
    (relative to the table folder) and `problem` says which."""

    def __init__(self, message: str, path: str = "", problem: str = "damaged") -> None:
        super().__init__(message)
        self.path = path
        self.problem = problem


class EncryptionError(HybridError, PermissionError):
    """An encrypted database was opened without its key or with another key, or a key is malformed."""


class LimitError(HybridError, RuntimeError):
    """A filter, expression or SQL query would exceed a time, memory or size bound (:class:`hybrid.Limits`)."""


class AccessError(HybridError, PermissionError):
    """A scoped view or key may not do this: a row outside its row scope, a column it is not granted
    (raw vectors), or an operation a row scope cannot bound; nothing was written or returned."""


class FeedbackError(HybridError, ValueError):
    """Feedback that cannot be kept (nothing is written): an unknown row or key, a label out of range, no query."""


class StorageError(HybridError, OSError):
    """An object store (``s3://`` ...) cannot be used: its endpoint is unreachable, the credentials are
    missing or refused, the bucket does not exist, or it does not honour conditional puts."""
