#!/usr/bin/env python
"""CPU per request of the load test's mix, in one process: what writes add to searches.

Wall throughput on a shared machine says as much about the neighbours as about the
code, so this driver measures CPU time instead. It builds the table ``eval/load_server.py``
builds (SciFact, or synthetic documents, with a HashingEmbedder binding, a BM25 index and
an HNSW index), then replays that script's request mix against it through the server's own
table layer (``hybrid.server.tables.Tables``: a read view pinned to the newest version per
request, writes through the writer table, background upkeep as the server runs it) on one
thread, twice on fresh copies of the table: read-only (the searches' share of the mix
only) and mixed (the mix with its appends and deletes). The searches are built the way the
server builds them (the non-vector columns selected, ``limit`` rows, the request's filter).

Reported per mode: process CPU ms per request (every thread, so background upkeep
counts) and per search, the searches' own thread CPU ms (median and mean), and wall ms per
request; the ratio mixed / read-only of CPU per request is the in-process counterpart of
the server's throughput ratio (at full load a server's throughput is cores / CPU per
request). With ``--profile`` a cProfile of the searches in each mode, and the functions
whose own time grows most from read-only to mixed, per search.

With ``--clients N`` the requests are sent by N threads at once (as a server's request threads
run them), so writes can overlap; ``--appends`` picks how an append commits: ``group`` (the
server's path: rows validated in the request's thread, then queued for the group commit, so
appends that overlap share a version) or ``lock`` (one commit per request under the table's
write lock, as before group commit); ``both`` runs the mixed mode once each way.

Results: ``eval/results/<name>.json`` and ``.md`` (default ``mixed_cpu``).

    python eval/mixed_cpu.py                       # 3,000 requests per mode after 300 warm-up
    python eval/mixed_cpu.py --requests 1500 --profile
    python eval/mixed_cpu.py --clients 8 --appends both
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load_server as ls  # noqa: E402
from bench.frame import RESULTS_DIR, git_info, grid, machine_info, md_intro, md_machine, write_results  # noqa: E402

from hybrid.server.group_commit import GroupCommit  # noqa: E402
from hybrid.server.tables import Tables  # noqa: E402
from hybrid.storage.ingest import is_vector_type  # noqa: E402

PROFILE_CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
"""What ``--profile`` times: wall time (waits for a core and for the GIL included) or the thread's CPU time."""

READ_ONLY_MIX = "hybrid=0.55,fts=0.25,vector=0.12"


class _Args:
    """What `load_server.Load` reads from its arguments."""

    def __init__(self, mix: str, limit: int, seed: int) -> None:
        self.mix, self.limit, self.seed = mix, limit, seed


def replay(
    folder: Path,
    rows: list[dict[str, Any]],
    queries: list[str],
    args: argparse.Namespace,
    mixed: bool,
    appends: str = "group",
) -> dict[str, Any]:
    """Run `args.warmup` + `args.requests` requests of one mode against the table in `folder`
    (on `args.clients` threads; appends committed as `appends` says: "group" or "lock")."""
    tables = Tables(folder)
    tables.group = GroupCommit(tables.commit_appends, window_s=args.group_commit_ms / 1e3)
    guard = threading.Lock()  # the request generator and the counters are shared by the client threads
    commits: set[int] = set()
    load = ls.Load(_Args(args.mix if mixed else READ_ONLY_MIX, args.limit, args.seed), rows, queries)  # type: ignore[arg-type]
    rng = random.Random(args.seed)
    kinds = rng.choices(load.kinds, load.weights, k=args.warmup + args.requests)
    clock = PROFILE_CLOCKS[args.profile_clock]
    profile = cProfile.Profile(clock) if args.profile else None
    write_profile = cProfile.Profile(clock) if args.profile and mixed else None
    search_cpu: list[float] = []
    counts = {"search": 0, "write": 0}

    def one(kind: str, measured: bool) -> None:
        with guard:
            path, body = load.request(kind, rng)
        if path in ("rows", "rows/delete"):
            if write_profile is not None and measured:
                write_profile.enable()
            if path == "rows" and appends == "group":
                version = tables.group.append("docs", tables.prepare_append("docs", body["rows"])).commit.version
            else:
                with tables.write("docs") as table:
                    c = table.add(body["rows"]) if path == "rows" else table.delete(body["where"])
                    version = c.version
            if write_profile is not None and measured:
                write_profile.disable()
            with guard:
                counts["write"] += measured
                commits.add(version)
            return
        began = time.thread_time()
        if profile is not None and measured:
            profile.enable()
        with tables.reading("docs") as view:
            q = view.search(body["query"], query_type=body["query_type"]).limit(body["limit"])
            if "where" in body:
                q = q.where(body["where"])
            q = q.select([f.name for f in view.schema if not is_vector_type(f.type)])
            q.to_arrow()
        if profile is not None and measured:
            profile.disable()
        if measured:
            with guard:
                search_cpu.append(time.thread_time() - began)
                counts["search"] += 1

    def run(todo: list[str], measured: bool) -> None:
        if args.clients == 1:
            for kind in todo:
                one(kind, measured)
            return
        queue = iter(todo)

        def client() -> None:
            while True:
                with guard:
                    kind = next(queue, None)
                if kind is None:
                    return
                one(kind, measured)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    run(kinds[: args.warmup], False)
    commits.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run(kinds[args.warmup :], True)
    wall = time.perf_counter() - wall0
    writer = tables.read("docs")
    writer.wait_for_upkeep()  # background upkeep started by the measured writes is their cost too
    cpu = time.process_time() - cpu0
    n = args.requests
    out: dict[str, Any] = {
        "mode": ("mixed" if args.appends != "both" else f"mixed ({appends})") if mixed else "read-only",
        "requests": n,
        "searches": counts["search"],
        "writes": counts["write"],
        "cpu_ms_per_request": round(1e3 * cpu / n, 3),
        "cpu_ms_per_search_incl_writes": round(1e3 * cpu / max(1, counts["search"]), 3),
        "search_thread_cpu_ms_median": round(1e3 * statistics.median(search_cpu), 3),
        "search_thread_cpu_ms_mean": round(1e3 * statistics.fmean(search_cpu), 3),
        "wall_ms_per_request": round(1e3 * wall / n, 3),
        "write_versions": len(commits),
        "versions_at_end": writer.version,
        "commits_by_operation": dict(Counter(v.operation for v in writer.versions()).most_common()),
        "fragments_at_end": len(writer.snapshot().manifest.fragments),
    }
    if profile is not None:
        out["_profile"] = profile
    if write_profile is not None:
        out["_write_profile"] = write_profile
    return out


