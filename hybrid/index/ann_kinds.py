"""Vector index kinds: which ones exist, what each needs installed, and what ``kind="auto"`` picks.

* ``hnsw``: hnswlib over float32 vectors held in RAM (the default up to a few hundred
  thousand rows). Scores come straight from the graph.
* ``hnsw_int8``: a usearch HNSW over int8 codes (a quarter of the float bytes), served
  memory-mapped from its file; candidates are rescored exactly (:mod:`hybrid.index.rescore`).
* ``ivf_pq``: a faiss inverted file with product-quantized codes (a sixteenth of the float
  bytes at the default settings), its lists memory-mapped from disk; rescored exactly.
* ``ivf_rabitq``: the same with RaBitQ codes (one bit per dimension plus two factors).

The compressed kinds need the ``ann`` extra (``pip install 'hybridsearch[ann]'``: usearch and
faiss-cpu); they are imported only when used.

``kind="auto"`` (:func:`choose_kind`) measures nothing at build time; it applies this rule,
whose thresholds come from ``eval/results/ann_kinds.md``:

1. up to ``AUTO_FLOAT_ROWS`` rows, and while the float graph's estimated size is at most
   ``AUTO_MEMORY_SHARE`` of the available memory: ``hnsw`` (fastest and exact enough);
2. otherwise ``ivf_rabitq``, whose lists stay on disk, for every metric. At 1,000,000 rows it
   built in about a tenth of the int8 graph's CPU (107-118 s against 1,100 s) and answered with
   higher recall (0.972-0.977 against 0.935) in less CPU per query (about 1.0-1.3 ms against 3.5 ms;
   ``eval/results/ann_kinds_1m_a19h.md``, ``ann_kinds_1m_heldout_pread.md``; ``ivf_pq`` took 212 s
   in the last 1M run that built it, with the build code of then); at 10,000,000 rows it built in
   19 minutes with a 5.3 GiB peak
   (``eval/results/ann_kinds_10m_b19k.md``), where a graph would take hours. A graph's build time
   grows faster than the rows, so free memory is no reason to pick one past the float range.

When the extra is not installed the rule stops at 1 and picks ``hnsw``, saying so.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from hybrid.errors import MissingDependencyError
from hybrid.index.row_codes import RowCodes

FLOAT_KIND = "hnsw"
COMPRESSED_KINDS = ("hnsw_int8", "ivf_pq", "ivf_rabitq")
KINDS = (FLOAT_KIND, *COMPRESSED_KINDS)
"""Every kind `create_vector_index` builds, besides ``"auto"``."""
VectorKind = Literal["auto", "hnsw", "hnsw_int8", "ivf_pq", "ivf_rabitq"]
_NEEDS = {"hnsw_int8": "usearch", "ivf_pq": "faiss", "ivf_rabitq": "faiss"}
EXTRA = "ann"

AUTO_FLOAT_ROWS = 500_000
"""`auto` builds the float HNSW up to this many rows."""
AUTO_MEMORY_SHARE = 0.25
"""... and only while the index would take at most this share of the available memory."""
DEFAULT_RESCORE = {"hnsw_int8": 4, "ivf_pq": 32, "ivf_rabitq": 32}
"""Candidates proposed per wanted hit by each compressed kind, rescored exactly. The IVF codes rank real
question -> passage similarities (MiniLM, ~0.5) coarsely: on SciFact rescore 8 lost 0.006 (PQ) and 0.027
(RaBitQ) nDCG@10 at nprobe 20, rescore 32 nothing (eval/ann_kinds_quality.py); gathering 320 vectors
for k = 10 costs little next to the index search."""


class CandidateIndex(Protocol):
    """A compressed index: proposes candidate row ids; exact scores come from the table."""

    metric: str
    level: int  # ef (HNSW kinds) or nprobe (IVF kinds) used when a search names none
    label: str  # how explanations name it
    codes: RowCodes | None  # finer per-row codes held in RAM that rank the candidates before rescoring

    @property
    def count(self) -> int: ...

    def candidates(self, q: np.ndarray, n: int, level: int) -> np.ndarray:
        """Up to `n` row ids near `q` (approximate order)."""
        ...

    def memory(self) -> dict[str, int]:
        """Bytes held in RAM and bytes mapped from disk."""
        ...


class FilteringIndex(CandidateIndex, Protocol):
    """A compressed index that skips the rows a filter does not allow inside its own scan (the IVF
    kinds: ``filters_inside`` is True)."""

    def candidates(
        self, q: np.ndarray, n: int, level: int, widen: bool = True, among: np.ndarray | None = None
    ) -> np.ndarray:
        """Up to `n` row ids near `q`; with `among`, only rows whose bit is set in that bitmap."""
        ...


def check_kind(kind: str, metric: str = "cosine") -> None:
    """Refuse an unknown kind, and ``hnsw_int8`` for a metric other than cosine: usearch's int8 kernels
    rank by angle whatever metric they are given (measured: ``l2sq`` and ``ip`` over ``i8`` return the
    cosine order), so its candidates would be the wrong ones."""
    if kind != "auto" and kind not in KINDS:
        raise ValueError(f"unknown vector index kind {kind!r}; valid kinds: {', '.join(('auto', *KINDS))}")
    if kind == "hnsw_int8" and metric != "cosine":
        raise ValueError(
            f"vector index kind 'hnsw_int8' ranks by cosine only (usearch's int8 kernels are angular); for "
            f"metric {metric!r} use kind 'ivf_pq', 'ivf_rabitq' or 'hnsw'"
        )


def installed(kind: str) -> bool:
    """Whether the package `kind` needs can be imported."""
    module = _NEEDS.get(kind)
    return module is None or importlib.util.find_spec(module) is not None


def require(kind: str) -> None:
    """Raise :class:`MissingDependencyError` naming the extra when `kind`'s package is missing."""
    if not installed(kind):
        raise MissingDependencyError(
            f"vector index kind {kind!r} needs the {_NEEDS[kind]!r} package: pip install 'hybridsearch[{EXTRA}]'"
        )


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux, else physical pages free)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def float_hnsw_bytes(rows: int, dim: int, m: int) -> int:
    """hnswlib's size: per row the vector, 2m level-0 links, a label and a count (upper levels ~1/m more)."""
    return int(rows * (4 * dim + (2 * m + 1) * 4 + 8) * (1 + 1 / max(m, 2)))


