"""The storage benchmark's steps, in the order they run: ingestion, open for reads, take, scan,
add_columns, versions.

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

import gc
import os
from typing import Any

import numpy as np

from bench.files import dir_bytes, dir_snapshot, disk_read_bytes, evict_page_cache, warm_page_cache, written_bytes
from bench.frame import Guard, log, median, now, peak_rss_mb, scratch_dir
from bench.storage_data import DIM, TAKE_SIZES, DataGen
from bench.storage_stores import HybridStore, ParquetStore, Store, make_stores

COLUMNS = {"id", "text", "vector", "category", "year", "score", "lang", "flag"}


def set_cache(mode: str, st: Store) -> None:
    """Put the store's files in the requested page-cache state before a timed read."""
    if mode == "warm":
        warm_page_cache(st.table_dir())
    elif mode == "cold":
        st.prepare_reads()  # drop the old handles (and hybrid's memory maps), then evict
        gc.collect()
        evict_page_cache(st.table_dir())


def timed_repeats(R: int, prepare, guard: Guard, s: str, what: str, fn, disk: bool = False):
    """Up to R timed calls of `fn` (each after an untimed `prepare()`), stopping at the first failure:
    (seconds per call, MB read from disk per call if `disk`, the last result)."""
    secs, disk_mb, out = [], [], None
    for _ in range(R):
        prepare()
        b0 = disk_read_bytes() if disk else 0
        t0 = now()
        out = guard.guarded(s, what, fn)
        dt = now() - t0
        if out is None:
            break
        secs.append(dt)
        if disk:
            disk_mb.append((disk_read_bytes() - b0) / 1e6)
    return secs, disk_mb, out


def ingest(args, stores: dict[str, Store], gen: DataGen, guard: Guard, res: dict[str, Any]) -> int:
    """1. Append every chunk to every store (a store whose append fails is dropped); the text column's bytes."""
    N = args.rows
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
            ok = guard.guarded(s, "append", st.append, chunk, ci == 0)
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
    return text_nbytes


def open_for_reads(N: int, stores: dict[str, Store], guard: Guard, res: dict[str, Any]) -> None:
    """Open every table as a reader would (a store that fails is dropped) and check its row count."""
    for s, st in list(stores.items()):
        if guard.or_drop(stores, s, "open", st.prepare_reads) is None:
            continue
        cnt = guard.guarded(s, "count_rows", st.count)
        res["per_store"][s]["count_rows"] = cnt
        if cnt is not None and cnt != N:
            guard.errors[s]["count_rows"] = f"count_rows() = {cnt}, expected {N}"
        if isinstance(st, HybridStore):
            ok = guard.guarded(s, "rowids", st.check_rowids, N)
            res["per_store"][s]["rowids_are_0_to_N-1"] = ok


def check_take(s: str, k: int, out: Any, idx: np.ndarray, errors: dict[str, str]) -> None:
    """The rows `take` returned are the requested ones, in request order (LanceDB: any order), all columns."""
    got = np.sort(out["id"].to_numpy())
    if not np.array_equal(got, np.sort(idx)):
        errors[f"take({k})-check"] = "returned ids differ from the requested rows"
    if s != "lance" and not np.array_equal(out["id"].to_numpy(), idx):
        errors[f"take({k})-order"] = "rows not in request order"
    missing = COLUMNS - set(out.column_names)
    if missing:
        errors[f"take({k})-columns"] = f"missing columns {sorted(missing)}"


def take(args, stores: dict[str, Store], guard: Guard, res: dict[str, Any]) -> None:
    """2. take of TAKE_SIZES random rows, the same sample for all stores, a fresh one per repeat."""
    N, R = args.rows, args.repeats
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
            out = guard.guarded(s, f"take({k})", st.take, idx)
            if out is not None:
                check_take(s, k, out, idx, guard.errors[s])
        for _ in range(R):
            idx = rng.choice(N, size=k, replace=False)  # fresh sample, same for all stores
            for s, st in stores.items():
                set_cache(args.cache, st)
                b0 = disk_read_bytes()
                t0 = now()
                out = guard.guarded(s, f"take({k})", st.take, idx)
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


def scan(args, stores: dict[str, Store], text_nbytes: int, guard: Guard, res: dict[str, Any]) -> None:
    """3. Full scan of `text`: as returned, then with a fresh open and every page touched."""
    R = args.repeats
    log(f"[3] full scan of `text` ({text_nbytes / 1e6:,.0f} MB Arrow), {R} repeats")
    for s, st in stores.items():
        guard.guarded(s, "scan(warm-up)", st.scan_text)

        def prepare(st=st):
            set_cache(args.cache, st)
            gc.collect()

        secs, _, got = timed_repeats(R, prepare, guard, s, "scan", st.scan_text)
        tsecs, tdisk, _ = timed_repeats(R, prepare, guard, s, "scan+touch", st.fresh_scan_text_touch, disk=True)
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


def add_columns(N: int, stores: dict[str, Store], guard: Guard, res: dict[str, Any]) -> None:
    """5. Add one DIM-d float32 column; the bytes of the files that are new or changed."""
    log(f"[5] add_columns: one {DIM}-d float32 column ({N * DIM * 4 / 1e6:,.0f} MB raw)")
    for s, st in stores.items():
        gc.collect()
        os.sync()
        d = st.table_dir()
        before = dir_snapshot(d)
        t0 = now()
        ok = guard.guarded(s, "add_columns", st.add_column, N)
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
        log(f"    {s}: wrote {w / 1e6:,.0f} MB ({w / raw:.2f}x raw) in {dt:.1f}s; dir grew {delta / 1e6:,.0f} MB")


def versions(args, stores: dict[str, Store], gen: DataGen, guard: Guard, res: dict[str, Any]) -> None:
    """4. A separate table of `--versions` small commits; a fresh open + count_rows of it."""
    V, vr, R = args.versions, args.version_rows, args.repeats
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
            if guard.guarded(s, "versions-append", st.versions_append, c, i == 0) is None:
                ok = False
                break
            per.append(now() - t0)
        build = sum(per)
        if not ok:
            continue
        secs, _, cnt = timed_repeats(R, gc.collect, guard, s, "versions-open", st.versions_open_count)
        if cnt is not None and cnt != V * vr:
            guard.errors[s]["versions-count"] = f"count_rows() = {cnt}, expected {V * vr}"
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


def run(args) -> dict[str, Any]:
    """All the steps on one scratch folder; the results (per store, errors, wall time, peak RSS)."""
    t_start = now()
    guard = Guard(args.stores, tb_limit=6)
    res: dict[str, Any] = {"per_store": {s: {} for s in args.stores}}
    with scratch_dir(args, "bench_storage_") as root:
        gen = DataGen(args.seed, text_bytes=args.text_bytes)
        stores = make_stores(args, root, guard)
        text_nbytes = ingest(args, stores, gen, guard, res)
        open_for_reads(args.rows, stores, guard, res)
        take(args, stores, guard, res)
        scan(args, stores, text_nbytes, guard, res)
        if not args.skip_add_columns:
            add_columns(args.rows, stores, guard, res)
        if not args.skip_versions:
            versions(args, stores, gen, guard, res)
    return guard.finish(res, t_start)
