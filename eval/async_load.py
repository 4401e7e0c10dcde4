#!/usr/bin/env python
"""The async API under load: concurrent searches and writers on one table, and how long the event loop stalls.

Through ``hybrid.connect_async`` only, on a table built here (``--docs`` rows of random
word text and ``--dim``-d random vectors, a full-text and an HNSW index, automatic upkeep
on as by default):

* ``--searchers`` coroutines (64) each run ``--searches`` hybrid searches (text + vector,
  k=10) one after another, while ``--writers`` coroutines (8) each append ``--writes``
  batches of ``--batch`` rows with ids of their own;
* a ticker coroutine sleeps 5 ms again and again and records how late it wakes up: the
  longest lateness is the longest time the event loop was blocked.

Checked afterwards: no call raised, every written id is in the table exactly once and the
row count is right. As a control, the same ticker beside a few sync searches and writes
called straight from the event loop (what the async API is for avoiding) shows that the
ticker sees a blocked loop.

Results: ``eval/results/async_load.json`` and ``.md``.

    python eval/async_load.py
    python eval/async_load.py --docs 5000 --searches 5 --writes 5
"""

# ruff: noqa: E402 - the thread variables must be set before numpy loads its BLAS
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import asyncio
import faulthandler
import gc
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.frame import RESULTS_DIR, git_info, grid, machine_info, md_intro, md_machine, md_targets, write_results

import hybrid
import hybrid.aio

VOCABULARY = 20_000
TICK_S = 0.005
BLOCK_TARGET_MS = 50.0
DUMP_AFTER_S = 0.040
GC_HELP = (
    "freeze (default): once the table is built and warmed up, gc.collect() and gc.freeze(), as a server does "
    "after its start-up (the heap then alive - modules, indexes, caches - is left out of later collections, so "
    "a full collection scans only what came after); auto: CPython's collector as it is, whose full collections "
    "scan every object of the process while holding the GIL"
)
LOOP_COLUMNS = (
    "max_block_ms",
    "worst_tick_queued_ms",
    "worst_tick_gc_ms",
    "max_held_ms",
    "max_self_ms",
    "p99_block_ms",
)


class GcWatch:
    """Every garbage collection while `active`: generation, start, wall ms and CPU ms of the collecting thread.

    A collection holds the GIL from start to end, so a full (generation 2) one over a heap of
    tens of thousands of objects (numpy, pyarrow, pandas, DuckDB loaded) keeps every other thread,
    the event loop included, waiting that long.
    """

    def __init__(self) -> None:
        self.active = False
        self.events: list[tuple[int, float, float, float]] = []
        self._started: dict[int, tuple[float, float]] = {}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if not self.active:
            return
        key = threading.get_ident()
        if phase == "start":
            self._started[key] = (time.perf_counter(), time.thread_time())
        elif key in self._started:
            wall0, cpu0 = self._started.pop(key)
            wall = (time.perf_counter() - wall0) * 1000
            self.events.append((info["generation"], wall0, wall, (time.thread_time() - cpu0) * 1000))

    def during(self, start: float, end: float) -> float:
        """Milliseconds of garbage collection that overlap the wall-clock span [start, end]."""
        return sum(max(0.0, min(end, t + wall / 1000) - max(start, t)) * 1000 for _, t, wall, _ in self.events)

    def summary(self) -> dict[str, Any]:
        full = [e for e in self.events if e[0] == 2]
        return {
            "gc_collections": [sum(e[0] == g for e in self.events) for g in range(3)],
            "gc2_max_wall_ms": round(max((e[2] for e in full), default=0.0), 2),
            "gc2_max_cpu_ms": round(max((e[3] for e in full), default=0.0), 2),
        }


GC_WATCH = GcWatch()


def rows(rng: np.random.Generator, ids: range, dim: int) -> list[dict[str, Any]]:
    ranks = np.minimum(rng.zipf(1.3, size=(len(ids), 12)), VOCABULARY)
    vectors = rng.random((len(ids), dim), dtype=np.float32)
    return [
        {"id": i, "text": " ".join(f"w{r}" for r in row), "vector": v.tolist()}
        for i, row, v in zip(ids, ranks, vectors)
    ]