@dataclass(frozen=True)
class AutoChoice:
    """What ``kind="auto"`` picked and why (kept in the index's params)."""

    kind: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"picked": self.kind, "reason": self.reason}


def choose_kind(rows: int, dim: int, m: int, memory: int, extra_installed: bool = True) -> AutoChoice:
    """The kind ``"auto"`` builds for `rows` vectors of `dim` with `memory` bytes available (the module's rule).

    >>> choose_kind(10_000, 384, 16, 8 * 2**30).kind
    'hnsw'
    >>> choose_kind(2_000_000, 384, 16, 64 * 2**30).kind
    'ivf_rabitq'
    >>> choose_kind(400_000, 384, 16, 1 * 2**30).kind
    'ivf_rabitq'
    """
    budget = AUTO_MEMORY_SHARE * memory
    gib = memory / 2**30
    float_size = float_hnsw_bytes(rows, dim, m)
    if rows <= AUTO_FLOAT_ROWS and float_size <= budget:
        return AutoChoice(FLOAT_KIND, f"{rows} rows <= {AUTO_FLOAT_ROWS} and the float graph fits ({gib:.1f} GiB free)")
    if not extra_installed:
        return AutoChoice(FLOAT_KIND, f"{rows} rows would use a compressed kind, but the {EXTRA!r} extra is missing")
    why = f"more than {AUTO_FLOAT_ROWS}" if rows > AUTO_FLOAT_ROWS else "a float graph over a quarter of memory"
    return AutoChoice("ivf_rabitq", f"{rows} rows ({why}; {gib:.1f} GiB free): IVF lists on disk, rescored exactly")