def _times(stats: dict[Any, Any], per: int, which: int, only_hybrid: bool) -> dict[str, float]:
    """ms per search of each profiled function: own time (`which` 2) or with callees (3)."""
    out: dict[str, float] = {}
    for (file, line, func), value in stats.items():
        short = file.split("site-packages/")[-1]
        if "/hybrid/" in short:
            short = "hybrid/" + short.split("/hybrid/")[-1]
        elif only_hybrid:
            continue
        out[f"{short}:{line}({func})"] = 1e3 * value[which] / per
    return out


def _grown(a: dict[str, float], b: dict[str, float], top: int, total: bool) -> list[list[str]]:
    rows = [["function", "read-only ms/search", "mixed ms/search", "added ms/search"]]
    grown = sorted(((b.get(k, 0.0) - a.get(k, 0.0), k) for k in set(a) | set(b)), reverse=True)[:top]
    rows += [[k, f"{a.get(k, 0.0):.4f}", f"{b.get(k, 0.0):.4f}", f"{d:.4f}"] for d, k in grown]
    if total:
        sa, sb = sum(a.values()), sum(b.values())
        rows.append(["(all, profiled)", f"{sa:.3f}", f"{sb:.3f}", f"{sb - sa:.3f}"])
    return rows


def profile_diff(ro: dict[str, Any], mx: dict[str, Any], top: int) -> dict[str, list[list[str]]]:
    """The functions whose time per search grows most from read-only to mixed: own time, and with
    callees (the project's functions only)."""
    a = pstats.Stats(ro.pop("_profile")).stats  # type: ignore[attr-defined]
    b = pstats.Stats(mx.pop("_profile")).stats  # type: ignore[attr-defined]
    na, nb = ro["searches"], mx["searches"]
    w = pstats.Stats(mx.pop("_write_profile")).stats  # type: ignore[attr-defined]
    writes = sorted(_times(w, mx["writes"], 3, True).items(), key=lambda kv: -kv[1])[:top]
    return {
        "writes": [["function", "ms/write with callees (in the request's thread)"]]
        + [[k, f"{v:.3f}"] for k, v in writes],
        "own": _grown(_times(a, na, 2, False), _times(b, nb, 2, False), top, True),
        "cumulative": _grown(_times(a, na, 3, True), _times(b, nb, 3, True), top, False),
    }


