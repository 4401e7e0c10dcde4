"""The second stage of rescoring an IVF index's candidates: one byte per dimension per row, held in RAM.

An IVF index's own codes (product quantization, one byte per eight dimensions; RaBitQ, one bit per
dimension) rank its candidates coarsely, so rescoring used to read every candidate's float vector
from the table (``rescore x k`` of them, 1.5-5 us each). These codes rank the same candidates
finely enough that only the best few need their float vectors read (``reads x k``, tuned by
:func:`hybrid.index.ann_build.tune`), and the rows returned still carry exact distances.

Each dimension is scalar-quantized to 256 levels between its 0.1th and 99.9th percentile over the
training sample (cosine rows are normalized first; values outside are clipped). A query is compared
with a candidate's code by one inner product, ``(q * step) . code`` (the terms that are the same for
every row are left out); for l2 the code's reconstructed squared norm is added. The codes cost
``dim`` bytes per row (384 MB at 1,000,000 x 384) plus 16 bytes per row for the sorted row ids and
their positions: anonymous memory, never paged from disk while searching.

Files (in the index folder): ``codes.i8`` (rows x dim int8, in the order rows were added),
``codes_ids.npy`` (their row ids), ``codes_map.npy`` (per dimension: the low end, the step).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from hybrid.errors import CorruptionError

CODES_FILE, IDS_FILE, MAP_FILE = "codes.i8", "codes_ids.npy", "codes_map.npy"
CLIP_QUANTILE = 0.001
"""Each dimension's range is its [0.1%, 99.9%] quantile range over the training sample."""


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


class RowCodes:
    """Per-row int8 codes of an index's rows (row ids sorted for lookup), ranking candidates by approximate
    distance."""

    def __init__(self, ids: np.ndarray, codes: np.ndarray, low: np.ndarray, step: np.ndarray, metric: str) -> None:
        self.ids, self.codes, self.low, self.step, self.metric = ids, codes, low, step, metric
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.ids.nbytes + self._order.nbytes + self._sorted.nbytes)

    @staticmethod
    def fit(sample: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Per dimension (the low end, the step) for `sample`'s rows."""
        x = _unit(sample) if metric == "cosine" else np.asarray(sample, np.float32)
        if not len(x):
            return np.zeros(sample.shape[1], np.float32), np.ones(sample.shape[1], np.float32)
        low, high = np.quantile(x, [CLIP_QUANTILE, 1 - CLIP_QUANTILE], axis=0)
        step = (high - low) / 255.0
        return low.astype(np.float32), np.where(step > 0, step, 1.0).astype(np.float32)

    @staticmethod
    def encode(x: np.ndarray, low: np.ndarray, step: np.ndarray, metric: str) -> np.ndarray:
        x = _unit(x) if metric == "cosine" else np.asarray(x, np.float32)
        return (np.clip(np.rint((x - low) / step), 0, 255) - 128).astype(np.int8)

    def ranked(self, q: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """`candidates` (row ids of rows coded here) nearest first by their codes; ids not coded here last."""
        pos = np.searchsorted(self._sorted, candidates)
        pos[pos >= len(self._sorted)] = 0
        known = self._sorted[pos] == candidates
        rows = self.codes[self._order[pos[known]]].astype(np.float32)
        query = _unit(q) if self.metric == "cosine" else np.asarray(q, np.float32)
        score = rows @ (query * self.step)  # the inner product up to terms equal for every row
        if self.metric == "l2":  # ||x||^2 - 2 q.x, x reconstructed
            recon = self.low + (rows + 128.0) * self.step
            score = np.einsum("ij,ij->i", recon, recon) - 2.0 * (recon @ query)
        else:
            score = -score
        order = np.argsort(score, kind="stable")
        return np.concatenate([candidates[known][order], candidates[~known]])

    def save(self, folder: Path) -> None:
        np.save(folder / MAP_FILE, np.stack([self.low, self.step]))
        _write(folder, self.ids, [self.codes])

    @classmethod
    def open(cls, folder: Path, metric: str) -> RowCodes | None:
        """The codes saved in `folder` (read into RAM), or None when the index has none (built before them)."""
        if not (folder / MAP_FILE).exists():
            return None
        try:
            low, step = np.load(folder / MAP_FILE)
            ids = np.load(folder / IDS_FILE)
            codes = np.fromfile(folder / CODES_FILE, dtype=np.int8)
        except (OSError, ValueError) as exc:
            raise CorruptionError(f"the row codes in {folder} cannot be read ({exc}); rebuild the index") from exc
        if len(low) == 0 or codes.size != len(ids) * len(low):
            raise CorruptionError(
                f"the row codes in {folder} hold {codes.size} bytes for {len(ids)} rows of {len(low)} dimensions; "
                "rebuild the index"
            )
        return cls(ids.astype(np.uint64), codes.reshape(len(ids), len(low)), low, step, metric)


def coded(
    folder: Path, sample: np.ndarray, batches: Iterable[tuple[np.ndarray, np.ndarray]], metric: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`batches` passed through unchanged, each batch's codes written to `folder` as it passes (so a build
    holds one batch of codes at a time); the codes files are complete once the iterator is exhausted."""
    low, step = RowCodes.fit(sample, metric)
    folder.mkdir(parents=True, exist_ok=True)
    ids: list[np.ndarray] = []
    with open(folder / f"{CODES_FILE}.part", "wb") as fh:
        for batch_ids, vectors in batches:
            fh.write(RowCodes.encode(vectors, low, step, metric).tobytes())
            ids.append(np.asarray(batch_ids, np.uint64))
            yield batch_ids, vectors
    np.save(folder / MAP_FILE, np.stack([low, step]))
    _finish(folder, np.concatenate(ids) if ids else np.empty(0, np.uint64))


def merged_codes(
    source: Path, folder: Path, metric: str, batches: Iterable[tuple[np.ndarray, np.ndarray]], deleted: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """As :func:`coded` for a merge: the codes in `source` less the rows `deleted`, then `batches`' codes,
    written to `folder` (each file replaced by rename: a reader may hold the old ones)."""
    old = RowCodes.open(source, metric)
    if old is None:  # an index from before the codes: the merge keeps it without them
        yield from batches
        return
    keep = ~np.isin(old.ids, deleted) if len(deleted) else np.ones(len(old.ids), bool)
    parts, ids = [old.codes[keep]], [old.ids[keep]]
    for batch_ids, vectors in batches:
        parts.append(RowCodes.encode(vectors, old.low, old.step, metric))
        ids.append(np.asarray(batch_ids, np.uint64))
        yield batch_ids, vectors
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{MAP_FILE}.part.npy", np.stack([old.low, old.step]))
    os.replace(folder / f"{MAP_FILE}.part.npy", folder / MAP_FILE)
    _write(folder, np.concatenate(ids), parts)


def _write(folder: Path, ids: np.ndarray, parts: list[np.ndarray]) -> None:
    with open(folder / f"{CODES_FILE}.part", "wb") as fh:
        for p in parts:
            fh.write(np.ascontiguousarray(p).tobytes())
    _finish(folder, ids)


def _finish(folder: Path, ids: np.ndarray) -> None:
    np.save(folder / f"{IDS_FILE}.part.npy", ids)
    os.replace(folder / f"{IDS_FILE}.part.npy", folder / IDS_FILE)
    os.replace(folder / f"{CODES_FILE}.part", folder / CODES_FILE)
