"""cProfile of hybrid's queries in the search benchmark (``--profile``): when hybrid's hybrid-query
p50 is above the floor's (or always), one pass over the queries of a few query types."""

from __future__ import annotations

import io
from concurrent.futures import Future
from typing import Any

from bench.frame import now
from bench.search_data import filter_for, qt_name
from bench.search_hybrid import HybridSystem
from bench.search_system import run_query

PROFILED = (("hybrid", None), ("hybrid", 10), ("vector", 1))
"""Query types profiled (when profiling): the plain hybrid query, a filtered one, and a filter-dominated one."""


def profile_hybrid(st: HybridSystem, kind: str, pct: int | None, mode: str, qtext, qvec, top=40) -> dict[str, Any]:
    """cProfile of one pass of hybrid's queries of one type.

    hybrid runs the two branches in a thread pool, which cProfile (one thread)
    would not see; for this pass only, the pool is replaced by one that runs
    each submitted call in the calling thread, so the profile covers the whole
    query.  Latency under the profiler is not comparable to the timed runs.
    """
    import cProfile
    import pstats

    from hybrid.query import executor as ex

    class InlinePool:
        def submit(self, fn, *a, **kw):
            f: Future = Future()
            try:
                f.set_result(fn(*a, **kw))
            except BaseException as e:  # noqa: BLE001 - handed to the caller via the future
                f.set_exception(e)
            return f

    original = ex._executor
    ex._executor = lambda: InlinePool()  # type: ignore[assignment]
    try:
        for i in range(min(5, len(qtext))):  # warm
            run_query(st, kind, filter_for(pct, i, mode), qtext[i], qvec[i])
        pr = cProfile.Profile()
        t0 = now()
        pr.enable()
        for i, (s, v) in enumerate(zip(qtext, qvec, strict=True)):
            run_query(st, kind, filter_for(pct, i, mode), s, v)
        pr.disable()
        wall = now() - t0
    finally:
        ex._executor = original  # type: ignore[assignment]
    out: dict[str, Any] = {
        "query_type": qt_name(kind, pct),
        "queries": len(qtext),
        "wall_seconds": wall,
        "per_query_ms": wall / len(qtext) * 1000,
    }
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats(key).print_stats(top)
        text = buf.getvalue()
        start = text.find("   ncalls")  # drop pstats' preamble, keep the table
        out[key] = text[start:].rstrip() if start >= 0 else text
    return out
