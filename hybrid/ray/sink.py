"""`write`: a Ray Dataset into a table. Workers write data files; the driver commits them as one version.

Each write task streams its blocks into new data files (``data/<uuid>-<digest>.arrow``, checksummed
like any append) and returns the fragments it wrote. Only when every task has finished does the
driver publish one manifest listing them all, through the same optimistic commit as
:meth:`hybrid.Table.add` (appends from other writers in between commute). A task that fails removes
the files it wrote; a worker killed outright leaves its files unreferenced: no version lists them,
readers never see them, :meth:`hybrid.Table.check` passes, and :meth:`hybrid.Table.cleanup` removes
them once older than its cutoff. The table stays at the version it had, and a retry starts afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import ray.data
from ray.data.block import Block, BlockAccessor
from ray.data.datasource import Datasink
from ray.data.datasource.datasink import WriteResult

import hybrid
from hybrid.commits import Commit
from hybrid.embedders import binding
from hybrid.embedders.binding import EmbeddingSpec
from hybrid.errors import SchemaError, TableExistsError, TableNotFoundError
from hybrid.ray.embed import DEFAULT_BATCH, embed
from hybrid.storage import transactions as tx
from hybrid.storage.ingest import conform, infer_schema
from hybrid.storage.manifest import Fragment, Manifest
from hybrid.storage.remote import is_uri
from hybrid.storage.versions import VersionLog
from hybrid.storage.writer import write_fragments

logger = logging.getLogger(__name__)


def database_path(uri: str | Path) -> Path:
    """The local folder of a database URI (a path or ``file://`` URI)."""
    text = str(uri)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme != "file":
            raise ValueError(f"{uri!r}: not a local folder (a path or file:// URI)")
        return Path(rest)
    return Path(text)


def open_database(uri: str | Path, storage_options: dict[str, Any] | None = None) -> hybrid.Database:
    """The database at `uri`, as the driver and every Ray task reach it: a local (or mounted) folder, or
    an object store (``s3://bucket/prefix``, each process connecting with the same `storage_options`)."""
    if is_uri(str(uri)):
        if str(uri).startswith("memory://"):
            raise ValueError(f"{uri!r}: a memory:// store lives in one process; Ray tasks run in others")
        return hybrid.connect(str(uri), storage_options=storage_options, upkeep=None)
    if storage_options:
        raise ValueError("storage_options are for object-store URIs (s3://...), not a local folder")
    return hybrid.connect(database_path(uri), upkeep=None)


class TableSink(Datasink[list[tuple[int, list[Fragment]]]]):
    """The Ray Data sink of :func:`write`: tasks write fragments, the driver commits them once."""

    def __init__(self, uri: str | Path, storage_options: dict[str, Any] | None, table: str, base: Manifest) -> None:
        self.uri, self.storage_options, self.table = uri, storage_options, table
        self.base = base
        self.commit: Commit | None = None

    def get_name(self) -> str:
        return f"hybrid({self.table})"

    def _batches(self, blocks: Iterable[Block]) -> Iterator[pa.RecordBatch]:
        schema = self.base.schema
        for block in blocks:
            table = BlockAccessor.for_block(block).to_arrow()
            for batch in table.to_batches():
                if batch.num_rows:
                    yield conform(batch, schema)

    def write(self, blocks: Iterable[Block], ctx: Any) -> list[tuple[int, list[Fragment]]]:
        """Runs in a Ray task: every block of the task into new data files (removed again on an error)."""
        base = self.base
        db = open_database(self.uri, self.storage_options)
        root = db.path / self.table
        fragments = write_fragments(root, self._batches(blocks), base.schema, base.field_ids)
        if db.store is not None:  # on the store before the driver commits (its node may not share this disk)
            for frag in fragments:
                for f in frag.files:
                    db.store.upload(root / f.path)
        return [(int(getattr(ctx, "task_idx", 0)), fragments)]

    def on_write_complete(self, write_result: WriteResult[list[tuple[int, list[Fragment]]]]) -> None:
        """On the driver, after every task succeeded: one commit listing every task's fragments."""
        returns: Any = getattr(write_result, "write_returns", write_result)  # older Ray passes the list itself
        pieces = sorted((p for r in returns for p in r), key=lambda p: p[0])
        fragments = [f for _, frags in pieces for f in frags]
        rows = sum(f.physical_rows for f in fragments)
        base = self.base

        def rebase(latest: Manifest) -> Manifest:
            tx.require_same_schema("ray write", base, latest)
            return tx.append_fragments(latest, fragments)

        db = open_database(self.uri, self.storage_options)
        root = db.path / self.table
        try:
            new = tx.commit(VersionLog(root), base, "append", rebase, {"inserted": rows, "writer": "ray"})
        except BaseException:
            for frag in fragments:
                for f in frag.files:
                    (root / f.path).unlink(missing_ok=True)
            if db.store is not None:
                db.store.delete(db.store.key(root / f.path) for frag in fragments for f in frag.files)
            raise
        logger.info("ray write: version %d of %s, %d rows, %d files", new.version, self.table, rows, len(fragments))
        self.commit = Commit(new.version, "append", inserted=rows)


def _create(db: hybrid.Database, name: str, dataset: ray.data.Dataset, embedding: EmbeddingSpec | None) -> None:
    """Create table `name` with the schema of `dataset`'s rows (a float list column of one length is a vector)."""
    rows = dataset.take(16)
    if not rows:
        raise SchemaError("the dataset is empty: there is nothing to create the table from")
    sample = pa.Table.from_pylist(rows).combine_chunks()
    schema = infer_schema(sample.schema, sample.to_batches()[0])
    db.create_table(name, schema=schema, embedding=embedding)


def write(
    dataset: ray.data.Dataset,
    uri: str | Path,
    table: str,
    *,
    mode: Literal["append", "create"] = "append",
    embedding: EmbeddingSpec | None = None,
    embed_workers: int = 1,
    embed_batch_size: int = DEFAULT_BATCH,
    num_gpus: float | None = None,
    concurrency: int | None = None,
    ray_remote_args: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Commit:
    """Write `dataset` into table `table` of the database at `uri` (a folder, or an object store such as
    ``s3://bucket/prefix`` with its `storage_options`), in parallel, as ONE new version.

    `mode` "append" adds to the table, creating it (from the dataset's first rows) when missing;
    "create" requires that it does not exist yet. `embedding` binds vector columns when the table
    is created (``{"vector": ("text", embedder)}``); the table's bound embedders then fill those
    columns on a pool of `embed_workers` Ray actors (GPU actors when Ray sees GPUs). `concurrency`
    caps the write tasks; `ray_remote_args` go to them (e.g. ``{"max_retries": 0}``).

    Returns the :class:`hybrid.Commit`. If a task fails, nothing is committed (the table keeps its
    version) and the error propagates; files a killed worker left are unreferenced and harmless
    (:meth:`hybrid.Table.cleanup` removes them, on an object store too).
    """
    if mode not in ("append", "create"):
        raise ValueError(f"mode must be 'append' or 'create', got {mode!r}")
    db = open_database(uri, storage_options)
    exists = table in db
    if exists and mode == "create":
        raise TableExistsError(f"table {table!r} already exists; write with mode='append'")
    if not exists:
        _create(db, table, dataset, embedding)
    elif embedding is not None:
        raise SchemaError("embedding= binds columns when the table is created; this table exists already")
    try:
        target = db.open_table(table)
    except TableNotFoundError:  # pragma: no cover - created above
        raise
    base = VersionLog(target.path).load_latest()
    bindings = binding.read(base.metadata)
    if bindings:
        dataset = embed(dataset, bindings, workers=embed_workers, batch_size=embed_batch_size, num_gpus=num_gpus)
    sink = TableSink(uri, storage_options, table, base)
    dataset.write_datasink(sink, ray_remote_args=ray_remote_args or {}, concurrency=concurrency)
    if sink.commit is None:  # pragma: no cover - Ray raises when a task fails
        raise RuntimeError("the Ray write finished without committing")
    return sink.commit
