"""The storage benchmark's stores: one adapter per store, all driven in one process.

How each store is driven:

* hybrid  - ``hybrid.connect(dir).create_table(...)`` then ``t.add(chunk)``;
  ``t.take(rowids)``; ``t.scan(columns=["text"])``; ``t.add_columns(fn, ...)``.
* LanceDB - ``lancedb.connect(dir).create_table(...)`` then ``tbl.add(chunk)``;
  ``tbl.take_offsets(idx).to_arrow()`` (native random access, no ``pylance``
  needed; LanceDB returns the rows in its own order, we do not reorder them);
  ``tbl.search().select(["text"]).limit(None).to_batches()`` for the scan;
  ``tbl.add_columns({name: SQL})`` for the new column (LanceDB's Python
  ``add_columns`` takes SQL expressions only, so the random vector is made by
  ``arrow_cast(make_array(random(), ... x384), 'FixedSizeList(384, Float32)')``).
* Parquet - one file per ingested chunk in a folder, written with
  ``pyarrow.parquet.write_table`` (default settings: snappy, one row group per
  file unless ``--parquet-row-group`` is given).  ``take`` maps the global row
  numbers to (file, row group), reads only those row groups with
  ``ParquetFile.read_row_group`` (file handles and footers opened once, like
  the other stores' open tables) and takes the rows, returned in request order.
  Scan is ``pq.read_table(folder, columns=["text"])``.  Adding a column means
  rewriting every file with the extra column (what a Parquet user has to do).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.frame import Guard
from bench.storage_data import DIM, NEW_COLUMN, TABLE, VERSIONS_TABLE, new_column_for

PAGE = 4096


def touch_column(arr: pa.Array) -> int:
    """Read one byte of every 4 KiB page of a string column's offsets and
    value bytes (only the slice this array covers).  Memory-mapped,
    zero-copy results are otherwise never read by `nbytes`; this forces the
    pages in so that all stores pay for getting the bytes into memory."""
    if isinstance(arr, pa.ChunkedArray):
        return sum(touch_column(c) for c in arr.chunks)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_binary(arr.type):
        odt = np.int64 if pa.types.is_large_string(arr.type) else np.int32
        bufs = arr.buffers()
        offs = np.frombuffer(bufs[1], dtype=odt)[arr.offset : arr.offset + len(arr) + 1]
        data = (
            np.frombuffer(bufs[2], dtype=np.uint8)[int(offs[0]) : int(offs[-1])]
            if bufs[2] is not None
            else np.empty(0, np.uint8)
        )
        return int(offs[:: PAGE // offs.itemsize].sum()) + int(data[::PAGE].sum()) + int(data[-1:].sum())
    total = 0  # other types: touch every buffer (whole buffers)
    for b in arr.buffers():
        if b is not None:
            total += int(np.frombuffer(b, dtype=np.uint8)[::PAGE].sum())
    return total


class Store:
    name = "?"

    def __init__(self, root: Path):
        self.root = root
        self.dir = root / self.name
        self.dir.mkdir(parents=True, exist_ok=True)

    # big table
    def append(self, chunk: pa.Table, first: bool) -> None: ...
    def prepare_reads(self) -> None: ...
    def take(self, idx: np.ndarray) -> pa.Table: ...
    def scan_text(self) -> int: ...
    def scan_text_touch(self) -> int: ...

    def fresh_scan_text_touch(self) -> int:
        self.prepare_reads()
        return self.scan_text_touch()

    def add_column(self, n_rows: int) -> None: ...
    def count(self) -> int: ...
    def table_dir(self) -> Path:
        return self.dir

    # versions table
    def versions_append(self, chunk: pa.Table, first: bool) -> None:
        raise NotImplementedError

    def versions_open_count(self) -> int:
        raise NotImplementedError

    def versions_count(self) -> int | None:
        return None


class DatabaseStore(Store):
    """A store opened with ``<module>.connect(dir)`` (hybrid, LanceDB): the calls the two have in common."""

    def __init__(self, root: Path, mod):
        super().__init__(root)
        self.mod = mod
        self.db = mod.connect(str(self.dir / "db"))
        self.t = None
        self.vt = None

    def append(self, chunk, first):
        if first:
            self.t = self.db.create_table(TABLE, data=chunk)
        else:
            self.t.add(chunk)

    def prepare_reads(self):
        # reopen, like a reader process would
        self.t = self.mod.connect(str(self.dir / "db")).open_table(TABLE)

    def count(self):
        return self.t.count_rows()

    def text_batches(self):
        """The `text` column, batch by batch."""
        raise NotImplementedError

    def scan_text(self):
        return sum(b.nbytes for b in self.text_batches())

    def scan_text_touch(self):
        n = 0
        for b in self.text_batches():
            touch_column(b.column(b.schema.get_field_index("text")))
            n += b.nbytes
        return n

    def versions_append(self, chunk, first):
        if first:
            self.vt = self.db.create_table(VERSIONS_TABLE, data=chunk)
        else:
            self.vt.add(chunk)

    def versions_open_count(self):
        return self.mod.connect(str(self.dir / "db")).open_table(VERSIONS_TABLE).count_rows()

    def versions_count(self):
        try:
            return len(getattr(self.vt, self.list_versions)())
        except Exception:
            return None


class HybridStore(DatabaseStore):
    name = "hybrid"
    list_versions = "versions"  # the table method that lists its versions

    def __init__(self, root: Path):
        import hybrid

        super().__init__(root, hybrid)

    def check_rowids(self, n: int) -> bool:
        rid = self.t.to_arrow(columns=[], with_rowid=True)["_rowid"]
        arr = rid.to_numpy()
        return len(arr) == n and bool(np.array_equal(np.sort(arr), np.arange(n, dtype=arr.dtype)))

    def take(self, idx):
        return self.t.take(pa.array(idx, pa.uint64()))

    def text_batches(self):
        return self.t.scan(columns=["text"])

    def add_column(self, n_rows):
        def fn(batch):
            ids = batch.column(batch.schema.get_field_index("id")).to_numpy()
            return pa.table({NEW_COLUMN: new_column_for(ids)})

        self.t.add_columns(fn, input_columns=["id"])


class LanceStore(DatabaseStore):
    name = "lance"
    list_versions = "list_versions"

    def __init__(self, root: Path):
        import lancedb

        super().__init__(root, lancedb)

    def table_dir(self):
        return self.dir / "db" / f"{TABLE}.lance"

    def take(self, idx):
        return self.t.take_offsets(idx.tolist()).to_arrow()

    def text_batches(self):
        return self.t.search().select(["text"]).limit(None).to_batches()

    def add_column(self, n_rows):
        expr = "arrow_cast(make_array(" + ", ".join(["random()"] * DIM) + f"), 'FixedSizeList({DIM}, Float32)')"
        self.t.add_columns({NEW_COLUMN: expr})


class ParquetStore(Store):
    name = "parquet"

    def __init__(self, root: Path, row_group_size: int | None):
        super().__init__(root)
        self.row_group_size = row_group_size
        self.files: list[Path] = []

    def _write(self, table: pa.Table, path: Path) -> None:
        pq.write_table(table, path, row_group_size=self.row_group_size)

    def append(self, chunk, first):
        path = self.dir / f"part-{len(self.files):05d}.parquet"
        self._write(chunk, path)
        self.files.append(path)

    def prepare_reads(self):
        self.pfs = [pq.ParquetFile(f) for f in self.files]
        counts = np.array([pf.metadata.num_rows for pf in self.pfs], dtype=np.int64)
        self.file_starts = np.concatenate([[0], np.cumsum(counts)])
        self.rg_starts = []
        for pf in self.pfs:
            rc = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
            self.rg_starts.append(np.concatenate([[0], np.cumsum(rc)]).astype(np.int64))

    def take(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        fidx = np.searchsorted(self.file_starts, idx, side="right") - 1
        local = idx - self.file_starts[fidx]
        pieces = []
        positions = []
        order = np.argsort(fidx, kind="stable")
        fsorted = fidx[order]
        bounds = np.flatnonzero(np.diff(fsorted)) + 1
        for grp in np.split(order, bounds):
            f = int(fidx[grp[0]])
            rgs = self.rg_starts[f]
            loc = local[grp]
            rg = np.searchsorted(rgs, loc, side="right") - 1
            for r in np.unique(rg):
                sel = rg == r
                tbl = self.pfs[f].read_row_group(int(r))
                pieces.append(tbl.take(pa.array(loc[sel] - rgs[r])))
                positions.append(grp[sel])
        out = pa.concat_tables(pieces)
        pos = np.concatenate(positions)
        inv = np.empty_like(pos)
        inv[pos] = np.arange(len(pos))
        return out.take(pa.array(inv))

    def scan_text(self):
        return pq.read_table(self.dir, columns=["text"]).nbytes

    def scan_text_touch(self):
        t = pq.read_table(self.dir, columns=["text"])
        touch_column(t["text"])
        return t.nbytes

    def add_column(self, n_rows):
        for f in self.files:
            tbl = pq.read_table(f)
            tbl = tbl.append_column(NEW_COLUMN, new_column_for(tbl["id"].to_numpy()))
            tmp = f.with_suffix(".tmp")
            self._write(tbl, tmp)
            del tbl
            os.replace(tmp, f)

    def count(self):
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)


def make_stores(args, root: Path, guard: Guard) -> dict[str, Store]:
    def make(s: str) -> Store:
        if s == "hybrid":
            return HybridStore(root)
        if s == "lance":
            return LanceStore(root)
        return ParquetStore(root, args.parquet_row_group)

    return guard.construct(args.stores, make)
