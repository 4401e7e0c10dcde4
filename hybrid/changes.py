"""The row and column computations behind update, merge_insert and add_columns.

These functions build new data (as Arrow) from a snapshot and the user's
request; :class:`hybrid.table.Table` writes and commits it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybrid.errors import DuplicateKeyError, SchemaError
from hybrid.query.filter import evaluate_expressions
from hybrid.storage import checksums, disk
from hybrid.storage.files import DATA_DIR, fsync_dir
from hybrid.storage.ingest import check_column_name, conform, infer_schema, to_batches
from hybrid.storage.manifest import DataFile, Fragment
from hybrid.storage.snapshot import ROWID, Snapshot
from hybrid.storage.writer import scatter_live

ColumnSpec = (
    Mapping[str, str]
    | pa.Field
    | Sequence[pa.Field]
    | pa.Schema
    | Callable[[pa.RecordBatch], Any]
    | pa.Table
    | pa.RecordBatch
    | Mapping[str, Sequence[Any]]
)
"""What :meth:`hybrid.Table.add_columns` accepts (see its docstring)."""


def _as_table(data: Any) -> pa.Table:
    schema, batches = to_batches(data)
    return pa.Table.from_batches(list(batches), schema=schema)


# -- update -------------------------------------------------------------------------------


def updated_rows(
    matched: pa.Table, schema: pa.Schema, values: Mapping[str, Any], values_sql: Mapping[str, str]
) -> pa.Table:
    """`matched` rows with `values` (Python) and `values_sql` (SQL expressions) applied."""
    both = set(values) & set(values_sql)
    if both:
        raise SchemaError(f"column(s) {sorted(both)} given in both values and values_sql")
    unknown = [c for c in [*values, *values_sql] if schema.get_field_index(c) < 0]
    if unknown:
        raise SchemaError(f"update of unknown column(s) {unknown}; the table has: {', '.join(schema.names)}")
    n = matched.num_rows
    replaced: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name, value in values.items():
        try:
            replaced[name] = pa.array([value] * n) if n else pa.nulls(0, schema.field(name).type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(f"update value for {name!r} is not a valid value: {exc}") from None
    if values_sql:
        computed = evaluate_expressions(values_sql, matched, schema)
        for name in values_sql:
            replaced[name] = computed.column(name)
    columns = {name: replaced.get(name, matched.column(name)) for name in schema.names}
    table = pa.table({k: v for k, v in columns.items()})
    if n == 0:
        table = table.cast(schema)
    return pa.Table.from_batches([conform(b, schema) for b in table.to_batches()], schema=schema)


# -- merge_insert ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MergePlan:
    rows: pa.Table
    delete_rowids: np.ndarray
    updated: int


def plan_merge(
    snap: Snapshot, data: Any, on: list[str], when_matched: str, when_not_matched: str, when_not_matched_by_source: str
) -> MergePlan:
    """Work out which rows a merge_insert writes and which row ids it deletes."""
    schema = snap.schema
    _check_choice("when_matched", when_matched, ("update", "ignore"))
    _check_choice("when_not_matched", when_not_matched, ("insert", "ignore"))
    _check_choice("when_not_matched_by_source", when_not_matched_by_source, ("keep", "delete"))
    if not on:
        raise SchemaError("merge_insert needs at least one key column in `on`")
    snap.check_columns(on)
    source = _as_table(data)
    missing = [k for k in on if k not in source.column_names]
    if missing:
        raise SchemaError(f"merge_insert source lacks key column(s) {missing}")
    present = pa.schema([schema.field(n) for n in source.column_names if schema.get_field_index(n) >= 0])
    source = pa.Table.from_batches([conform(b, present) for b in source.to_batches()], schema=present)
    counts = source.group_by(on).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts.column("count_all"), 1))
    if dup.num_rows:
        example = {k: dup.column(k)[0].as_py() for k in on}
        raise DuplicateKeyError(
            f"merge_insert source holds {dup.num_rows} key(s) more than once, e.g. {example}; "
            "keys must be unique in the source"
        )
    target = snap.to_arrow(on, with_rowid=True)
    src_keys = source.select(on).append_column("__src", pa.array(np.arange(source.num_rows)))
    joined = src_keys.join(target, keys=on, join_type="inner")
    matched_src = np.unique(joined.column("__src").to_numpy())
    matched_rowids = joined.column(ROWID).to_numpy()
    is_matched = np.zeros(source.num_rows, dtype=bool)
    is_matched[matched_src] = True

    pieces: list[pa.Table] = []
    delete: list[np.ndarray] = []
    updated = 0
    if when_matched == "update" and len(matched_src):
        pieces.append(_full_rows(snap, source, joined, matched_src))
        delete.append(matched_rowids)
        updated = len(matched_src)
    if when_not_matched == "insert" and (~is_matched).any():
        fresh = source.filter(pa.array(~is_matched))
        pieces.append(pa.Table.from_batches([conform(b, schema) for b in fresh.to_batches()], schema=schema))
    if when_not_matched_by_source == "delete":
        all_ids = target.column(ROWID).to_numpy()
        delete.append(all_ids[~np.isin(all_ids, matched_rowids)])
    rows = pa.concat_tables(pieces) if pieces else schema.empty_table()
    ids = np.unique(np.concatenate(delete)) if delete else np.empty(0, dtype=np.uint64)
    return MergePlan(rows.combine_chunks() if pieces else rows, ids.astype(np.uint64), updated)


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _full_rows(snap: Snapshot, source: pa.Table, joined: pa.Table, matched_src: np.ndarray) -> pa.Table:
    """Source rows for matched keys, completed with the target's values for omitted columns."""
    schema = snap.schema
    src = source.take(pa.array(matched_src))
    if source.column_names == schema.names:
        return src
    first = joined.group_by("__src").aggregate([(ROWID, "min")]).sort_by("__src")
    rowids = first.column(f"{ROWID}_min").to_numpy()
    old = snap.take(rowids)
    columns = [src.column(n) if n in source.column_names else old.column(n) for n in schema.names]
    return pa.Table.from_arrays(columns, schema=schema)


