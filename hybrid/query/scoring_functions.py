"""Score functions after fusion: decay over a time or number column, boosts from a column or a filter.

What Elasticsearch's ``function_score`` does, and Weaviate's and Milvus' boosts: the final
score of each candidate (fused, BM25, or the reranker's) is multiplied by every
multiplicative factor and then added to every additive one, and the candidates are
sorted again. Each factor is a result column beside the branch scores (``_base_score``
is the score before them), so a user can see why a row moved.

Decay (``distance = max(0, |value - origin| - offset)``; the factor is `decay` at
``distance == scale``):

* ``exp``:    ``exp(ln(decay) / scale * distance)``
* ``gauss``:  ``exp(ln(decay) * distance**2 / scale**2)``
* ``linear``: ``max(0, 1 - (1 - decay) * distance / scale)``

A row whose value is null keeps factor 1 (multiplicative) or 0 (additive). Scores that
can be negative (a lone vector branch scores ``-distance``) are first mapped to
``1 / (1 + distance)``, so a factor below 1 always lowers a score.

>>> round(float(decay_factor(np.array([0.0, 30.0, 60.0]), 0.0, 30.0, 0.0, 0.5, "exp")[2]), 3)
0.25
>>> parse_scale("30d"), parse_scale("12h"), parse_scale(2.5)
(2592000.0, 43200.0, 2.5)
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybrid.errors import SchemaError

if TYPE_CHECKING:
    from hybrid.index.view import IndexedSnapshot

DecayKind = Literal["exp", "gauss", "linear"]
Modifier = Literal["none", "log1p", "sqrt"]
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_SCALE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)\s*$")


def parse_scale(value: str | float | int | dt.timedelta) -> float:
    """A distance: a number, a timedelta, or a string such as ``"30d"``, ``"12h"``, ``"90m"``, ``"2w"`` (seconds)."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        m = _SCALE.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(
        f"bad scale {value!r}: use a number, a timedelta, or a number with a unit: ms, s, m, h, d, w, y (e.g. '30d')"
    )


def decay_factor(
    values: np.ndarray, origin: float, scale: float, offset: float, decay: float, kind: DecayKind
) -> np.ndarray:
    """The decay factor of each value (NaN values give NaN)."""
    distance = np.maximum(0.0, np.abs(values - origin) - offset)
    if kind == "exp":
        return np.exp(math.log(decay) / scale * distance)
    if kind == "gauss":
        return np.exp(math.log(decay) * distance**2 / scale**2)
    return np.maximum(0.0, 1.0 - (1.0 - decay) * distance / scale)


@dataclass(frozen=True)
class Decay:
    """Multiply scores by how close `column` is to `origin` (default: now, for time columns)."""

    column: str
    scale: str | float | int | dt.timedelta
    kind: DecayKind = "exp"
    origin: Any = None
    offset: str | float | int | dt.timedelta = 0
    decay: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in ("exp", "gauss", "linear"):
            raise ValueError(f"decay kind must be 'exp', 'gauss' or 'linear', got {self.kind!r}")
        if parse_scale(self.scale) <= 0:
            raise ValueError(f"decay scale must be positive, got {self.scale!r}")
        if parse_scale(self.offset) < 0:
            raise ValueError(f"decay offset must be >= 0, got {self.offset!r}")
        if isinstance(self.decay, bool) or not isinstance(self.decay, (int, float)) or not 0 < self.decay < 1:
            raise ValueError(f"decay must be a number strictly between 0 and 1, got {self.decay!r}")

    @property
    def name(self) -> str:
        return f"_decay_{self.column}"

    def factors(self, view: IndexedSnapshot, ids: np.ndarray) -> np.ndarray:
        values, temporal = _numbers(view, self.column, ids)
        if self.origin is None:
            if not temporal:
                raise ValueError(f"decay over the number column {self.column!r} needs an origin")
            origin = dt.datetime.now(dt.timezone.utc).timestamp()
        else:
            origin = _origin(self.origin, temporal, self.column)
        f = decay_factor(
            values, origin, parse_scale(self.scale), parse_scale(self.offset), float(self.decay), self.kind
        )
        return np.where(np.isnan(f), 1.0, f)

    def describe(self) -> str:
        origin = "now" if self.origin is None else repr(self.origin)
        return f"{self.kind} decay on {self.column} (origin {origin}, scale {self.scale!r}, decay {self.decay})"