class Ticker:
    """Sleeps `TICK_S` over and over and records how late each wake-up is (ms).

    With `dump` (an open file), every wake-up later than `DUMP_AFTER_S` also writes the Python
    stack of every thread there (faulthandler's watchdog runs without the GIL), which shows
    what held the GIL while the loop waited.

    Where Linux tells it (``/proc/thread-self/schedstat``), each wake-up also records how long the loop's
    thread waited in the run queue for a CPU during that tick (`queued_ms`): time the OS gave the cores
    to other threads or processes. What is left of the lateness (`held_ms`) is time the thread slept
    waiting for the GIL, or ran the loop's other callbacks.

    Each wake-up also records the CPU time the whole process got during the tick (every thread,
    ``time.process_time``). A tick of `wall` ms in which the process got `cpu` ms had at least
    `wall - cpu` ms in which none of its threads ran: the OS ran other processes then, so no thread of
    this process can have blocked the loop during that time (a GIL holder that is not running is waiting
    for a CPU itself). `self_ms` = lateness minus that time is an upper bound of what the process itself
    (a GIL holder, the loop's own callbacks) kept the loop waiting.
    """

    dump: IO[str] | None = None

    def __init__(self) -> None:
        self.late_ms: list[float] = []
        self.queued_ms: list[float] = []
        self.self_ms: list[float] = []
        self.spans: list[tuple[float, float]] = []  # each tick's wall-clock span
        self._stop = asyncio.Event()

    async def run(self) -> None:
        sched = _schedstat()
        while not self._stop.is_set():
            start = time.perf_counter()
            queued = _queued_ns(sched)
            cpu = time.process_time()
            threads = _thread_stats() if self.dump is not None else {}
            if self.dump is not None:
                faulthandler.dump_traceback_later(DUMP_AFTER_S, file=self.dump)
            await asyncio.sleep(TICK_S)
            if self.dump is not None:
                faulthandler.cancel_dump_traceback_later()
            wall = (time.perf_counter() - start) * 1000
            late = wall - TICK_S * 1000
            idle = max(0.0, wall - (time.process_time() - cpu) * 1000)  # no thread of this process ran
            self.late_ms.append(late)
            self.spans.append((start, time.perf_counter()))
            self.queued_ms.append((_queued_ns(sched) - queued) / 1e6)
            self.self_ms.append(max(0.0, late - idle))
            if self.dump is not None and late > DUMP_AFTER_S * 1000:
                print(
                    f"^ late {late:.1f} ms: the loop's thread waited {self.queued_ms[-1]:.1f} ms for a CPU; "
                    f"no thread of the process ran for >= {idle:.1f} ms; per thread (ms on a CPU / ms waiting "
                    f"for one): {_thread_deltas(threads, _thread_stats())}",
                    file=self.dump,
                )
        if sched is not None:
            os.close(sched)

    def stop(self) -> None:
        self._stop.set()

    def summary(self) -> dict[str, Any]:
        late = np.array(self.late_ms or [0.0])
        queued = np.array(self.queued_ms or [0.0])
        held = late - queued
        worst = int(late.argmax())
        return {
            "ticks": len(self.late_ms),
            "max_block_ms": round(float(late.max()), 2),
            "p99_block_ms": round(float(np.percentile(late, 99)), 2),
            "p50_block_ms": round(float(np.percentile(late, 50)), 2),
            "ticks_over_50ms": int((late > BLOCK_TARGET_MS).sum()),
            "worst_tick_queued_ms": round(float(queued[worst]), 2),
            "worst_tick_gc_ms": round(GC_WATCH.during(*self.spans[worst]), 2) if self.spans else 0.0,
            "max_held_ms": round(float(held.max()), 2),
            "ticks_held_over_50ms": int((held > BLOCK_TARGET_MS).sum()),
            "queued_ms_total": round(float(queued.sum()), 1),
            "max_self_ms": round(float(max(self.self_ms or [0.0])), 2),
            "ticks_self_over_50ms": int(sum(x > BLOCK_TARGET_MS for x in self.self_ms)),
        }


def _thread_stats() -> dict[int, tuple[int, int]]:
    """(ns on a CPU, ns runnable waiting for one) of every thread of this process, by native thread id."""
    out: dict[int, tuple[int, int]] = {}
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/schedstat") as fh:
                run, wait = fh.read().split()[:2]
            out[int(tid)] = (int(run), int(wait))
    except OSError:
        pass
    return out


