"""The storage benchmark's report: the summary table, the targets, the Markdown page, the machine."""

from __future__ import annotations

from typing import Any

from bench import frame
from bench.frame import (
    fmt,
    get,
    grid,
    md_damon,
    md_errors,
    md_intro,
    md_load,
    md_machine,
    md_targets,
    ratio,
    scaled,
    verdict,
)
from bench.storage_data import DIM, NEW_COLUMN, STORES, TAKE_SIZES

PACKAGES = ("pyarrow", "lancedb", "duckdb", "numpy", "hybridsearch")


def summary_rows(res) -> list[tuple[str, Any, Any, Any, str]]:
    """(label, hybrid, lance, parquet, format) per metric, in the order of the table."""
    ps = res["per_store"]
    nv = get(ps, "hybrid", "versions", "appends") or get(ps, "lance", "versions", "appends") or 0
    metrics = [("append (rows/s, higher better)", ("append", "rows_per_s"), ",.0f", None)]
    metrics += [(f"take({k:,}) ms, lower better", ("take_ms", str(k), "median"), ",.2f", None) for k in TAKE_SIZES]
    metrics += [
        ("take(100): MB read from disk", ("take_ms", "100", "disk_mb_read_median"), ",.1f", None),
        ("scan `text` MB/s, higher better", ("scan", "mb_per_s"), ",.0f", None),
        ("scan `text`, fresh open + touch pages MB/s", ("scan", "touch_mb_per_s"), ",.0f", None),
        ("  - MB read from disk", ("scan", "touch_disk_mb_read_median"), ",.0f", None),
        (f"open {nv:,}-version table + count_rows ms", ("versions", "open_count_ms_median"), ",.1f", None),
        ("small append (10 rows) ms, mean", ("versions", "append_ms_mean"), ",.1f", None),
        ("  - mean of the first 100 appends", ("versions", "append_ms_first_100_mean"), ",.1f", None),
        ("  - mean of the last 100 appends", ("versions", "append_ms_last_100_mean"), ",.1f", None),
        ("add_columns MB written", ("add_columns", "bytes_written"), ",.0f", 1e6),
        ("add_columns written / column raw size", ("add_columns", "written_over_raw"), ",.2f", None),
        ("add_columns seconds", ("add_columns", "seconds"), ",.1f", None),
        ("table size on disk MB (after ingest)", ("table_bytes",), ",.0f", 1e6),
    ]
    rows = []
    for label, path, spec, scale in metrics:
        vals = [get(ps, s, *path) for s in STORES]
        if scale is not None:
            vals = [scaled(v, scale) for v in vals]
        rows.append((label, *vals, spec))
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
            verdict(None if h is None or lv is None else h <= lv),
            f"{fmt(h)} ms vs {fmt(lv)} ms",
        )
    )
    out.append(
        (
            "hybrid take(100) >= 10x faster than Parquet",
            verdict(None if h is None or p is None else p >= 10 * h),
            f"{fmt(h)} ms vs {fmt(p)} ms ({fmt(ratio(p, h), '.1f')}x)",
        )
    )
    for key, label in (
        ("mb_per_s", "hybrid scan >= Parquet scan"),
        ("touch_mb_per_s", "(extra) hybrid scan >= Parquet scan, every page touched"),
    ):
        hs, pscan = get(ps, "hybrid", "scan", key), get(ps, "parquet", "scan", key)
        out.append(
            (
                label,
                verdict(None if hs is None or pscan is None else hs >= pscan),
                f"{fmt(hs, ',.0f')} vs {fmt(pscan, ',.0f')} MB/s",
            )
        )
    r = get(ps, "hybrid", "add_columns", "written_over_raw")
    out.append(("hybrid add_columns bytes <= 1.1x new column", verdict(None if r is None else r <= 1.1), f"{fmt(r)}x"))
    return out


def render_table(res) -> str:
    rows = [["metric", "hybrid", "lance", "parquet", "hybrid/lance", "hybrid/parquet"]]
    for name, h, lv, p, spec in summary_rows(res):
        if h is None and lv is None and p is None:
            continue  # step skipped
        rows.append(
            [name, fmt(h, spec), fmt(lv, spec), fmt(p, spec), fmt(ratio(h, lv), ".2f"), fmt(ratio(h, p), ".2f")]
        )
    return grid(rows, labels=1)


CACHE_TEXT = {
    "warm": "Before every timed take/scan the store's files are read once (untimed) so that they are in the OS "
    "page cache and recently used.",
    "cold": "Before every timed take/scan the table is re-opened and its files are evicted from the OS page cache "
    "with posix_fadvise(DONTNEED), so the reads go to disk.",
    "asis": "No page-cache preparation before timed reads (whatever the OS kept).",
}


def render_md(res, meta) -> str:
    a = meta["args"]
    L = md_intro("Storage benchmark: hybrid vs LanceDB vs Parquet", "eval/bench_storage.py", meta)
    L.append(
        f"Data: {a['rows']:,} rows, ingested in chunks of {a['chunk_rows']:,}; columns `id` int64, "
        f"`text` string (~{a['text_bytes']} B of random words from a fixed 5,000-word vocabulary, "
        f"{res.get('text_column_nbytes', 0) / 1e6:,.0f} MB as Arrow), `vector` fixed_size_list<float32>[{DIM}], "
        "`category` string (20 values), `year` int32, `score` float64, `lang` string (10 values), `flag` bool. "
        f"Seed {a['seed']}. Medians over {a['repeats']} repeats (append: the single full ingestion). "
        + CACHE_TEXT[a["cache"]]
        + "\n"
    )
    L += md_machine(meta)
    L.append("## Results\n")
    L.append(render_table(res) + "\n")
    L.append(
        "Ratios are hybrid's figure divided by the other store's (for times <1 is better for hybrid, for rates >1).\n"
    )
    L += md_targets(targets(res))
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
    L += md_errors(res.get("errors") or {})
    L += md_damon(
        meta,
        ", so data written or read more than about a minute earlier is not reliably in memory any more; "
        "hence the explicit page-cache step before each timed read.",
        quota=True,
    )
    L.append(md_load(meta) + " (other processes on the machine add noise to the timings).\n")
    L.append(
        f"Total wall time {res['wall_seconds']:.0f} s (data generation {res.get('generation_seconds', 0):.0f} s); "
        f"peak RSS {res['peak_rss_mb']:,.0f} MB.\n"
    )
    return "\n".join(L)


def machine_info() -> dict[str, Any]:
    info = frame.machine_info(PACKAGES)
    try:
        import hybrid

        version = getattr(hybrid, "__version__", None)
        if version is not None:
            info["versions"]["hybrid (module)"] = version
    except Exception:
        pass
    return info
