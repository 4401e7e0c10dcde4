"""Admission of searches by estimated cost, and the low-priority lane expensive ones run in.

Three bounds keep one client's expensive searches from starving everyone else's:

- :func:`search_cost` estimates a search's work from its request alone (rows asked for, query
  terms, the functions its ``where`` calls, reranking...): a plain search costs 1, the most
  expensive one the server accepts some hundreds;
- :class:`CostGates` bounds the estimated cost one API key has in progress in a worker
  (``max_cost_per_key``): a search over it gets 429 with Retry-After, so a key sending
  expensive searches gets about one at a time while a key sending cheap ones is not slowed;
- :class:`Lane`: searches estimated over ``low_priority_cost`` run on a few threads of their
  own with a raised nice value (Linux schedules threads apart), off the request threads: they
  take the CPU the cheap searches leave, and never hold a request thread while they wait.

Whatever they cost, every search has a whole time budget (``request_seconds``, counted from the
request's arrival; :func:`hybrid.time_budget`): 503 with Retry-After past it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from hybrid.server.errors import ApiError

if TYPE_CHECKING:
    from hybrid.server.models import SearchRequest

T = TypeVar("T")
logger = logging.getLogger(__name__)

HEAVY_FUNCTIONS = frozenset(
    {
        "levenshtein",
        "damerau_levenshtein",
        "editdist3",
        "jaro_similarity",
        "jaro_winkler_similarity",
        "jaccard",
        "hamming",
        "mismatches",
        "md5",
        "md5_number",
        "sha1",
        "sha256",
        "hash",
        "repeat",
        "lpad",
        "rpad",
        "range",
        "generate_series",
        "list_resize",
        "array_resize",
        "printf",
        "format",
        "string_split_regex",
        "regexp_split_to_array",
    }
)
"""Functions whose cost per row grows with their arguments' length (quadratic distances, hashing,
growing values); every ``regexp_*`` counts as heavy too."""
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_NOT_CALLS = frozenset({"in", "and", "or", "not", "exists", "between", "is", "like", "ilike", "then", "else", "when"})
_WORD = re.compile(r"\w+")


def query_terms(text: str | None) -> int:
    """Words in a query text (what BM25 searches for).

    >>> query_terms("heart attack in the elderly"), query_terms(None)
    (5, 0)
    """
    return len(_WORD.findall(text)) if text else 0


def where_weight(where: str | None) -> float:
    """The cost factor of a ``where``: 1 plus 1/4 per function call, plus 1 more per heavy one.

    >>> where_weight(None), where_weight("year >= 2000 AND category IN ('a', 'b')")
    (1.0, 1.0)
    >>> where_weight("levenshtein(lower(text), 'x') < 3")
    2.5
    """
    if not where:
        return 1.0
    weight = 1.0
    for match in _CALL.finditer(where):
        name = match.group(1).lower()
        if name in _NOT_CALLS:
            continue
        weight += 0.25 + (1.0 if name in HEAVY_FUNCTIONS or name.startswith("regexp") else 0.0)
    return weight


def search_cost(req: SearchRequest) -> float:
    """A search's estimated work, from its request: a plain search (at most 100 rows, 32 query terms,
    a filter of comparisons) costs 1; each factor below multiplies it.

    - rows: ``(limit + offset) / 100`` (at least 1);
    - query text: ``terms / 32`` (at least 1);
    - filter: :func:`where_weight`;
    - rerank x4, group_by x2, highlight x1.5, expand x1.5, explain x2 (it runs the branches again).
    """
    cost = max(1.0, (req.limit + req.offset) / 100)
    cost *= max(1.0, query_terms(req.query) / 32)
    cost *= where_weight(req.where)
    for present, factor in (
        (req.rerank is not None, 4.0),
        (req.group_by is not None, 2.0),
        (req.highlight is not None, 1.5),
        (req.expand is not None, 1.5),
        (req.explain, 2.0),
    ):
        if present:
            cost *= factor
    return round(cost, 3)


class CostGates:
    """The estimated cost each API key has in progress, bounded by `budget` (used on the event loop only)."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self._open: dict[str, float] = {}

    @contextmanager
    def admit(self, key: str, cost: float) -> Iterator[None]:
        """Count `cost` for `key` while the block runs, or raise 429 when it would pass the budget
        (a key with nothing in progress is always admitted: the request's time budget bounds it)."""
        held = self._open.get(key, 0.0)
        if held > 0 and held + cost > self.budget:
            raise ApiError(
                429,
                "TooManyRequests",
                f"key {key!r} has searches of estimated cost {held:g} in progress and this one costs {cost:g}; "
                f"this server allows {self.budget:g} per key at once (see max_cost_per_key); retry shortly",
                {"Retry-After": "1"},
            )
        self._open[key] = held + cost
        try:
            yield
        finally:
            left = self._open.get(key, 0.0) - cost
            if left > 1e-9:
                self._open[key] = left
            else:
                self._open.pop(key, None)

    def in_progress(self, key: str) -> float:
        return self._open.get(key, 0.0)


class Lane:
    """A few threads at a raised nice value that run expensive searches, off the request threads."""

    def __init__(self, threads: int, nice: int) -> None:
        self.nice = nice
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="hybrid-low", initializer=self._lower)

    def _lower(self) -> None:
        try:  # Linux gives each thread its own nice value; elsewhere this lane runs at normal priority
            tid = threading.get_native_id()  # relative: a server started under `nice` keeps the gap
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.nice))
        except (AttributeError, OSError) as exc:
            logger.warning("cannot lower the priority of the expensive-search threads: %s", exc)

    async def run(self, fn: Callable[[], T], wait: float) -> T:
        """`fn()` on a lane thread (in the caller's context), waiting at most `wait` seconds for it."""
        future = self._pool.submit(contextvars.copy_context().run, fn)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(wait, 0.0))
        except asyncio.TimeoutError:
            future.cancel()  # not started yet: it never will; started: it stops at its next budget check
            raise

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_arrived: contextvars.ContextVar[float | None] = contextvars.ContextVar("hybrid_arrived", default=None)


def mark_arrival() -> None:
    """Remember when the current request arrived (its body read), for its time budget."""
    _arrived.set(time.monotonic())


def arrival() -> float:
    """When the current request arrived (now, if nothing marked it)."""
    found = _arrived.get()
    return time.monotonic() if found is None else found
