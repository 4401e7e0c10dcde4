"""The search benchmark's report: the targets, the latency/quality and build tables, the Markdown page,
the machine."""

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
from bench.search_data import DEPTH, DIM, QUERY_TYPES, RRF_K, SYSTEM_TITLES, SYSTEMS, K, qt_name

PACKAGES = ("hybridsearch", "tantivy", "hnswlib", "lancedb", "pylance", "pyarrow", "duckdb", "numpy")


def q(res, system, qn, key):
    return get(res["per_system"], system, "queries", qn, key)


def b(res, system, key):
    return get(res["per_system"], system, "build", key)


def best_lance(res, qn) -> tuple[float | None, str | None]:
    vals = [(q(res, s, qn, "p50_ms"), s) for s in ("lance-hnsw", "lance-ivfpq")]
    vals = [(v, s) for v, s in vals if v is not None]
    return min(vals) if vals else (None, None)


def targets(res) -> list[tuple[str, str, str]]:
    out = []
    hp, fp = q(res, "hybrid", "hybrid", "p50_ms"), q(res, "floor", "hybrid", "p50_ms")
    lp, ls = best_lance(res, "hybrid")
    out.append(
        (
            "hybrid query p50 <= 1.3x floor",
            verdict(None if hp is None or fp is None else hp <= 1.3 * fp),
            f"{fmt(hp)} ms vs {fmt(fp)} ms ({fmt(ratio(hp, fp))}x)",
        )
    )
    out.append(
        (
            "hybrid query p50 <= 0.1x LanceDB hybrid p50 (faster LanceDB config)",
            verdict(None if hp is None or lp is None else hp <= 0.1 * lp),
            f"{fmt(hp)} ms vs {fmt(lp)} ms {SYSTEM_TITLES.get(ls, '')} ({fmt(ratio(hp, lp))}x)",
        )
    )
    ho = q(res, "hybrid", "hybrid", "quality")
    out.append(
        (
            "hybrid fused top-10 overlap >= 0.95 vs exact-branch RRF",
            verdict(None if ho is None else ho >= 0.95),
            f"{fmt(ho, '.3f')}",
        )
    )
    vr, vp, vf = (
        q(res, "hybrid", "vector", "quality"),
        q(res, "hybrid", "vector", "p50_ms"),
        q(res, "floor", "vector", "p50_ms"),
    )
    out.append(
        (
            "vector recall@10 >= 0.95 (default settings) at p50 <= 1.3x floor",
            verdict(None if vr is None or vp is None or vf is None else vr >= 0.95 and vp <= 1.3 * vf),
            f"recall {fmt(vr, '.3f')}; {fmt(vp)} ms vs {fmt(vf)} ms ({fmt(ratio(vp, vf))}x)",
        )
    )
    for p in (1, 10):
        qn = qt_name("vector", p)
        r, hp_ = q(res, "hybrid", qn, "quality"), q(res, "hybrid", qn, "p50_ms")
        lp_, ls_ = best_lance(res, qn)
        out.append(
            (
                f"filtered ({p}%) vector recall@10 >= 0.98 at p50 <= 0.5x LanceDB (faster config)",
                verdict(None if r is None or hp_ is None or lp_ is None else r >= 0.98 and hp_ <= 0.5 * lp_),
                f"recall {fmt(r, '.3f')}; {fmt(hp_)} ms vs {fmt(lp_)} ms {SYSTEM_TITLES.get(ls_, '')} "
                f"({fmt(ratio(hp_, lp_))}x)",
            )
        )

    hd, ld = b(res, "hybrid", "disk"), b(res, "lance-hnsw", "disk")
    if hd and ld:
        hr, lr = q(res, "hybrid", "vector", "quality"), q(res, "lance-hnsw", "vector", "quality")
        out.append(
            (
                "disk footprint (table + every index) <= 1.2x LanceDB HNSW-SQ's, at recall@10 >= its",
                verdict(None if hr is None or lr is None else hd["total"] <= 1.2 * ld["total"] and hr >= lr),
                f"{hd['total'] / 1e6:,.1f} MB ({b(res, 'hybrid', 'vector_kind') or 'hnsw'}) vs "
                f"{ld['total'] / 1e6:,.1f} MB ({fmt(ratio(hd['total'], ld['total']))}x); "
                f"recall@10 {fmt(hr, '.3f')} vs {fmt(lr, '.3f')}",
            )
        )

    def total(s, what):
        a, c = b(res, s, f"fts_{what}"), b(res, s, f"vector_{what}")
        return None if a is None or c is None else a + c

    for what, label, scale, unit in (("seconds", "index build time", 1, "s"), ("bytes", "index disk size", 1e6, "MB")):
        ht, ft = total("hybrid", what), total("floor", what)
        parts = "; ".join(
            f"{kind} {fmt(scaled(b(res, 'hybrid', f'{kind}_{what}'), scale), ',.1f')} vs "
            f"{fmt(scaled(b(res, 'floor', f'{kind}_{what}'), scale), ',.1f')} {unit} "
            f"({fmt(ratio(b(res, 'hybrid', f'{kind}_{what}'), b(res, 'floor', f'{kind}_{what}')))}x)"
            for kind in ("fts", "vector")
        )
        out.append(
            (
                f"{label} (FTS + vector) <= 1.1x floor",
                verdict(None if ht is None or ft is None else ht <= 1.1 * ft),
                f"{fmt(scaled(ht, scale), ',.1f')} vs {fmt(scaled(ft, scale), ',.1f')} {unit} "
                f"({fmt(ratio(ht, ft))}x); {parts}",
            )
        )
    return out