def _thread_deltas(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> str:
    """The threads that ran or waited for a CPU between two `_thread_stats`, named where Python knows them."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    parts = []
    for tid, (run, wait) in after.items():
        run0, wait0 = before.get(tid, (0, 0))
        if run - run0 > 1e6 or wait - wait0 > 1e6:
            parts.append(f"{names.get(tid, f'native {tid}')} {(run - run0) / 1e6:.1f}/{(wait - wait0) / 1e6:.1f}")
    return ", ".join(parts) or "none"


def _schedstat() -> int | None:
    """A descriptor of this thread's scheduler statistics (Linux), or None where there are none."""
    try:
        return os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return None


def _queued_ns(fd: int | None) -> int:
    """Nanoseconds this thread has spent runnable but waiting for a CPU (0 without schedstat)."""
    if fd is None:
        return 0
    return int(os.pread(fd, 100, 0).split()[1])


async def with_ticker(work: Callable[[], Awaitable[Any]]) -> tuple[Any, dict[str, Any]]:
    ticker = Ticker()
    GC_WATCH.events.clear()
    GC_WATCH.active = True
    ticking = asyncio.create_task(ticker.run())
    await asyncio.sleep(0)
    try:
        result = await work()
    finally:
        ticker.stop()
        await ticking
        GC_WATCH.active = False
    return result, {**ticker.summary(), **GC_WATCH.summary()}


def ms(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)) * 1000, 2) if xs else float("nan")


async def load(args: argparse.Namespace, folder: Path, threads: int | None) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    hybrid.aio.set_threads(threads)
    db = await hybrid.connect_async(folder, upkeep=None if args.no_upkeep else hybrid.Upkeep())
    t = await db.create_table("docs", rows(rng, range(args.docs), args.dim))
    await t.create_fts_index("text")
    await t.create_vector_index()
    queries = [(f"w{int(a)} w{int(b)}", rng.random(args.dim, dtype=np.float32)) for a, b in rng.zipf(1.3, (256, 2))]
    batches = {
        (w, b): rows(rng, range(args.docs + (w * args.writes + b) * args.batch, args.docs + (w * args.writes + b + 1)
                                * args.batch), args.dim)
        for w in range(args.writers) for b in range(args.writes)
    }  # fmt: skip
    for text, vector in queries[:8]:  # warm up: load the indexes, start the pool's threads
        await t.search(text, query_type="hybrid").vector(vector).limit(10).ato_list()
    if args.gc == "freeze":  # what a server does once started: see GC_HELP
        gc.collect()
        gc.freeze()
    search_s: list[float] = []
    write_s: list[float] = []
    errors: list[str] = []

    async def searcher(s: int) -> None:
        for i in range(args.searches):
            text, vector = queries[(s * args.searches + i) % len(queries)]
            start = time.perf_counter()
            try:
                found = await t.search(text, query_type="hybrid").vector(vector).limit(10).ato_list()
                if not found:
                    errors.append(f"search {s}/{i}: no rows")
            except Exception as exc:  # counted and reported, the load goes on
                errors.append(f"search {s}/{i}: {exc!r}")
            search_s.append(time.perf_counter() - start)

    async def writer(w: int) -> None:
        for b in range(args.writes):
            start = time.perf_counter()
            try:
                await t.add(batches[w, b])
            except Exception as exc:
                errors.append(f"write {w}/{b}: {exc!r}")
            write_s.append(time.perf_counter() - start)

    async def everything() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(searcher(s) for s in range(args.searchers)), *(writer(w) for w in range(args.writers)))
        return time.perf_counter() - start

    load_before = os.getloadavg()[0]
    try:
        wall_s, loop = await with_ticker(everything)
    finally:
        gc.unfreeze()  # the next run starts from a heap like this one's
    load_after = os.getloadavg()[0]
    await t.wait_for_upkeep()
    ids = (await t.to_arrow(["id"]))["id"].to_numpy()
    expected = args.docs + args.writers * args.writes * args.batch
    lost = expected - len(np.unique(ids))
    return {
        "threads": threads or hybrid.aio.default_threads(),
        "searches": len(search_s),
        "writes": len(write_s),
        "wall_s": round(wall_s, 2),
        "searches_per_s": round(len(search_s) / wall_s, 1),
        "search_p50_ms": ms(search_s, 50),
        "search_p99_ms": ms(search_s, 99),
        "write_p50_ms": ms(write_s, 50),
        "write_p99_ms": ms(write_s, 99),
        "errors": len(errors),
        "first_errors": errors[:5],
        "rows_expected": expected,
        "rows_found": int(len(ids)),
        "duplicate_rows": int(len(ids) - len(np.unique(ids))),
        "lost_rows": int(lost),
        "versions": await t.version(),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "loop": loop,
    }


async def idle(seconds: float) -> dict[str, Any]:
    """The ticker alone, no load: how late this machine wakes an idle event loop (other processes, the OS)."""
    _, loop = await with_ticker(lambda: asyncio.sleep(seconds))
    return {"seconds": seconds, "loop": loop}


