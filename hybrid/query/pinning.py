"""Pinned rows: rows a caller puts first, in the order given, whatever they score.

What Elasticsearch's ``pinned`` query does (promoted results): a pinned row that is live
and passes the query's filter comes before every organic hit; it keeps its own score if
it was a candidate, else takes the best organic score, and the ``_pinned`` column marks it.
It is not repeated among the organic hits.

>>> ids, scores = np.array([5, 6, 7], np.uint64), np.array([0.9, 0.5, 0.1])
>>> order = interleave([7, 9], ids, scores, {})
>>> order[0].tolist(), order[2]["_pinned"].tolist()
([7, 9, 5, 6], [True, True, False, False])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hybrid.index.view import IndexedSnapshot
    from hybrid.query.allowed import Allowed


def check_rowids(rowids: Sequence[int]) -> tuple[int, ...]:
    """Row ids as a tuple of non-negative ints, or a ValueError naming the bad one."""
    if isinstance(rowids, (str, bytes)) or not isinstance(rowids, Sequence | np.ndarray):
        raise ValueError(f"pin needs a sequence of row ids, got {type(rowids).__name__}")
    out = []
    for r in rowids:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or int(r) < 0:
            raise ValueError(f"pin: a row id must be a non-negative integer, got {r!r}")
        out.append(int(r))
    return tuple(dict.fromkeys(out))


def interleave(
    pinned: Sequence[int], ids: np.ndarray, scores: np.ndarray, extra: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """`pinned` first, then the other candidates; `extra` columns follow (NaN for pins that were no
    candidates), plus ``_pinned``."""
    pins = np.asarray(pinned, np.uint64)
    place = {int(x): i for i, x in enumerate(ids)}
    top = float(scores[0]) if len(scores) else 0.0
    pin_scores = np.asarray([scores[place[int(p)]] if int(p) in place else top for p in pins], np.float64)
    rest = ~np.isin(ids, pins)
    out_ids = np.concatenate([pins, ids[rest]])
    out_scores = np.concatenate([pin_scores, scores[rest].astype(np.float64)])
    columns = {
        name: np.concatenate(
            [np.asarray([values[place[int(p)]] if int(p) in place else np.nan for p in pins]), values[rest]]
        )
        for name, values in extra.items()
    }
    columns["_pinned"] = np.concatenate([np.ones(len(pins), bool), np.zeros(int(rest.sum()), bool)])
    return out_ids, out_scores, columns


def pin(
    pinned: Sequence[int],
    view: IndexedSnapshot,
    allowed: Allowed | None,
    ids: np.ndarray,
    scores: np.ndarray,
    extra: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The live, allowed ones of `pinned` first (see :func:`interleave`)."""
    pins = np.asarray(pinned, np.uint64)
    live = view.live_ids()
    keep = np.isin(pins, live)
    if allowed is not None:
        keep &= np.isin(pins, allowed.ids)
    return interleave([int(p) for p in pins[keep]], ids, scores, extra)