def render_table(res) -> str:
    present = [s for s in SYSTEMS if s in res["per_system"]]
    head = ["query", "metric"] + [SYSTEM_TITLES[s] for s in present]
    head += [f"hybrid/{SYSTEM_TITLES[s]}" for s in present if s != "hybrid"]
    rows = [head]
    for kind, where in QUERY_TYPES:
        qn = qt_name(kind, where)
        qual = {"vector": "recall@10", "text": "BM25 overlap@10", "hybrid": "RRF overlap@10"}[kind]
        for metric, key, spec in (("p50 ms", "p50_ms", ",.2f"), ("p95 ms", "p95_ms", ",.2f"), (qual, "quality", ".3f")):
            vals = {s: q(res, s, qn, key) for s in present}
            if all(v is None for v in vals.values()):
                continue
            r = [qn if metric == "p50 ms" else "", metric] + [fmt(vals[s], spec) for s in present]
            r += [
                fmt(ratio(vals.get("hybrid"), vals[s]), ".2f") if key != "quality" else ""
                for s in present
                if s != "hybrid"
            ]
            rows.append(r)
    return grid(rows)


def render_build(res) -> str:
    present = [s for s in SYSTEMS if s in res["per_system"]]
    rows = [
        [
            "index build",
            *[SYSTEM_TITLES[s] for s in present],
            *[f"hybrid/{SYSTEM_TITLES[s]}" for s in present if s != "hybrid"],
        ]
    ]
    for label, key, scale, spec in (
        ("FTS build s", "fts_seconds", 1, ",.1f"),
        ("vector build s", "vector_seconds", 1, ",.1f"),
        ("FTS index MB", "fts_bytes", 1e6, ",.1f"),
        ("vector index MB", "vector_bytes", 1e6, ",.1f"),
        ("table ingest s (not an index)", "ingest_seconds", 1, ",.1f"),
        ("category scalar index s", "scalar_seconds", 1, ",.1f"),
    ):
        vals = {s: scaled(b(res, s, key), scale) for s in present}
        if all(v is None for v in vals.values()):
            continue
        rows.append(
            [
                label,
                *[fmt(vals[s], spec) for s in present],
                *[fmt(ratio(vals.get("hybrid"), vals[s])) for s in present if s != "hybrid"],
            ]
        )
    return grid(rows, labels=1)


