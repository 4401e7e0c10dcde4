"""Bounds on the work one SQL filter, expression or query may do.

A `where` is user text run by DuckDB, and a single expression can ask for
unbounded work: ``length(repeat('a', 1000000000)) > 0`` builds a gigabyte per row
inside one DuckDB vector, where neither DuckDB's memory limit (it does not track
string heaps) nor an interrupt (checked between vectors) reaches it. So three
bounds, each raising :class:`hybrid.errors.LimitError`:

- **growth**: functions whose output grows with a numeric argument (``repeat``,
  ``lpad``, ``range``, ``list_resize``...) must get literal sizes, and the product of
  the sizes along any nesting stays within `max_growth` (``repeat`` counts the length
  of a literal it repeats, and may repeat a column's values at most
  `REPEAT_VALUE_MAX` times): refused before anything runs;
- **memory**: DuckDB's ``memory_limit`` for what it does track (sorts, hash tables,
  materialised results; ``db.sql`` joins);
- **time**: the evaluation is interrupted after `seconds` (DuckDB checks between
  vectors of 2,048 rows, so this bounds long scans, not one monstrous row: the
  growth bound is what prevents those).

Limits are per process (:func:`set_limits`; the server sets them from its
configuration); ``Database.sql`` also takes them per call.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb

from hybrid.budget import current as current_budget
from hybrid.errors import FilterError, LimitError

T = TypeVar("T")

GROWING: dict[str, tuple[int, ...]] = {
    "repeat": (1,),
    "lpad": (1,),
    "rpad": (1,),
    "list_resize": (1,),
    "array_resize": (1,),
    "bar": (3,),
    "range": (0, 1, 2),
    "generate_series": (0, 1, 2),
}
"""Functions whose output size grows with an argument -> the positions of their size arguments."""
_FORMATTING = frozenset({"printf", "format"})
REPEAT_VALUE_MAX = 16
"""repeat() of a value that is not a literal (a column's, of unknown length) may repeat it this many times."""


@dataclass(frozen=True)
class Limits:
    """Bounds on one filter, expression or SQL query (see the module docs).

    Attributes:
        memory: DuckDB ``memory_limit`` of the evaluation (e.g. ``"512MB"``, ``"2GB"``).
        seconds: wall time before the evaluation is interrupted.
        max_growth: largest size a growing function may produce, multiplied along nesting.
        query_seconds: the whole-query time budget of a search (None: none).
    """

    memory: str = "512MB"
    seconds: float = 30.0
    max_growth: int = 65_536
    query_seconds: float | None = None
    """A whole-query time budget (:func:`hybrid.time_budget`) for every search that runs without one;
    None: a search is bounded only by its filter's `seconds` (the server sets ``request_seconds``)."""

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.max_growth < 1 or (self.query_seconds is not None and self.query_seconds <= 0):
            raise ValueError(f"Limits need seconds > 0, max_growth >= 1 and query_seconds > 0 or None, got {self}")


_limits = Limits()


def set_limits(limits: Limits) -> None:
    """Bound every filter and expression this process evaluates from now on."""
    global _limits
    _limits = limits


def current_limits() -> Limits:
    return _limits


class _Watchdog:
    """One daemon thread that interrupts connections whose deadline has passed.

    A thread per evaluation (``threading.Timer``) cost about 0.35 ms of each filter's
    evaluation; registering a deadline here costs a heap push under a lock.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, duckdb.DuckDBPyConnection]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, con: duckdb.DuckDBPyConnection, seconds: float) -> int:
        ticket = next(self._ids)
        with self._wake:
            heapq.heappush(self._due, (time.monotonic() + seconds, ticket, con))
            self._live.add(ticket)
            if self._thread is None or not self._thread.is_alive():  # first use, or a forked child
                self._thread = threading.Thread(target=self._run, name="hybrid-limits", daemon=True)
                self._thread.start()
            elif self._due[0][1] == ticket:
                self._wake.notify()
        return ticket

    def release(self, ticket: int) -> None:
        with self._wake:
            self._live.discard(ticket)

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._due and self._due[0][1] not in self._live:
                    heapq.heappop(self._due)  # finished in time
                if not self._due:
                    self._wake.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                _, ticket, con = heapq.heappop(self._due)
                self._live.discard(ticket)
                con.interrupt()


_watchdog = _Watchdog()


@contextmanager
def deadline(con: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[None]:
    """Interrupt whatever `con` runs once `seconds` have passed."""
    ticket = _watchdog.watch(con, seconds)
    try:
        yield
    finally:
        _watchdog.release(ticket)


def bounded(con: duckdb.DuckDBPyConnection, run: Callable[[], T], limits: Limits, what: str) -> T:
    """`run()` on `con` under `limits`' time bound, or the time budget in force (:func:`hybrid.time_budget`)
    when that ends first; a time or memory overrun is a LimitError naming `what` (a
    :class:`~hybrid.errors.TimeBudgetError` when the budget ran out)."""
    budget = current_budget()
    if budget is not None:
        budget.check(what)
    seconds = limits.seconds
    by_budget = budget is not None and budget.remaining() < seconds
    if budget is not None and by_budget:
        seconds = max(budget.remaining(), 0.001)
    try:
        with deadline(con, seconds):
            return run()
    except duckdb.InterruptException:
        if budget is not None and by_budget:
            raise budget.exceeded(what) from None
        raise LimitError(f"{what} ran longer than the limit of {limits.seconds:g} s and was stopped") from None
    except duckdb.OutOfMemoryException as exc:
        raise LimitError(f"{what} needed more than the memory limit of {limits.memory}: {exc}") from None


def check_growth(tree: Any, what: str, text: str, limits: Limits) -> None:
    """Refuse `text` if a growing function in its parsed `tree` takes a non-literal or too large size."""
    if _growth(tree, what, text, limits) > limits.max_growth:
        raise LimitError(f"{what} {text!r} would build values larger than the limit of {limits.max_growth:,}")


def grows(tree: Any) -> bool:
    """Whether a parsed expression calls a function whose output size depends on its arguments' values
    (its filters then cannot share a compiled template across literals: each size must be checked)."""
    if isinstance(tree, list):
        return any(grows(n) for n in tree)
    if not isinstance(tree, dict):
        return False
    name = str(tree.get("function_name", "")).lower() if tree.get("class") == "FUNCTION" else ""
    return name in GROWING or name in _FORMATTING or any(grows(v) for v in tree.values())


def _growth(node: Any, what: str, text: str, limits: Limits) -> int:
    if isinstance(node, list):
        return max((_growth(n, what, text, limits) for n in node), default=1)
    if not isinstance(node, dict):
        return 1
    inner = max((_growth(v, what, text, limits) for v in node.values() if isinstance(v, (dict, list))), default=1)
    if node.get("class") != "FUNCTION":
        return inner
    name = str(node.get("function_name", "")).lower()
    if name in _FORMATTING:
        return inner * _format_width(node, what, text)
    if name not in GROWING:
        return inner
    args = _arguments(node)
    sizes = [_literal_size(args[i], name, what, text) for i in GROWING[name] if i < len(args)]
    size = _series_length(sizes) if name in ("range", "generate_series") else max(sizes, default=1)
    if name == "repeat" and args:  # the output is the input times the count, and a column's values can be long
        constant = _constant(args[0])
        if constant is None and size > REPEAT_VALUE_MAX:
            raise LimitError(
                f"{what} {text!r}: repeat() of a column's values may repeat them at most {REPEAT_VALUE_MAX} times"
            )
        size *= len(constant[1]) if constant is not None else 1
    return max(inner, 1) * max(size, 1)


def _literal_size(node: dict[str, Any], name: str, what: str, text: str) -> int:
    value = _literal(node)
    if value is None:
        raise LimitError(f"{what} {text!r}: the size argument of {name}() must be a literal integer")
    return value


def _arguments(node: dict[str, Any]) -> list[dict[str, Any]]:
    """A function node's argument expressions (DuckDB 2 wraps each in {"name", "expression"})."""
    return [a.get("expression", a) for a in node.get("arguments", node.get("children", []))]


def _constant(node: dict[str, Any]) -> tuple[str, str] | None:
    lit = node.get("literal") if node.get("class") == "CONSTANT" else None
    return (str(lit.get("kind")), str(lit.get("text", ""))) if isinstance(lit, dict) else None


def _literal(node: dict[str, Any]) -> int | None:
    """The integer value of a constant node (also under a cast or a minus sign), else None."""
    constant = _constant(node)
    if constant is not None:
        try:
            return int(constant[1]) if constant[0] in ("INTEGER", "NUMERIC") else None
        except ValueError:
            return None
    if node.get("class") == "CAST":
        return _literal(node.get("child", {}))
    args = _arguments(node)
    if node.get("class") == "FUNCTION" and node.get("function_name") == "-" and len(args) == 1:
        inner = _literal(args[0])
        return -inner if inner is not None else None
    return None


def _series_length(sizes: list[int]) -> int:
    """Length of range(a), range(a, b) or range(a, b, step)."""
    if len(sizes) == 1:
        return abs(sizes[0])
    start, stop = sizes[0], sizes[1]
    step = sizes[2] if len(sizes) > 2 and sizes[2] else 1
    return max(0, (stop - start) // step + 1)


def _format_width(node: dict[str, Any], what: str, text: str) -> int:
    """The largest field width in a printf/format pattern (which must be a literal)."""
    args = _arguments(node)
    constant = _constant(args[0]) if args else None
    pattern = constant[1] if constant is not None and constant[0] == "STRING" else None
    if pattern is None:
        raise FilterError(f"{what} {text!r}: the pattern of {node.get('function_name')}() must be a literal string")
    digits = [int(d) for d in _numbers(pattern)]
    return max(digits, default=1)


def _numbers(pattern: str) -> list[str]:
    out, current = [], ""
    for ch in pattern:
        if ch.isdigit():
            current += ch
        elif current:
            out.append(current)
            current = ""
    return [*out, current] if current else out