# -- add_columns ------------------------------------------------------------------------------

Compute = Callable[[Fragment, pa.Table, np.ndarray], pa.Table]
"""(fragment, live input rows, their row ids) -> new columns for those rows."""


def compute_new_columns(
    root: Path, snap: Snapshot, spec: Any, input_columns: Sequence[str] | None, batch_size: int
) -> tuple[pa.Schema, tuple[int, ...], dict[int, DataFile]]:
    """Write the new columns' files; return (new schema, new field ids, file per fragment id)."""
    manifest = snap.manifest
    schema = snap.schema
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if isinstance(spec, (pa.Field, pa.Schema)) or (
        isinstance(spec, (list, tuple)) and spec and all(isinstance(f, pa.Field) for f in spec)
    ):
        fields = list(spec) if not isinstance(spec, pa.Field) else [spec]
        new_schema = _extend(schema, fields)
        ids = manifest.field_ids + tuple(range(manifest.next_field_id, manifest.next_field_id + len(fields)))
        return new_schema, ids, {}
    compute, inputs = _compute_fn(snap, spec, input_columns)
    snap.check_columns(inputs)
    out_schema: pa.Schema | None = None
    first: dict[tuple[int, int], pa.Table] = {}
    for frag, start, table, rowids in _slices(snap, inputs, batch_size):
        if table.num_rows:
            out = compute(frag, table, rowids)
            first[(frag.id, start)] = out
            out_schema = infer_schema(out.schema, out.to_batches()[0] if out.num_rows else None)
            break
    if out_schema is None:
        empty = schema.empty_table().select(list(inputs))
        probe = compute(Fragment(-1, (), 0), empty, np.empty(0, dtype=np.uint64))
        out_schema = infer_schema(probe.schema, None)
    new_schema = _extend(schema, list(out_schema))
    new_ids = tuple(range(manifest.next_field_id, manifest.next_field_id + len(out_schema)))
    files: dict[int, DataFile] = {}
    written: list[Path] = []
    try:
        for frag in manifest.fragments:
            if frag.live_rows == 0:
                continue
            rel = f"{DATA_DIR}/{os.urandom(16).hex()}.arrow"
            written.append(root / rel)
            with disk.current().create(root / rel) as fh:
                sink = checksums.HashingSink(fh)
                writer = pa.ipc.new_file(sink, out_schema)
                for _, start, table, rowids, mask in _fragment_slices(snap, frag, inputs, batch_size):
                    cached = first.pop((frag.id, start), None)
                    out = (
                        cached
                        if cached is not None
                        else (compute(frag, table, rowids) if table.num_rows else out_schema.empty_table())
                    )
                    if out.num_rows != table.num_rows:
                        raise SchemaError(f"add_columns produced {out.num_rows} rows for a batch of {table.num_rows}")
                    out = pa.Table.from_batches(
                        [conform(b, out_schema) for b in out.select(out_schema.names).to_batches()], schema=out_schema
                    )
                    physical = len(mask) if mask is not None else table.num_rows
                    writer.write_table(scatter_live(out, mask, physical))
                writer.close()
                disk.current().sync(fh)
            rel = checksums.publish_named(root, rel, sink.digest())
            written[-1] = root / rel
            files[frag.id] = DataFile(rel, new_ids)
        if written:
            fsync_dir(root / DATA_DIR)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return new_schema, manifest.field_ids + new_ids, files