def markdown(res: dict[str, Any]) -> str:
    lines = md_intro("CPU per request: the load mix with and without writes", "eval/mixed_cpu.py", res)
    lines += md_machine(res)
    lines += [
        "The machine is shared with other work: CPU time (not wall time) is the measure, and the two modes "
        "run back to back in one process on fresh copies of one table. Load average before "
        f"{res.get('load_average_before')}, after {res.get('load_average_after')}.",
        "",
    ]
    keys = [k for k in res["modes"][0] if k != "mode"]
    table = [["measure", *(m["mode"] for m in res["modes"])]]
    table += [[k, *(str(m[k]) for m in res["modes"])] for k in keys]
    lines += ["## Per mode\n", grid(table, labels=1), ""]
    lines += [
        f"Mixed / read-only CPU per request: **{res['cpu_ratio']}x** (throughput at full load would be "
        f"{res['throughput_ratio_estimate']}x read-only; the server target is >= 0.8x). "
        f"Per search (its own thread): {res['search_cpu_ratio']}x.",
        "",
    ]
    if "cpu_ratio_lock" in res:
        lines += [
            f"The same with one commit per append under the write lock: **{res['cpu_ratio_lock']}x**.",
            "",
        ]
    if res.get("profile_diff"):
        diff = res["profile_diff"]
        lines += ["## Where a search's time grows with writes (cProfile, own time)\n", grid(diff["own"], 1), ""]
        lines += ["## ... with callees (the project's functions)\n", grid(diff["cumulative"], 1), ""]
        lines += ["## What a write costs in its request (cProfile, with callees)\n", grid(diff["writes"], 1), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ls.DEFAULT_DATA, help="folder with scifact/ (or HYBRID_DATA)")
    ap.add_argument("--corpus", choices=["scifact", "synthetic"], default="scifact")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--mix", default=ls.DEFAULT_MIX)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--requests", type=int, default=3_000)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="cProfile the searches and list what writes add")
    ap.add_argument(
        "--profile-clock",
        choices=sorted(PROFILE_CLOCKS),
        default="thread",
        help="what --profile times: the profiled thread's CPU time (default), or wall time, which books the "
        "time a search waits for the core while writer and upkeep threads run to whatever released the GIL",
    )
    ap.add_argument("--clients", type=int, default=1, help="threads sending the requests at once")
    ap.add_argument(
        "--appends",
        choices=["group", "lock", "both"],
        default="group",
        help="appends through the group commit (the server's path), one commit each under the lock, or both",
    )
    ap.add_argument("--group-commit-ms", type=float, default=2.0, help="the group commit's window")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--name", default="mixed_cpu")
    ap.add_argument(
        "--only",
        choices=["read-only", "mixed"],
        default=None,
        help="one mode (to sample it with py-spy); no results file",
    )
    args = ap.parse_args(argv)
    if args.profile and args.clients != 1:
        ap.error("--profile needs --clients 1 (a cProfile follows one thread)")
    if args.corpus == "scifact":
        rows, queries = ls.scifact(args.data, args.docs)
    else:
        rows, queries = ls.synthetic(args.docs or 5_000, args.seed)
    res: dict[str, Any] = {
        "command": shlex.join(["python", "eval/mixed_cpu.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(("numpy", "pyarrow", "tantivy", "hnswlib", "duckdb")),
        "git": git_info(),
        "modes": [],
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="mixed-cpu-") as scratch:
        base = Path(scratch) / "base"
        res["build"] = ls.build_table(base, rows, args.dim)
        ways = ["lock", "group"] if args.appends == "both" else [args.appends]
        for mixed, appends in [(False, ways[0]), *((True, w) for w in ways)]:
            if args.only is not None and args.only != ("mixed" if mixed else "read-only"):
                continue
            folder = Path(scratch) / (f"mixed-{appends}" if mixed else "readonly")
            shutil.copytree(base, folder)
            run = replay(folder, rows, queries, args, mixed, appends)
            print({k: v for k, v in run.items() if k != "_profile"}, flush=True)
            res["modes"].append(run)
    res["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.only is not None:
        return
    ro, mx = res["modes"][0], res["modes"][-1]
    res["cpu_ratio"] = round(mx["cpu_ms_per_request"] / ro["cpu_ms_per_request"], 3)
    res["throughput_ratio_estimate"] = round(ro["cpu_ms_per_request"] / mx["cpu_ms_per_request"], 3)
    res["search_cpu_ratio"] = round(mx["search_thread_cpu_ms_mean"] / ro["search_thread_cpu_ms_mean"], 3)
    if len(res["modes"]) == 3:
        lock = res["modes"][1]
        res["cpu_ratio_lock"] = round(lock["cpu_ms_per_request"] / ro["cpu_ms_per_request"], 3)
    if args.profile:
        res["profile_diff"] = profile_diff(ro, mx, args.top)
        for m in res["modes"]:
            m.pop("_profile", None)
            m.pop("_write_profile", None)
    write_results(RESULTS_DIR, args.name, res, markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
