#!/usr/bin/env python
"""Storage benchmark: `hybrid` table vs LanceDB vs plain Parquet, side by side.

One run ingests the same synthetic data into all three stores (chunk by chunk,
each chunk generated once and handed to every store in turn) and then measures

1. append throughput (rows/s) of the whole chunked ingestion,
2. ``take`` of 1 / 100 / 10,000 random rows, all columns (ms),
3. full scan of the ``text`` column (MB/s = reference Arrow nbytes / seconds),
4. open time of a separate table that has 1,000 versions (hybrid, LanceDB),
5. bytes written by adding one 384-d float32 column to the big table.

Results go to ``eval/results/storage.json`` and ``eval/results/storage.md``
and a table is printed to stdout.  See ``eval/README.md`` for how to run it.

How each store is driven (all in this one process):

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

Only the store calls are timed; data generation is not, nor is the final
flush to disk (``os.sync()`` runs after the ingestion).

Page cache (``--cache``): by default every timed take/scan is preceded by an
untimed read of all the store's files, so the reads run on a warm OS page
cache.  This matters on VMs that reclaim idle page cache (e.g. a DAMON
``pageout`` scheme that drops pages idle for ~60 s): without it, whichever
store was read least recently is partly read from disk.  ``--cache cold``
re-opens the table and evicts its files with ``posix_fadvise(DONTNEED)``
before each timed read instead; ``--cache asis`` does neither.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DIM = 384
TABLE = "docs"
VERSIONS_TABLE = "versions"
STORES = ("hybrid", "lance", "parquet")
TAKE_SIZES = (1, 100, 10_000)
NEW_COLUMN = "emb2"

# --------------------------------------------------------------------------
# synthetic data
# --------------------------------------------------------------------------

CATEGORIES = [f"category_{i:02d}" for i in range(20)]
LANGS = ["en", "de", "fr", "es", "it", "pt", "nl", "ja", "zh", "ko"]


class DataGen:
    """Seeded, chunked generator of the benchmark rows.

    ``text`` is built from a fixed vocabulary of pseudo-words with numpy only
    (a byte gather), so a 50k-row chunk costs well under a second and the peak
    memory stays at a few hundred MB.
    """

    def __init__(self, seed: int, text_bytes: int = 1024, vocab_size: int = 5000):
        self.seed = seed
        vrng = np.random.default_rng(seed ^ 0x5EED)
        lens = vrng.integers(2, 12, size=vocab_size)  # 2..11 letters
        letters = vrng.integers(ord("a"), ord("z") + 1, size=int(lens.sum()), dtype=np.uint8)
        # vocabulary stored as "word " pieces in one buffer
        buf = np.empty(int(lens.sum()) + vocab_size, dtype=np.uint8)
        self.voff = np.zeros(vocab_size, dtype=np.int64)
        pos = 0
        lpos = 0
        for i, n in enumerate(lens):
            self.voff[i] = pos
            buf[pos : pos + n] = letters[lpos : lpos + n]
            buf[pos + n] = ord(" ")
            pos += n + 1
            lpos += n
        self.vbuf = buf
        self.vlen = lens.astype(np.int64)
        self.words_per_row = max(1, int(round((text_bytes + 1) / (self.vlen.mean() + 1))))
        self.cats = pa.array(CATEGORIES, pa.string())
        self.langs = pa.array(LANGS, pa.string())

    def _text(self, rng: np.random.Generator, n: int) -> pa.Array:
        w = self.words_per_row
        pieces = []
        for s in range(0, n, 5000):  # sub-blocks keep the int64 gather index small
            m = min(5000, n - s)
            idx = rng.integers(0, len(self.vlen), size=(m, w))
            lens = self.vlen[idx] + 1  # word + space
            lens[:, -1] -= 1  # no trailing space on the last word
            flat_lens = lens.ravel()
            total = int(flat_lens.sum())
            dst_start = np.cumsum(flat_lens) - flat_lens
            gather = np.repeat(self.voff[idx.ravel()] - dst_start, flat_lens)
            gather += np.arange(total, dtype=np.int64)
            data = self.vbuf[gather]
            row_len = lens.sum(axis=1)
            offsets = np.zeros(m + 1, dtype=np.int32)
            np.cumsum(row_len, out=offsets[1:])
            pieces.append(pa.StringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(data)))
        return pa.concat_arrays(pieces)

    def chunk(self, start: int, n: int) -> pa.Table:
        # one RNG per chunk, seeded by (seed, start): chunks are reproducible
        # independently of the chunk order / size used elsewhere.
        rng = np.random.default_rng([self.seed, start])
        vec = rng.standard_normal((n, DIM), dtype=np.float32)
        return pa.table(
            {
                "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
                "text": self._text(rng, n),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM),
                "category": self.cats.take(pa.array(rng.integers(0, len(CATEGORIES), n))),
                "year": pa.array(rng.integers(1990, 2026, n).astype(np.int32)),
                "score": pa.array(rng.random(n)),
                "lang": self.langs.take(pa.array(rng.integers(0, len(LANGS), n))),
                "flag": pa.array(rng.random(n) < 0.5),
            }
        )


def new_column_for(ids: np.ndarray) -> pa.FixedSizeListArray:
    """Deterministic random 384-d float32 vectors for the given ids (used by
    hybrid's add_columns fn and by the Parquet rewrite)."""
    ids = np.asarray(ids)
    seed = int(ids[0]) if len(ids) else 0
    rng = np.random.default_rng([0xC0FFEE, seed, len(ids)])
    vec = rng.standard_normal((len(ids), DIM), dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def now() -> float:
    return time.perf_counter()


def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


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


def dir_snapshot(path: Path) -> dict[str, tuple[int, int, int]]:
    snap = {}
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            snap[p] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return snap


def dir_bytes(path: Path) -> int:
    return sum(v[0] for v in dir_snapshot(path).values())


def written_bytes(before: dict, after: dict) -> int:
    """Bytes of files that are new or were changed between two snapshots."""
    return sum(v[0] for p, v in after.items() if before.get(p) != v)


def evict_page_cache(path: Path) -> None:
    os.sync()
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                fd = os.open(os.path.join(root, f), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def warm_page_cache(path: Path) -> int:
    """Read every file under `path` (into a reused buffer) so it sits in the
    page cache and counts as recently used."""
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                with open(os.path.join(root, f), "rb", buffering=0) as fh:
                    while True:
                        n = fh.readinto(view)
                        if not n:
                            break
                        total += n
            except OSError:
                continue
    return total


def disk_read_bytes() -> int:
    """Bytes this process (all threads) caused to be read from storage (/proc/self/io)."""
    try:
        with open("/proc/self/io") as fh:
            for line in fh:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def set_cache(mode: str, st: Store) -> None:
    """Put the store's files in the requested page-cache state before a timed read."""
    if mode == "warm":
        warm_page_cache(st.table_dir())
    elif mode == "cold":
        st.prepare_reads()  # drop the old handles (and hybrid's memory maps), then evict
        gc.collect()
        evict_page_cache(st.table_dir())


def damon_reclaim_info() -> dict[str, Any] | None:
    """Read-only look at a DAMON page-out scheme (some VMs drop idle page cache)."""
    base = Path("/sys/kernel/mm/damon/admin/kdamonds/0")
    try:
        if (base / "state").read_text().strip() != "on":
            return None
        ctx = base / "contexts/0"
        sch = ctx / "schemes/0"
        aggr_us = int((ctx / "monitoring_attrs/intervals/aggr_us").read_text())
        min_age = int((sch / "access_pattern/age/min").read_text())
        return {
            "operations": (ctx / "operations").read_text().strip(),
            "action": (sch / "action").read_text().strip(),
            "min_idle_seconds": min_age * aggr_us / 1e6,
            "quota_bytes_per_reset": int((sch / "quotas/bytes").read_text()),
            "quota_reset_ms": int((sch / "quotas/reset_interval_ms").read_text()),
        }
    except (OSError, ValueError):
        return None


def mem_total_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pkg_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------
# stores
# --------------------------------------------------------------------------


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


class HybridStore(Store):
    name = "hybrid"

    def __init__(self, root: Path):
        super().__init__(root)
        import hybrid

        self.mod = hybrid
        self.db = hybrid.connect(str(self.dir / "db"))
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

    def check_rowids(self, n: int) -> bool:
        rid = self.t.to_arrow(columns=[], with_rowid=True)["_rowid"]
        arr = rid.to_numpy()
        return len(arr) == n and bool(np.array_equal(np.sort(arr), np.arange(n, dtype=arr.dtype)))

    def take(self, idx):
        return self.t.take(pa.array(idx, pa.uint64()))

    def scan_text(self):
        return sum(b.nbytes for b in self.t.scan(columns=["text"]))

    def scan_text_touch(self):
        n = 0
        for b in self.t.scan(columns=["text"]):
            touch_column(b.column(0))
            n += b.nbytes
        return n

    def add_column(self, n_rows):
        def fn(batch):
            ids = batch.column(batch.schema.get_field_index("id")).to_numpy()
            return pa.table({NEW_COLUMN: new_column_for(ids)})

        self.t.add_columns(fn, input_columns=["id"])

    def count(self):
        return self.t.count_rows()

    def versions_append(self, chunk, first):
        if first:
            self.vt = self.db.create_table(VERSIONS_TABLE, data=chunk)
        else:
            self.vt.add(chunk)

    def versions_open_count(self):
        return self.mod.connect(str(self.dir / "db")).open_table(VERSIONS_TABLE).count_rows()

    def versions_count(self):
        try:
            return len(self.vt.versions())
        except Exception:
            return None


class LanceStore(Store):
    name = "lance"

    def __init__(self, root: Path):
        super().__init__(root)
        import lancedb

        self.mod = lancedb
        self.db = lancedb.connect(str(self.dir / "db"))
        self.t = None
        self.vt = None

    def table_dir(self):
        return self.dir / "db" / f"{TABLE}.lance"

    def append(self, chunk, first):
        if first:
            self.t = self.db.create_table(TABLE, data=chunk)
        else:
            self.t.add(chunk)

    def prepare_reads(self):
        self.t = self.mod.connect(str(self.dir / "db")).open_table(TABLE)

    def take(self, idx):
        return self.t.take_offsets(idx.tolist()).to_arrow()

    def scan_text(self):
        reader = self.t.search().select(["text"]).limit(None).to_batches()
        return sum(b.nbytes for b in reader)

    def scan_text_touch(self):
        n = 0
        for b in self.t.search().select(["text"]).limit(None).to_batches():
            touch_column(b.column(b.schema.get_field_index("text")))
            n += b.nbytes
        return n

    def add_column(self, n_rows):
        expr = "arrow_cast(make_array(" + ", ".join(["random()"] * DIM) + f"), 'FixedSizeList({DIM}, Float32)')"
        self.t.add_columns({NEW_COLUMN: expr})

    def count(self):
        return self.t.count_rows()

    def versions_append(self, chunk, first):
        if first:
            self.vt = self.db.create_table(VERSIONS_TABLE, data=chunk)
        else:
            self.vt.add(chunk)

    def versions_open_count(self):
        return self.mod.connect(str(self.dir / "db")).open_table(VERSIONS_TABLE).count_rows()

    def versions_count(self):
        try:
            return len(self.vt.list_versions())
        except Exception:
            return None


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


# --------------------------------------------------------------------------
# benchmark driver
# --------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.results: dict[str, Any] = {}
        self.errors: dict[str, dict[str, str]] = {s: {} for s in args.stores}

    def guarded(self, store: str, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)`, or None (and the error recorded) if it raises; a None result becomes True."""
        try:
            out = fn(*args)
            return True if out is None else out
        except Exception as exc:  # keep going; report what failed
            msg = f"{type(exc).__name__}: {exc}"
            self.errors[store][what] = msg + "\n" + traceback.format_exc(limit=6)
            log(f"  !! {store} {what} failed: {msg}")
            return None


def make_stores(args, root: Path, bench: Bench) -> dict[str, Store]:
    stores: dict[str, Store] = {}
    for s in args.stores:

        def ctor(s=s):
            if s == "hybrid":
                return HybridStore(root)
            if s == "lance":
                return LanceStore(root)
            return ParquetStore(root, args.parquet_row_group)

        st = bench.guarded(s, "setup", ctor)
        if st is not None:
            stores[s] = st
    return stores


def run(args) -> dict[str, Any]:
    t_start = now()
    tmp_created = args.out_dir is None
    root = Path(tempfile.mkdtemp(prefix="bench_storage_", dir="/tmp")) if tmp_created else Path(args.out_dir)
    root.mkdir(parents=True, exist_ok=True)
    log(f"scratch dir: {root}")
    bench = Bench(args)
    gen = DataGen(args.seed, text_bytes=args.text_bytes)
    N = args.rows
    R = args.repeats
    res: dict[str, Any] = {"per_store": {s: {} for s in args.stores}}

    try:
        stores = make_stores(args, root, bench)

        # ---------------- 1. ingestion ---------------------------------
        log(f"[1] ingesting {N:,} rows in chunks of {args.chunk_rows:,} into {list(stores)}")
        add_times = {s: [] for s in stores}
        text_nbytes = 0
        gen_s = 0.0
        start = 0
        ci = 0
        while start < N:
            n = min(args.chunk_rows, N - start)
            t0 = now()
            chunk = gen.chunk(start, n)
            gen_s += now() - t0
            text_nbytes += chunk["text"].nbytes
            for s, st in list(stores.items()):
                t0 = now()
                ok = bench.guarded(s, "append", st.append, chunk, ci == 0)
                dt = now() - t0
                if ok is None:
                    del stores[s]  # cannot continue with this store
                    continue
                add_times[s].append((n, dt))
            del chunk
            start += n
            ci += 1
            if ci % 5 == 0 or start >= N:
                log(
                    f"    {start:>10,} rows  "
                    + "  ".join(f"{s}={sum(t for _, t in add_times[s]):.1f}s" for s in stores)
                    + f"  (gen {gen_s:.1f}s, rss {peak_rss_mb():.0f} MB)"
                )
        res["text_column_nbytes"] = text_nbytes
        res["generation_seconds"] = gen_s
        for s, st in stores.items():
            tot = sum(t for _, t in add_times[s])
            per_chunk = [n / t for n, t in add_times[s]]
            res["per_store"][s]["append"] = {
                "seconds": tot,
                "rows_per_s": N / tot,
                "chunk_rows_per_s_median": median(per_chunk),
                "chunks": len(per_chunk),
                "chunk_seconds": [t for _, t in add_times[s]],
            }
            res["per_store"][s]["table_bytes"] = dir_bytes(st.table_dir())

        # flush the ~GBs of dirty pages now, so background writeback does not
        # land in the read timings
        t0 = now()
        os.sync()
        res["sync_after_ingest_seconds"] = now() - t0

        # ---------------- open for reads ---------------------------------
        for s, st in list(stores.items()):
            if bench.guarded(s, "open", st.prepare_reads) is None:
                del stores[s]
                continue
            cnt = bench.guarded(s, "count_rows", st.count)
            res["per_store"][s]["count_rows"] = cnt
            if cnt is not None and cnt != N:
                bench.errors[s]["count_rows"] = f"count_rows() = {cnt}, expected {N}"
            if isinstance(st, HybridStore):
                ok = bench.guarded(s, "rowids", st.check_rowids, N)
                res["per_store"][s]["rowids_are_0_to_N-1"] = ok

        # ---------------- 2. take ----------------------------------------
        log(f"[2] take {TAKE_SIZES} random rows, all columns, {R} repeats, page cache: {args.cache}")
        rng = np.random.default_rng(args.seed + 1)
        take_ms = {s: {k: [] for k in TAKE_SIZES} for s in stores}
        take_disk = {s: {k: [] for k in TAKE_SIZES} for s in stores}
        for k in TAKE_SIZES:
            if k > N:
                continue
            # warm-up (untimed) + correctness check on the same sample
            idx = rng.choice(N, size=k, replace=False)
            for s, st in stores.items():
                out = bench.guarded(s, f"take({k})", st.take, idx)
                if out is not None:
                    got = np.sort(out["id"].to_numpy())
                    if not np.array_equal(got, np.sort(idx)):
                        bench.errors[s][f"take({k})-check"] = "returned ids differ from the requested rows"
                    if s != "lance" and not np.array_equal(out["id"].to_numpy(), idx):
                        bench.errors[s][f"take({k})-order"] = "rows not in request order"
                    missing = {"id", "text", "vector", "category", "year", "score", "lang", "flag"} - set(
                        out.column_names
                    )
                    if missing:
                        bench.errors[s][f"take({k})-columns"] = f"missing columns {sorted(missing)}"
            for _ in range(R):
                idx = rng.choice(N, size=k, replace=False)  # fresh sample, same for all stores
                for s, st in stores.items():
                    set_cache(args.cache, st)
                    b0 = disk_read_bytes()
                    t0 = now()
                    out = bench.guarded(s, f"take({k})", st.take, idx)
                    dt = now() - t0
                    if out is not None:
                        take_ms[s][k].append(dt * 1000)
                        take_disk[s][k].append((disk_read_bytes() - b0) / 1e6)
                    del out
            log(f"    take({k}): " + "  ".join(f"{s}={median(take_ms[s][k]) or float('nan'):.2f}ms" for s in stores))
        for s in stores:
            res["per_store"][s]["take_ms"] = {
                str(k): {
                    "median": median(v),
                    "all": v,
                    "disk_mb_read_median": median(take_disk[s][k]),
                    "disk_mb_read_all": take_disk[s][k],
                }
                for k, v in take_ms[s].items()
            }

        # ---------------- 3. scan ----------------------------------------
        log(f"[3] full scan of `text` ({text_nbytes / 1e6:,.0f} MB Arrow), {R} repeats")
        for s, st in stores.items():
            secs, got = [], None
            bench.guarded(s, "scan(warm-up)", st.scan_text)
            for _ in range(R):
                set_cache(args.cache, st)
                gc.collect()
                t0 = now()
                got = bench.guarded(s, "scan", st.scan_text)
                dt = now() - t0
                if got is None:
                    break
                secs.append(dt)
            tsecs, tdisk = [], []
            for _ in range(R):
                set_cache(args.cache, st)
                gc.collect()
                b0 = disk_read_bytes()
                t0 = now()
                ok = bench.guarded(s, "scan+touch", st.fresh_scan_text_touch)
                dt = now() - t0
                if ok is None:
                    break
                tsecs.append(dt)
                tdisk.append((disk_read_bytes() - b0) / 1e6)
            m = median(secs)
            mt = median(tsecs)
            res["per_store"][s]["scan"] = {
                "seconds_median": m,
                "seconds_all": secs,
                "returned_nbytes": got,
                "mb_per_s": (text_nbytes / 1e6 / m) if m else None,
                "touch_seconds_median": mt,
                "touch_seconds_all": tsecs,
                "touch_mb_per_s": (text_nbytes / 1e6 / mt) if mt else None,
                "touch_disk_mb_read_median": median(tdisk),
            }
            log(
                f"    {s}: {m and text_nbytes / 1e6 / m or float('nan'):,.0f} MB/s ({m or float('nan'):.2f}s); "
                f"touching every page: {mt and text_nbytes / 1e6 / mt or float('nan'):,.0f} MB/s"
            )

        # ---------------- 5. add_columns -------------------------------
        if not args.skip_add_columns:
            log(f"[5] add_columns: one {DIM}-d float32 column ({N * DIM * 4 / 1e6:,.0f} MB raw)")
            for s, st in stores.items():
                gc.collect()
                os.sync()
                d = st.table_dir()
                before = dir_snapshot(d)
                t0 = now()
                ok = bench.guarded(s, "add_columns", st.add_column, N)
                dt = now() - t0
                if ok is None:
                    continue
                after = dir_snapshot(d)
                w = written_bytes(before, after)
                delta = sum(v[0] for v in after.values()) - sum(v[0] for v in before.values())
                raw = N * DIM * 4
                res["per_store"][s]["add_columns"] = {
                    "seconds": dt,
                    "bytes_written": w,
                    "dir_bytes_delta": delta,
                    "new_column_raw_bytes": raw,
                    "written_over_raw": w / raw,
                }
                log(
                    f"    {s}: wrote {w / 1e6:,.0f} MB ({w / raw:.2f}x raw) in {dt:.1f}s; "
                    f"dir grew {delta / 1e6:,.0f} MB"
                )

        # ---------------- 4. versions --------------------------------
        if not args.skip_versions:
            V = args.versions
            vr = args.version_rows
            log(f"[4] table with {V:,} versions ({vr} rows per append), then open + count_rows, {R} repeats")
            os.sync()
            for s, st in stores.items():
                if isinstance(st, ParquetStore):
                    continue
                ok = True
                per = []
                for i in range(V):
                    c = gen.chunk(10_000_000_000 + i * vr, vr)
                    t0 = now()
                    if bench.guarded(s, "versions-append", st.versions_append, c, i == 0) is None:
                        ok = False
                        break
                    per.append(now() - t0)
                build = sum(per)
                if not ok:
                    continue
                secs = []
                cnt = None
                for _ in range(R):
                    gc.collect()
                    t0 = now()
                    cnt = bench.guarded(s, "versions-open", st.versions_open_count)
                    dt = now() - t0
                    if cnt is None:
                        break
                    secs.append(dt)
                if cnt is not None and cnt != V * vr:
                    bench.errors[s]["versions-count"] = f"count_rows() = {cnt}, expected {V * vr}"
                res["per_store"][s]["versions"] = {
                    "appends": V,
                    "versions_listed": st.versions_count(),
                    "build_seconds": build,
                    "append_ms_mean": build / V * 1000,
                    "append_ms_first_100_mean": float(np.mean(per[:100])) * 1000,
                    "append_ms_last_100_mean": float(np.mean(per[-100:])) * 1000,
                    "open_count_ms_median": (median(secs) or 0) * 1000 if secs else None,
                    "open_count_ms_all": [x * 1000 for x in secs],
                    "count_rows": cnt,
                    "dir_bytes": dir_bytes(st.dir / "db"),
                }
                log(
                    f"    {s}: build {build:.1f}s (append {np.mean(per[:100]) * 1000:.1f} ms first 100, "
                    f"{np.mean(per[-100:]) * 1000:.1f} ms last 100), open+count_rows "
                    f"{(median(secs) or float('nan')) * 1000:.1f} ms"
                )
    finally:
        if tmp_created and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif tmp_created:
            log(f"kept scratch dir {root}")

    res["errors"] = {s: e for s, e in bench.errors.items() if e}
    res["wall_seconds"] = now() - t_start
    res["peak_rss_mb"] = peak_rss_mb()
    return res


# --------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(x, spec=",.2f", none="n/a"):
    return none if x is None else format(x, spec)


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def summary_rows(res) -> list[tuple[str, Any, Any, Any, str]]:
    ps = res["per_store"]
    rows = []
    rows.append(
        ("append (rows/s, higher better)",) + tuple(get(ps, s, "append", "rows_per_s") for s in STORES) + (",.0f",)
    )
    for k in TAKE_SIZES:
        rows.append(
            (f"take({k:,}) ms, lower better",)
            + tuple(get(ps, s, "take_ms", str(k), "median") for s in STORES)
            + (",.2f",)
        )
    rows.append(
        ("take(100): MB read from disk",)
        + tuple(get(ps, s, "take_ms", "100", "disk_mb_read_median") for s in STORES)
        + (",.1f",)
    )
    rows.append(
        ("scan `text` MB/s, higher better",) + tuple(get(ps, s, "scan", "mb_per_s") for s in STORES) + (",.0f",)
    )
    rows.append(
        ("scan `text`, fresh open + touch pages MB/s",)
        + tuple(get(ps, s, "scan", "touch_mb_per_s") for s in STORES)
        + (",.0f",)
    )
    rows.append(
        ("  - MB read from disk",) + tuple(get(ps, s, "scan", "touch_disk_mb_read_median") for s in STORES) + (",.0f",)
    )
    nv = get(ps, "hybrid", "versions", "appends") or get(ps, "lance", "versions", "appends") or 0
    rows.append(
        (f"open {nv:,}-version table + count_rows ms",)
        + tuple(get(ps, s, "versions", "open_count_ms_median") for s in STORES)
        + (",.1f",)
    )
    rows.append(
        ("small append (10 rows) ms, mean",)
        + tuple(get(ps, s, "versions", "append_ms_mean") for s in STORES)
        + (",.1f",)
    )
    rows.append(
        ("  - mean of the first 100 appends",)
        + tuple(get(ps, s, "versions", "append_ms_first_100_mean") for s in STORES)
        + (",.1f",)
    )
    rows.append(
        ("  - mean of the last 100 appends",)
        + tuple(get(ps, s, "versions", "append_ms_last_100_mean") for s in STORES)
        + (",.1f",)
    )
    rows.append(
        ("add_columns MB written",)
        + tuple(
            (lambda v: v / 1e6 if v is not None else None)(get(ps, s, "add_columns", "bytes_written")) for s in STORES
        )
        + (",.0f",)
    )
    rows.append(
        ("add_columns written / column raw size",)
        + tuple(get(ps, s, "add_columns", "written_over_raw") for s in STORES)
        + (",.2f",)
    )
    rows.append(("add_columns seconds",) + tuple(get(ps, s, "add_columns", "seconds") for s in STORES) + (",.1f",))
    rows.append(
        ("table size on disk MB (after ingest)",)
        + tuple((lambda v: v / 1e6 if v is not None else None)(get(ps, s, "table_bytes")) for s in STORES)
        + (",.0f",)
    )
    return rows


def targets(res) -> list[tuple[str, str, str]]:
    ps = res["per_store"]
    out = []
    h = get(ps, "hybrid", "take_ms", "100", "median")
    lv = get(ps, "lance", "take_ms", "100", "median")
    p = get(ps, "parquet", "take_ms", "100", "median")
    out.append(
        (
            "hybrid take(100) <= LanceDB take(100)",
            "n/a" if h is None or lv is None else ("PASS" if h <= lv else "MISS"),
            f"{fmt(h)} ms vs {fmt(lv)} ms",
        )
    )
    out.append(
        (
            "hybrid take(100) >= 10x faster than Parquet",
            "n/a" if h is None or p is None else ("PASS" if p >= 10 * h else "MISS"),
            f"{fmt(h)} ms vs {fmt(p)} ms ({fmt(ratio(p, h), '.1f')}x)",
        )
    )
    hs = get(ps, "hybrid", "scan", "mb_per_s")
    pscan = get(ps, "parquet", "scan", "mb_per_s")
    out.append(
        (
            "hybrid scan >= Parquet scan",
            "n/a" if hs is None or pscan is None else ("PASS" if hs >= pscan else "MISS"),
            f"{fmt(hs, ',.0f')} vs {fmt(pscan, ',.0f')} MB/s",
        )
    )
    hs = get(ps, "hybrid", "scan", "touch_mb_per_s")
    pscan = get(ps, "parquet", "scan", "touch_mb_per_s")
    out.append(
        (
            "(extra) hybrid scan >= Parquet scan, every page touched",
            "n/a" if hs is None or pscan is None else ("PASS" if hs >= pscan else "MISS"),
            f"{fmt(hs, ',.0f')} vs {fmt(pscan, ',.0f')} MB/s",
        )
    )
    r = get(ps, "hybrid", "add_columns", "written_over_raw")
    out.append(
        (
            "hybrid add_columns bytes <= 1.1x new column",
            "n/a" if r is None else ("PASS" if r <= 1.1 else "MISS"),
            f"{fmt(r)}x",
        )
    )
    return out


def render_table(res) -> str:
    head = ["metric", "hybrid", "lance", "parquet", "hybrid/lance", "hybrid/parquet"]
    rows = [head]
    for name, h, lv, p, spec in summary_rows(res):
        if h is None and lv is None and p is None:
            continue  # step skipped
        rows.append(
            [name, fmt(h, spec), fmt(lv, spec), fmt(p, spec), fmt(ratio(h, lv), ".2f"), fmt(ratio(h, p), ".2f")]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for j, r in enumerate(rows):
        lines.append(
            "| " + " | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) + " |"
        )
        if j == 0:
            lines.append(
                "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
            )
    return "\n".join(lines)


CACHE_TEXT = {
    "warm": "Before every timed take/scan the store's files are read once (untimed) so that they are in the OS "
    "page cache and recently used.",
    "cold": "Before every timed take/scan the table is re-opened and its files are evicted from the OS page cache "
    "with posix_fadvise(DONTNEED), so the reads go to disk.",
    "asis": "No page-cache preparation before timed reads (whatever the OS kept).",
}


def render_md(res, meta) -> str:
    a = meta["args"]
    L = []
    L.append("# Storage benchmark: hybrid vs LanceDB vs Parquet\n")
    L.append(f"Generated by `eval/bench_storage.py` on {meta['date']}.\n")
    L.append("Command:\n")
    L.append(f"```\n{meta['command']}\n```\n")
    L.append(
        f"Data: {a['rows']:,} rows, ingested in chunks of {a['chunk_rows']:,}; columns `id` int64, "
        f"`text` string (~{a['text_bytes']} B of random words from a fixed 5,000-word vocabulary, "
        f"{res.get('text_column_nbytes', 0) / 1e6:,.0f} MB as Arrow), `vector` fixed_size_list<float32>[{DIM}], "
        "`category` string (20 values), `year` int32, `score` float64, `lang` string (10 values), `flag` bool. "
        f"Seed {a['seed']}. Medians over {a['repeats']} repeats (append: the single full ingestion). "
        + CACHE_TEXT[a["cache"]]
        + "\n"
    )
    m = meta["machine"]
    L.append(
        f"Machine: {m['cpu_count']} cores, {m['ram_gib']:.1f} GiB RAM, {m['platform']}; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".\n"
    )
    g = meta.get("git")
    if g:
        L.append(
            f"Code: commit `{g['commit'][:12]}`"
            + (" with uncommitted changes in `hybrid/`" if g["hybrid_dir_has_uncommitted_changes"] else "")
            + ".\n"
        )
    L.append("## Results\n")
    L.append(render_table(res) + "\n")
    L.append(
        "Ratios are hybrid's figure divided by the other store's (for times <1 is better for hybrid, for rates >1).\n"
    )
    L.append("## Targets\n")
    L.append("| target | result | figures |\n|---|---|---|")
    for t, r, f in targets(res):
        L.append(f"| {t} | **{r}** | {f} |")
    L.append("")
    L.append("## How each store is driven\n")
    L.append(
        "- **hybrid**: `hybrid.connect(dir).create_table('docs', data=chunk0)`, then `t.add(chunk)` per chunk; "
        "reads on a freshly opened table: `t.take(pa.array(rowids, uint64))`, "
        "`sum(b.nbytes for b in t.scan(columns=['text']))`; "
        "`t.add_columns(fn, input_columns=['id'])` with `fn` returning a random 384-d float32 column.\n"
        "- **LanceDB**: `lancedb.connect(dir).create_table(...)` then `tbl.add(chunk)`; "
        "`tbl.take_offsets(idx).to_arrow()` (LanceDB's native random access; rows come back in LanceDB's order "
        "and are not reordered); "
        "`tbl.search().select(['text']).limit(None).to_batches()` for the scan; "
        f"`tbl.add_columns({{'{NEW_COLUMN}': "
        "\"arrow_cast(make_array(random(), ...x384), 'FixedSizeList(384, Float32)')\"})` "
        "(LanceDB 0.40's Python `add_columns` only takes SQL expressions or all-null fields; "
        "`pylance` is not installed, so no `to_lance()`).\n"
        f"- **Parquet**: one file per ingested chunk in one folder via `pq.write_table` "
        f"(snappy, row_group_size={a['parquet_row_group'] or 'pyarrow default, i.e. one row group per chunk file'}); "
        "take = footers opened once, global row number -> (file, row group) -> "
        "`ParquetFile.read_row_group` + `Table.take`, "
        "then reorder to request order; scan = `pq.read_table(folder, columns=['text'])`; "
        "add_columns = read every file, append the column, write a new file and replace the old one.\n"
    )
    L.append(
        "Scan MB/s = the `text` column's Arrow size at generation time (the same for all stores, 10^6 bytes per MB) / "
        "seconds.  The plain figure only sums `RecordBatch.nbytes`, which does not read a memory-mapped, "
        "zero-copy result; the *fresh open + touch pages* row times re-opening the table (new `connect` + "
        "`open_table`; Parquet: footers) and the scan, and reads one byte of every 4 KiB page of the returned "
        "offsets and string data, so every store pays for bringing the bytes into its memory (hybrid's "
        "per-table cache of memory-mapped files starts empty).\n"
    )
    L.append(
        '"MB read from disk" = growth of `read_bytes` in `/proc/self/io` (storage reads this process caused, '
        "readahead included) during the timed call; about 0 when the page cache is warm.\n"
    )
    L.append(
        "add_columns bytes written = total size of files that are new or changed (size/mtime/inode) in the "
        "table directory; "
        "`dir_bytes_delta` in the JSON is the plain growth of the directory.  "
        f"The {a['versions']:,}-version table is created with {a['version_rows']} rows and then appended "
        f"{a['versions'] - 1:,} times with {a['version_rows']} rows each; open time = fresh "
        "`connect(dir).open_table(name)` + `count_rows()` in this process.\n"
    )
    errs = res.get("errors") or {}
    if errs:
        L.append("## Errors\n")
        for s, e in errs.items():
            for what, msg in e.items():
                first = msg.splitlines()[0] if msg else ""
                L.append(f"- **{s}** `{what}`: {first}")
        L.append("")

    def la(v):
        return "/".join(f"{x:.2f}" for x in v) if v else "n/a"

    dm = m.get("damon_page_cache_reclaim")
    if dm:
        L.append(
            f"Note: this machine runs a DAMON `{dm['action']}` scheme that drops page-cache pages idle for "
            f"{dm['min_idle_seconds']:.0f} s or more (up to {dm['quota_bytes_per_reset'] / 2**20:.0f} MiB per "
            f"{dm['quota_reset_ms']} ms), so data written or read more than about a minute earlier is not reliably "
            "in memory any more; hence the explicit page-cache step before each timed read.\n"
        )
    L.append(
        f"Load average (1/5/15 min) at start {la(meta['loadavg_at_start'])}, at end {la(meta.get('loadavg_at_end'))} "
        "(other processes on the machine add noise to the timings).\n"
    )
    L.append(
        f"Total wall time {res['wall_seconds']:.0f} s (data generation {res.get('generation_seconds', 0):.0f} s); "
        f"peak RSS {res['peak_rss_mb']:,.0f} MB.\n"
    )
    return "\n".join(L)


def git_info() -> dict[str, Any] | None:
    """Commit of the repository holding `hybrid`, and whether hybrid/ had local changes."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "hybrid"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "hybrid_dir_has_uncommitted_changes": bool(dirty.stdout.strip())}


def run_and_report(
    args: argparse.Namespace,
    argv: list[str] | None,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    *,
    machine_info: Callable[[], dict[str, Any]],
    targets: Callable[[dict[str, Any]], list[tuple[str, str, str]]],
    render_md: Callable[[dict[str, Any], dict[str, Any]], str],
    tables: Callable[[dict[str, Any]], list[str]],
    extra_meta: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Path]:
    """The benchmarks' shared frame: record the command, machine, git state and load, `run`, write
    ``<results-dir>/<name>.json`` and ``.md``, print the `tables` and the targets; returns the results
    and the results folder."""
    meta = {
        "command": " ".join(
            shlex.quote(x)
            for x in [Path(sys.executable).name] + sys.argv[:1] + (argv if argv is not None else sys.argv[1:])
        ),
        "cwd": os.getcwd(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_at_start": os.getloadavg(),
        "args": vars(args),
        **(extra_meta or {}),
        "machine": machine_info(),
        "git": git_info(),
    }
    res = run(args)
    meta["loadavg_at_end"] = os.getloadavg()
    out = {
        "meta": meta,
        "results": res,
        "targets": [dict(zip(("target", "result", "figures"), t, strict=True)) for t in targets(res)],
    }
    rd = Path(args.results_dir)
    rd.mkdir(parents=True, exist_ok=True)
    (rd / f"{args.name}.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    (rd / f"{args.name}.md").write_text(render_md(res, meta))
    for table in tables(res):
        print()
        print(table)
    print()
    for t, r, f in targets(res):
        print(f"  {r:4}  {t}   [{f}]")
    return res, rd


def machine_info() -> dict[str, Any]:
    mem = mem_total_bytes()
    versions = {}
    for name in ("pyarrow", "lancedb", "duckdb", "numpy", "hybridsearch"):
        versions[name] = pkg_version(name)
    try:
        import hybrid

        versions["hybrid (module)"] = getattr(hybrid, "__version__", None)
    except Exception:
        pass
    return {
        "damon_page_cache_reclaim": damon_reclaim_info(),
        "cpu_count": os.cpu_count(),
        "ram_gib": (mem or 0) / 2**30,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {k: v for k, v in versions.items() if v is not None},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out-dir", default=None, help="scratch dir (default: a temp dir under /tmp, deleted at the end)")
    ap.add_argument("--keep", action="store_true", help="keep the temp scratch dir")
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default="storage", help="results file stem (default: storage)")
    ap.add_argument("--stores", default=",".join(STORES))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--text-bytes", type=int, default=1024)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--version-rows", type=int, default=10)
    ap.add_argument("--parquet-row-group", type=int, default=None)
    ap.add_argument(
        "--cache",
        choices=("warm", "cold", "asis"),
        default="warm",
        help="page-cache state before each timed take/scan: warm = read all of the store's files first "
        "(default), cold = evict them with posix_fadvise(DONTNEED) after re-opening the table, "
        "asis = do nothing",
    )
    ap.add_argument("--cold", action="store_true", help="same as --cache cold")
    ap.add_argument("--skip-add-columns", action="store_true")
    ap.add_argument("--skip-versions", action="store_true")
    args = ap.parse_args(argv)
    if args.cold:
        args.cache = "cold"
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    bad = set(args.stores) - set(STORES)
    if bad:
        ap.error(f"unknown stores {sorted(bad)}")

    res, rd = run_and_report(
        args,
        argv,
        run,
        machine_info=machine_info,
        targets=targets,
        render_md=render_md,
        tables=lambda r: [render_table(r)],
    )
    if res.get("errors"):
        print("\nerrors:")
        for s, e in res["errors"].items():
            for what, msg in e.items():
                print(f"  {s} {what}: {msg.splitlines()[0]}")
    print(f"\nwrote {rd / (args.name + '.json')} and {rd / (args.name + '.md')}")


if __name__ == "__main__":
    main()
