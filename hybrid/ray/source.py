"""`read`: one version of a table as a Ray Dataset whose read tasks read groups of fragments in parallel."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from hybrid.query.filter import compile_filter
from hybrid.ray.sink import open_database
from hybrid.storage.files import FileCache
from hybrid.storage.snapshot import Snapshot
from hybrid.storage.versions import VersionLog


def _read_fragments(
    where_from: tuple[str | Path, dict[str, Any] | None, str],
    version: int,
    fragment_ids: tuple[int, ...],
    columns: list[str],
    where: str | None,
    with_rowid: bool,
) -> Iterator[pa.Table]:
    """Runs in a Ray task: the live rows (matching `where`) of some fragments of one version of the table
    `where_from` names (database URI, storage options, table)."""
    uri, storage_options, table = where_from
    root = open_database(uri, storage_options).path / table
    manifest = VersionLog(root).load(version)
    wanted = set(fragment_ids)
    part = replace(manifest, fragments=tuple(f for f in manifest.fragments if f.id in wanted))
    snap = Snapshot(root, part, FileCache(root))
    predicate = None
    predicate_columns: tuple[str, ...] = ()
    if where is not None:
        flt = compile_filter(where, snap.schema)
        predicate, predicate_columns = flt.mask, flt.columns
    schema = snap.output_schema([c for c in columns if c != "_rowid"], with_rowid)
    batches = list(snap.scan(columns, with_rowid=with_rowid, predicate=predicate, predicate_columns=predicate_columns))
    yield pa.Table.from_batches(batches, schema=schema)


class TableDatasource(Datasource):
    """Fragments of one table version, split into read tasks of about equal row counts."""

    def __init__(
        self,
        where_from: tuple[str | Path, dict[str, Any] | None, str],
        root: Path,
        version: int,
        columns: Sequence[str] | None,
        where: str | None,
        with_rowid: bool,
    ) -> None:
        super().__init__()
        self.where_from = where_from
        self.manifest = VersionLog(root).load(version)
        schema = self.manifest.schema
        self.columns = list(schema.names if columns is None else columns)
        Snapshot(root, self.manifest, FileCache(root)).check_columns(self.columns)
        if where is not None:
            compile_filter(where, schema)  # a bad filter fails here, on the driver, naming what is wrong
        self.where = where
        self.with_rowid = with_rowid

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        live = [f for f in self.manifest.fragments if f.live_rows]
        if not live:
            return []
        groups = np.array_split(np.arange(len(live)), max(1, min(parallelism, len(live))))
        tasks = []
        for group in groups:
            frags = [live[i] for i in group.tolist()]
            ids = tuple(f.id for f in frags)
            meta = BlockMetadata(
                num_rows=None if self.where else sum(f.live_rows for f in frags),
                size_bytes=None,
                input_files=None,
                exec_stats=None,
            )
            args = (self.where_from, self.manifest.version, ids, self.columns, self.where, self.with_rowid)
            tasks.append(ReadTask(partial(_read_fragments, *args), meta, per_task_row_limit=per_task_row_limit))
        return tasks


def read(
    uri: str | Path,
    table: str,
    *,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    version: int | str | None = None,
    with_rowid: bool = False,
    parallelism: int = -1,
    storage_options: dict[str, Any] | None = None,
) -> ray.data.Dataset:
    """Table `table` of the database at `uri` (a folder, or an object store with its `storage_options`)
    as a Ray Dataset: the live rows of one version (the newest, or `version`: a number or tag),
    optionally only `columns` and rows matching the SQL filter `where`; fragments are read by parallel
    Ray tasks. A bad column or filter raises here."""
    db = open_database(uri, storage_options)
    t = db.open_table(table)
    if version is not None:
        t = t.checkout(version)
    source = TableDatasource((uri, storage_options, table), t.path, t.version, columns, where, with_rowid)
    return ray.data.read_datasource(source, parallelism=parallelism)