DISK_PARTS = (
    ("table: data files", "table_data"),
    ("table: all its own files", "table"),
    ("vector index", "vector"),
    ("FTS index", "fts"),
    ("category scalar index", "scalar"),
    ("total", "total"),
)


def render_disk(res) -> str:
    """Bytes on disk by part, for the systems that keep a table (hybrid, LanceDB)."""
    present = [s for s in SYSTEMS if b(res, s, "disk")]
    if not present:
        return ""
    rows = [["disk MB", *[SYSTEM_TITLES[s] for s in present]]]
    head_ratios = [f"hybrid/{SYSTEM_TITLES[s]}" for s in present if s != "hybrid"]
    rows[0] += head_ratios
    for label, key in DISK_PARTS:
        vals = {s: b(res, s, "disk").get(key) for s in present}
        rows.append(
            [
                label,
                *[fmt(scaled(vals[s], 1e6), ",.1f") for s in present],
                *[fmt(ratio(vals.get("hybrid"), vals[s])) for s in present if s != "hybrid"],
            ]
        )
    return grid(rows, labels=1)


def render_md(res, meta) -> str:
    a = meta["args"]
    d = res.get("data", {})
    L = md_intro("Search benchmark: hybrid vs LanceDB vs floor (raw hnswlib + tantivy)", "eval/bench_search.py", meta)
    L.append(
        f"Data: {d.get('docs', 0):,} docs; `text` ~{d.get('mean_text_bytes', 0):,.0f} B of words drawn from a "
        f"{a['vocab']:,}-word vocabulary with Zipf(s={a['zipf']}) frequencies ({d.get('text_mb', 0):,.0f} MB); "
        f"`vector` {DIM}-d float32, unit length, {a['clusters']} Gaussian clusters "
        + (
            f"(spread {a['cluster_spread']} in a random {a['latent_dim']}-d subspace per cluster + isotropic noise "
            f"{a['iso_noise']})"
            if a["latent_dim"] > 0
            else f"(isotropic spread {a['cluster_spread']})"
        )
        + f"; `category` int32 uniform over 0..99; seed {a['seed']}.\n"
    )
    L.append(
        f"Queries: {d.get('queries', 0)}, each from one document: {d.get('query_words_mean', 0):.1f} distinct words "
        f"of its text on average (e.g. {', '.join(repr(x) for x in d.get('query_examples', [])[:3])}) and its vector "
        f"plus noise of norm ~{a['query_noise']}, renormalised (the source doc is in the exact top-10 for "
        f"{100 * (res.get('query_self_hit') or 0):.0f}% of queries). "
        + (
            "Filters: `category < 1` / `category < 10` for every query (the same SQL each time)"
            if a["filters"] == "fixed"
            else "Filters: a different category range per query, e.g. "
            + ", ".join(f"`{x}`" for x in res.get("filter_examples", {}).get("1", []))
            + " / "
            + ", ".join(f"`{x}`" for x in res.get("filter_examples", {}).get("10", []))
        )
        + f", allowing {res.get('allowed_rows', {}).get('1', 0):,.0f} / "
        f"{res.get('allowed_rows', {}).get('10', 0):,.0f} rows on average. "
        + f"Top-{K}; hybrid queries fuse {DEPTH} candidates per branch with RRF(k={RRF_K}) "
        "(LanceDB's hybrid query fetches `limit` = 10 per branch, its default). "
        f"ef_search = {res.get('ef_search')} for hybrid, the floor and LanceDB HNSW-SQ.\n"
    )
    L.append(
        f"Each query runs one at a time. Per query type, {a['repeats']} pass(es); in each pass every system runs "
        f"{a['warmup']} untimed warm-up queries and then all queries on its own (no other system's queries "
        "in between: LanceDB's runtime threads keep running briefly after a query returns and slowed whichever "
        "system ran next when they were interleaved), in an order that rotates between passes. p50/p95 over "
        "all timed calls"
        + (
            " of the process's CPU time per query (all its threads), not wall time. "
            if a.get("clock") == "cpu"
            else ". "
        )
        + (
            "Before each query type every system's files are read once (untimed) so they sit in the page cache."
            if a["cache"] == "warm"
            else "No page-cache preparation."
        )
        + " BLAS/OpenMP single-threaded ("
        + ", ".join(f"{k}={v}" for k, v in meta["thread_env"].items())
        + "); hnswlib queries `num_threads=1`. hybrid runs the two branches of a hybrid query concurrently in its "
        "own thread pool, LanceDB in a Python thread pool over its Rust runtime"
        + (
            f" (LANCE_CPU_THREADS={meta['thread_env'].get('LANCE_CPU_THREADS')})"
            if meta["thread_env"].get("LANCE_CPU_THREADS")
            else " (default threads)"
        )
        + "; the floor runs its two branches one after the other in one thread. Reported as is.\n"
    )
    L += md_machine(meta)
    L.append("## Query latency and quality\n")
    L.append(render_table(res) + "\n")
    L.append(
        "recall@10: against exact cosine top-10 (over the allowed rows when filtered). BM25 overlap@10: against "
        "the floor's tantivy BM25 top-10 (same analyzer; restricted to the allowed rows when filtered). RRF "
        f"overlap@10: against RRF(k={RRF_K}) of the exact vector top-{DEPTH} and the exact BM25 top-{DEPTH}. Ratios "
        "are hybrid's p50/p95 divided by the other system's (<1: hybrid faster).\n"
    )
    L.append("## Index build\n")
    L.append(render_build(res) + "\n")
    L.append(
        "Build times are wall-clock seconds of the index call (hybrid: `create_fts_index` / `create_vector_index`, "
        "including reading the column from the table and committing; floor: tantivy writer + commit, hnswlib "
        "`add_items(num_threads=-1)` + `save_index` from in-memory arrays; LanceDB: `create_fts_index` / "
        "`create_index`). Sizes are the bytes of each index's own files.\n"
    )
    disk = render_disk(res)
    if disk:
        L.append("## Disk footprint\n")
        L.append(disk + "\n")
        L.append(
            f'hybrid\'s vector index: `{b(res, "hybrid", "vector_kind") or "hnsw"}`. "table: all its own files" is '
            'the table folder less its index folders (data files, deletions, manifests); "data files" the Arrow '
            "IPC (hybrid) or Lance (LanceDB) data files alone. Measured after every index was built.\n"
        )
    L += md_targets(targets(res))
    if res.get("hybrid_plans"):
        L.append("## hybrid's plans (first query)\n")
        for name, plan in res["hybrid_plans"].items():
            L.append(f"`{name}`:\n```\n{plan}\n```")
        L.append("")
    for prof in res.get("profiles") or []:
        L.append(f"## Profile of hybrid: `{prof['query_type']}` queries\n")
        L.append(
            f"cProfile over one pass of {prof['queries']} queries (a hybrid query's two branches run inline in the "
            f"calling thread for this pass so that the profiler sees them; {prof['per_query_ms']:.2f} ms per query "
            "under the profiler). Top entries by own time, then by cumulative time:\n"
        )
        L.append("```\n" + "\n".join(prof["tottime"].splitlines()[:30]) + "\n```\n")
        L.append("```\n" + "\n".join(prof["cumulative"].splitlines()[:30]) + "\n```\n")
    L += md_errors(res.get("errors") or {})
    L += md_damon(meta, "; hence the page-cache step before each query type.")
    L.append(
        md_load(meta) + ". "
        f"Total wall time {res['wall_seconds']:.0f} s (data generation {res.get('generation_seconds', 0):.0f} s, "
        f"exact answers {res.get('truth_seconds', 0):.0f} s); peak RSS {res['peak_rss_mb']:,.0f} MB.\n"
    )
    return "\n".join(L)


def machine_info() -> dict[str, Any]:
    return frame.machine_info(PACKAGES, processor=True)