def _extend(schema: pa.Schema, fields: list[pa.Field]) -> pa.Schema:
    for field in fields:
        check_column_name(field.name)
        if schema.get_field_index(field.name) >= 0:
            raise SchemaError(f"column {field.name!r} already exists; drop or rename it first")
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise SchemaError(f"duplicate new column names {names}")
    return pa.schema(list(schema) + [f.with_nullable(True) for f in fields], metadata=schema.metadata)


def _compute_fn(snap: Snapshot, spec: Any, input_columns: Sequence[str] | None) -> tuple[Compute, list[str]]:
    schema = snap.schema
    if isinstance(spec, Mapping) and spec and all(isinstance(v, str) for v in spec.values()):
        exprs = dict(spec)

        def sql(frag: Fragment, table: pa.Table, rowids: np.ndarray) -> pa.Table:
            return evaluate_expressions(exprs, table, schema)

        return sql, list(input_columns or schema.names)
    if callable(spec) and not isinstance(spec, (pa.Table, Mapping)):
        fn = spec

        def call(frag: Fragment, table: pa.Table, rowids: np.ndarray) -> pa.Table:
            batch = (
                table.combine_chunks().to_batches()[0]
                if table.num_rows
                else pa.RecordBatch.from_pylist([], schema=table.schema)
            )
            return _as_table(fn(batch))

        return call, list(input_columns or schema.names)
    values = _as_table(spec)
    return _aligned_values(snap, values), []


def _aligned_values(snap: Snapshot, values: pa.Table) -> Compute:
    """New columns given as values: aligned by `_rowid` if present, else by scan order."""
    if ROWID in values.column_names:
        ids = values.column(ROWID).to_numpy().astype(np.uint64)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        if len(sorted_ids) > 1 and (np.diff(sorted_ids) == 0).any():
            raise DuplicateKeyError("add_columns values repeat a _rowid")
        data = values.drop_columns([ROWID])

        def by_rowid(frag: Fragment, table: pa.Table, rowids: np.ndarray) -> pa.Table:
            pos = np.searchsorted(sorted_ids, rowids)
            found = pos < len(sorted_ids)
            found[found] = sorted_ids[pos[found]] == rowids[found]
            index = np.where(found, order[np.minimum(pos, len(order) - 1)], 0)
            return data.take(pa.array(index, mask=~found))

        return by_rowid
    if values.num_rows != snap.manifest.num_rows:
        raise SchemaError(
            f"add_columns values have {values.num_rows} rows but the table has {snap.manifest.num_rows}; "
            "pass one row per live row in scan order, or a _rowid column to align by"
        )
    cursor = [0]

    def in_order(frag: Fragment, table: pa.Table, rowids: np.ndarray) -> pa.Table:
        piece = values.slice(cursor[0], table.num_rows)
        cursor[0] += table.num_rows
        return piece

    return in_order


def _fragment_slices(
    snap: Snapshot, frag: Fragment, inputs: Sequence[str], batch_size: int
) -> Iterator[tuple[Fragment, int, pa.Table, np.ndarray, np.ndarray | None]]:
    """(fragment, start, live input rows, their row ids, live mask of the slice) per physical slice."""
    rowids = snap.rowids(frag)
    mask = snap.live_mask(frag)
    for start in range(0, frag.physical_rows, batch_size):  # read per slice: text in blocks decoded a slice at a time
        piece = snap.read_fragment(frag, inputs, rows=(start, min(start + batch_size, frag.physical_rows)))
        ids = rowids[start : start + batch_size]
        m = None if mask is None else mask[start : start + batch_size]
        if m is not None:
            piece, ids = piece.filter(pa.array(m)), ids[m]
        yield frag, start, piece, ids, m


def _slices(
    snap: Snapshot, inputs: Sequence[str], batch_size: int
) -> Iterator[tuple[Fragment, int, pa.Table, np.ndarray]]:
    for frag in snap.manifest.fragments:
        if frag.live_rows:
            for f, start, table, ids, _ in _fragment_slices(snap, frag, inputs, batch_size):
                yield f, start, table, ids
