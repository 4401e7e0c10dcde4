"""A time budget for a whole query or request: every stage checks it, DuckDB is interrupted by it.

A filter's DuckDB evaluation is bounded by :class:`hybrid.Limits` (``seconds``), but a query is
more than its filter: embedding the query text, the BM25 and vector branches, fusion, reading
the rows, reranking, highlights. :func:`time_budget` bounds all of it, from a start that may lie
before the call (a server passes the moment the request arrived, so time spent waiting for a
thread counts too)::

    with hybrid.time_budget(2.0):
        rows = table.search("heart attack").limit(10).to_list()

The query checks the budget at each stage boundary (before and after each branch, fusion,
reading rows, reranking, highlights, expansion), a filter's evaluation is interrupted when
the budget runs out (whichever of the two bounds comes first), and a search waiting for a cache
entry another search is building (a filter's rows, a calibration) stops waiting. Past its budget a query raises
:class:`hybrid.errors.TimeBudgetError` (a :class:`~hybrid.errors.LimitError`) naming the stage
it reached, and does no more work: no thread keeps computing for a caller that has given up.
A stage that has begun (one tantivy or HNSW search, one reranker call) finishes first, so a
budget is kept to within the longest single stage; the bounds on query terms and ``limit``
keep those short.

The budget lives in a context variable: it follows the query into the threads that run its
branches (:func:`carry`) and into ``await``-ed code, and nested budgets keep the earlier end.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from hybrid.errors import TimeBudgetError

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """`seconds` of wall time from `started` (a :func:`time.monotonic` reading)."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"a time budget must be positive, got {self.seconds!r} s")

    @property
    def ends(self) -> float:
        return self.started + self.seconds

    def remaining(self) -> float:
        """Seconds left (negative once spent)."""
        return self.ends - time.monotonic()

    def check(self, stage: str) -> None:
        """Raise :class:`TimeBudgetError` if the budget is spent (`stage` names where the work stopped)."""
        if time.monotonic() >= self.ends:
            raise self.exceeded(stage)

    def exceeded(self, stage: str) -> TimeBudgetError:
        took = time.monotonic() - self.started
        return TimeBudgetError(
            f"the request ran longer than its time budget of {self.seconds:g} s ({took:.1f} s) and was "
            f"stopped at {stage}; narrow it (a smaller limit, fewer query terms, a simpler where) or retry later",
            stage=stage,
            seconds=self.seconds,
        )


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("hybrid_time_budget", default=None)


@contextmanager
def time_budget(seconds: float, started: float | None = None) -> Iterator[Budget]:
    """Bound everything the block runs (queries, filters) to `seconds` from `started` (default now).

    An enclosing budget that ends earlier still applies.

    Example:
        >>> import time
        >>> with time_budget(0.05):
        ...     time.sleep(0.06)
        ...     try:
        ...         check("the example")
        ...     except TimeBudgetError as exc:
        ...         print(exc.stage, exc.seconds)
        the example 0.05
    """
    budget = Budget(seconds, time.monotonic() if started is None else started)
    outer = _current.get()
    token = _current.set(budget if outer is None or budget.ends < outer.ends else outer)
    try:
        yield budget
    finally:
        _current.reset(token)


def current() -> Budget | None:
    """The budget in force, or None."""
    return _current.get()


def check(stage: str) -> None:
    """Raise :class:`TimeBudgetError` if the budget in force is spent; nothing without one."""
    budget = _current.get()
    if budget is not None:
        budget.check(stage)


def remaining() -> float | None:
    """Seconds left of the budget in force (None without one)."""
    budget = _current.get()
    return None if budget is None else budget.remaining()


def exceeded(stage: str) -> TimeBudgetError:
    """The error of the budget in force, spent at `stage` (a budget of 0 s when none is in force)."""
    budget = _current.get()
    if budget is None:
        return TimeBudgetError(f"the request ran out of time at {stage}", stage=stage)
    return budget.exceeded(stage)


def carry(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn` bound to a copy of the current context, so the budget follows it into another thread."""
    context = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return context.run(fn, *args, **kwargs)

    return run