async def control(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The same kind of calls made sync, straight from the event loop: the ticker must see it blocked."""
    rng = np.random.default_rng(1)
    table = hybrid.connect(folder).create_table("docs", rows(rng, range(args.docs), args.dim))
    table.create_fts_index("text")
    table.create_vector_index()

    async def blocking() -> None:
        for i in range(20):
            table.search(f"w{i + 1}", query_type="hybrid").vector(rng.random(args.dim)).limit(10).to_list()
            table.add(rows(rng, range(10**7 + i * args.batch, 10**7 + (i + 1) * args.batch), args.dim))
            await asyncio.sleep(0)

    _, loop = await with_ticker(blocking)
    table.wait_for_upkeep()
    return {"calls": 40, "loop": loop}


def markdown(res: dict[str, Any]) -> str:
    lines = md_intro("The async API under load", "eval/async_load.py", res) + md_machine(res)
    r, c = res["load"], res["control"]
    a = res["args"]
    lines += [
        f"One table of {a['docs']:,} rows ({a['dim']}-d vectors, full-text and HNSW indexes, automatic upkeep on). "
        f"{a['searchers']} coroutines run {a['searches']} hybrid searches each (k=10) while {a['writers']} "
        f"coroutines append {a['writes']} batches of {a['batch']} rows each, all through `hybrid.connect_async`; "
        f"a ticker coroutine sleeps {TICK_S * 1000:.0f} ms in a loop and records how late it wakes up. "
        f"Calls run in hybrid's async pool of {r['threads']} threads (`hybrid.aio.set_threads`). "
        f"Garbage collector: `--gc {a.get('gc', 'auto')}` ({GC_HELP}).\n",
        "The first run, in full:\n",
        grid([["measure", "value"]] + [[k, str(v)] for k, v in r.items() if k not in ("loop", "first_errors")], 1),
        "",
        "## Event loop\n",
        "Lateness of the 5 ms ticker, in ms: under the async load; beside sync calls made straight from the "
        "event loop, which block it for as long as each call runs (control); and alone, with no load, for as "
        "long as the load ran (what the machine itself adds: other processes, the OS).\n",
        grid(
            [["run", "ticks", "max", "p99", "p50", "ticks over 50 ms"]]
            + [
                [
                    name,
                    str(x["ticks"]),
                    str(x["max_block_ms"]),
                    str(x["p99_block_ms"]),
                    str(x["p50_block_ms"]),
                    str(x["ticks_over_50ms"]),
                ]
                for name, x in (
                    ("async API under load (first run)", r["loop"]),
                    (f"control: {c['calls']} sync calls", c["loop"]),
                    ("idle loop, no load", res["idle"]["loop"]),
                )
            ],
            1,
        ),  # fmt: skip
        "",
    ]
    keys = ["threads", "repeat", "searches_per_s", "search_p50_ms", "search_p99_ms", "write_p50_ms", "errors",
            "lost_rows"]  # fmt: skip
    lines += [
        "## Every run, by pool size\n",
        f"The load {a['repeats']} times with hybrid's pool ({r['threads']} threads) and with the other pool sizes "
        "asked for (by default as many threads as asyncio's own default pool has on this machine), in turn. "
        "Each thread that wants the GIL can keep the event loop waiting another switch interval (5 ms). "
        "*CPU wait* is how long the loop's thread sat runnable in the OS run queue during its latest tick "
        "(Linux schedstat): the cores were busy with other threads or processes. *Less CPU wait* is each "
        "tick's lateness minus its CPU wait, the longest over the run: waiting for the GIL and the loop's own "
        "callbacks. *Self, max* is the longest lateness less the time in which no thread of the process ran "
        "(the tick's wall time minus the CPU time the process got): an upper bound of how long the process's own "
        "threads (a GIL holder, the loop's callbacks) kept the loop waiting. *GC in it* is how much of that "
        "tick a garbage collection took (it holds the GIL); *full GCs* counts the generation-2 collections "
        "during the load, with the longest one's wall and CPU time. "
        "*Load* is the 1-minute load average before and after the run.\n",
        grid(
            [
                [
                    *keys,
                    "loop max ms",
                    "CPU wait in it",
                    "GC in it",
                    "less CPU wait, max",
                    "self, max",
                    "loop p99 ms",
                    "full GCs (longest ms, CPU ms)",
                    "load",
                ]
            ]
            + [
                [str(x[k]) for k in keys]
                + [str(x["loop"][k]) for k in LOOP_COLUMNS]
                + [f"{x['loop']['gc_collections'][2]} ({x['loop']['gc2_max_wall_ms']}, {x['loop']['gc2_max_cpu_ms']})"]
                + [" / ".join(str(v) for v in x["load_average"])]
                for x in sorted(res["runs"], key=lambda x: (not x["default_pool"], x["threads"], x["repeat"]))
            ],
            2,
        ),  # fmt: skip
        "",
    ]
    maxima = sorted(x["loop"]["max_block_ms"] for x in res["runs"] if x["default_pool"])
    own = sorted(x["loop"]["max_self_ms"] for x in res["runs"] if x["default_pool"])
    lines += [
        f"Longest stall per run ({r['threads']} threads), sorted: {', '.join(str(m) for m in maxima)} ms; "
        f"median {float(np.median(maxima)):.2f} ms. Its self-caused upper bound per run, sorted: "
        f"{', '.join(str(m) for m in own)} ms.\n"
    ]
    errors = [e for x in res["runs"] for e in x["first_errors"]]
    if errors:
        lines += ["## First errors\n"] + [f"- `{e}`" for e in errors[:10]] + [""]
    ours = [x for x in res["runs"] if x["default_pool"]]
    worst = max(ours, key=lambda x: x["loop"]["max_block_ms"])
    n_errors, n_lost = sum(x["errors"] for x in ours), sum(x["lost_rows"] + x["duplicate_rows"] for x in ours)
    lines += md_targets(
        [
            ("no error", "met" if n_errors == 0 else "not met", f"{n_errors} errors in {len(ours)} runs"),
            (
                "no lost row",
                "met" if n_lost == 0 else "not met",
                f"{len(ours)} runs of {r['rows_expected']:,} rows each; {n_lost} lost or duplicated",
            ),
            (
                f"event loop never blocked > {BLOCK_TARGET_MS:.0f} ms",
                "met" if worst["loop"]["max_block_ms"] <= BLOCK_TARGET_MS else "not met",
                f"longest {worst['loop']['max_block_ms']} ms over {sum(x['loop']['ticks'] for x in ours):,} ticks "
                f"of {len(ours)} runs ({r['threads']} threads)",
            ),
            (
                f"... counting only what the process itself can have caused (<= {BLOCK_TARGET_MS:.0f} ms)",
                "met" if max(own) <= BLOCK_TARGET_MS else "not met",
                f"longest upper bound {max(own)} ms; load average {min(x['load_average'][0] for x in ours)}-"
                f"{max(x['load_average'][1] for x in ours)} on {os.cpu_count()} cores",
            ),
        ]
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--searchers", type=int, default=64)
    ap.add_argument("--searches", type=int, default=20, help="searches per searcher")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--writes", type=int, default=20, help="appends per writer")
    ap.add_argument("--batch", type=int, default=10, help="rows per append")
    ap.add_argument("--threads", type=int, default=None, help="hybrid's async pool size (default: its own)")
    ap.add_argument(
        "--compare-threads",
        type=int,
        nargs="*",
        default=[min(32, (os.cpu_count() or 1) + 4)],
        help="also run the load with these pool sizes (default: asyncio's default pool size here)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="runs of the load per pool size")
    ap.add_argument("--no-upkeep", action="store_true", help="turn automatic upkeep off")
    ap.add_argument("--dump-stalls", type=Path, help="write every thread's stack here when the loop stalls > 40 ms")
    ap.add_argument("--gc", choices=("freeze", "auto"), default="freeze", help=GC_HELP)
    ap.add_argument("--name", default="async_load", help="results file name under eval/results/")
    args = ap.parse_args(argv)
    res: dict[str, Any] = {
        "command": shlex.join(["python", "eval/async_load.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(("numpy", "pyarrow", "tantivy", "hnswlib")),
        "git": git_info(),
        "args": {k: v for k, v in vars(args).items() if k != "dump_stalls"},
    }
    if args.dump_stalls is not None:
        Ticker.dump = open(args.dump_stalls, "w")  # noqa: SIM115 - open for the whole run
    with tempfile.TemporaryDirectory(prefix="async-load-") as scratch:
        res["runs"] = []  # each repeat runs every pool size once, in turn, so they share the machine's moods
        for repeat in range(args.repeats):
            for n in [args.threads, *args.compare_threads]:
                run = asyncio.run(load(args, Path(scratch) / f"load{repeat}-{n}", n))
                res["runs"].append({"repeat": repeat + 1, "default_pool": n == args.threads, **run})
                print(res["runs"][-1], flush=True)
        res["load"] = res["runs"][0]
        res["control"] = asyncio.run(control(args, Path(scratch) / "control"))
        print(res["control"], flush=True)
        res["idle"] = asyncio.run(idle(res["load"]["wall_s"]))
        print(res["idle"], flush=True)
    write_results(RESULTS_DIR, args.name, res, markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