@dataclass(frozen=True)
class Boost:
    """A boost: `factor` for the rows matching `where`, or from the value of `column` (``factor * value``,
    through `modifier`); multiplied into the score or, with ``mode="add"``, added to it."""

    factor: float = 1.0
    where: str | None = None
    column: str | None = None
    modifier: Modifier = "none"
    mode: Literal["multiply", "add"] = "multiply"
    index: int = 0

    def __post_init__(self) -> None:
        if (self.where is None) == (self.column is None):
            raise ValueError("boost needs exactly one of where= (a SQL filter) or column= (a number column)")
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, float)) or not math.isfinite(self.factor):
            raise ValueError(f"boost factor must be a finite number, got {self.factor!r}")
        if self.mode not in ("multiply", "add"):
            raise ValueError(f"boost mode must be 'multiply' or 'add', got {self.mode!r}")
        if self.modifier not in ("none", "log1p", "sqrt"):
            raise ValueError(f"boost modifier must be 'none', 'log1p' or 'sqrt', got {self.modifier!r}")
        if self.where is not None and (not isinstance(self.where, str) or not self.where.strip()):
            raise ValueError("boost where= needs a non-empty SQL boolean expression")

    @property
    def name(self) -> str:
        return f"_boost_{self.column}" if self.column is not None else f"_boost_{self.index}"

    def factors(self, view: IndexedSnapshot, ids: np.ndarray) -> np.ndarray:
        neutral = 1.0 if self.mode == "multiply" else 0.0
        if self.where is not None:
            from hybrid.query.allowed import cached_allowed
            from hybrid.query.filter import compile_filter

            allowed = cached_allowed(view, compile_filter(self.where, view.schema))
            at = np.minimum(np.searchsorted(allowed.ids, ids), max(len(allowed.ids) - 1, 0))
            hit = (allowed.ids[at] == ids) if len(allowed.ids) else np.zeros(len(ids), bool)
            return np.where(hit, float(self.factor), neutral)
        assert self.column is not None
        values, _ = _numbers(view, self.column, ids)
        x = float(self.factor) * values
        if self.modifier == "log1p":
            x = np.log1p(np.maximum(x, 0.0))
        elif self.modifier == "sqrt":
            x = np.sqrt(np.maximum(x, 0.0))
        return np.where(np.isnan(x), neutral, x)

    def describe(self) -> str:
        what = (
            f"where {self.where!r}" if self.where is not None else f"{self.modifier}({self.factor:g} * {self.column})"
        )
        return f"{'x' if self.mode == 'multiply' else '+'} boost {what}" + (
            f" x{self.factor:g}" if self.where is not None else ""
        )


ScoreFunction = Decay | Boost


@dataclass(frozen=True)
class Rescored:
    """Candidates sorted by their new scores, with the base score and each factor per candidate."""

    ids: np.ndarray
    scores: np.ndarray
    columns: dict[str, np.ndarray]


def rescore(
    functions: Sequence[ScoreFunction], view: IndexedSnapshot, ids: np.ndarray, scores: np.ndarray, distances: bool
) -> Rescored:
    """Apply `functions` to the candidates (`distances`: the scores are minus distances) and sort again."""
    base = 1.0 / (1.0 - scores) if distances else scores.astype(np.float64)  # -d -> 1 / (1 + d)
    columns: dict[str, np.ndarray] = {"_base_score": base}
    product = np.ones(len(ids))
    added = np.zeros(len(ids))
    for f in functions:
        factor = f.factors(view, ids).astype(np.float64)
        columns[f.name] = factor
        if isinstance(f, Boost) and f.mode == "add":
            added += factor
        else:
            product *= factor
    final = base * product + added
    order = np.lexsort((ids, -final))
    return Rescored(ids[order], final[order], {k: v[order] for k, v in columns.items()})


def _numbers(view: IndexedSnapshot, column: str, ids: np.ndarray) -> tuple[np.ndarray, bool]:
    """`column`'s values of rows `ids` as float64 (timestamps and dates in seconds since the epoch, UTC;
    NaN for null), and whether the column holds times."""
    if column not in view.schema.names:
        raise SchemaError(f"no column {column!r} in the table (columns: {', '.join(view.schema.names)})")
    kind = view.schema.field(column).type
    arr = view.snapshot.take(ids, [column]).column(column).combine_chunks()
    if pa.types.is_timestamp(kind):
        secs = pc.cast(arr.cast(pa.timestamp("us", tz=kind.tz)), pa.int64())
        return secs.to_numpy(zero_copy_only=False).astype(np.float64) / 1e6, True
    if pa.types.is_date(kind):
        days = pc.cast(arr.cast(pa.date32()), pa.int32())
        return days.to_numpy(zero_copy_only=False).astype(np.float64) * 86400.0, True
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64), False
    raise SchemaError(f"column {column!r} holds {kind}, not numbers, dates or timestamps")


def _origin(value: Any, temporal: bool, column: str) -> float:
    if temporal:
        if isinstance(value, dt.datetime):
            when = value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
            return when.timestamp()
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc).timestamp()
        if isinstance(value, str):
            try:
                return _origin(dt.datetime.fromisoformat(value), True, column)
            except ValueError:
                pass
        raise ValueError(f"decay origin for the time column {column!r} must be a datetime, a date or ISO text")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"decay origin for the number column {column!r} must be a number, got {value!r}")
