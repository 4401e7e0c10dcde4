"""The second stage of rescoring an IVF index's candidates: a scalar code per dimension per row, held in RAM.

An IVF index's own codes (product quantization, one byte per eight dimensions; RaBitQ, one bit per
dimension) rank its candidates coarsely, so rescoring used to read every candidate's float vector
from the table (``rescore x k`` of them, 1.5-5 us each). These codes rank the same candidates
finely enough that only the best few need their float vectors read (``reads x k``, tuned by
:func:`hybrid.index.ann_build.tune`), and the rows returned still carry exact distances.

Each dimension is scalar-quantized to 256 levels between its 0.1th and 99.9th percentile over the
training sample (cosine rows are normalized first; values outside are clipped): 8-bit codes. The
4-bit codes are the same codes with their low four bits dropped (16 levels over the same range, each
decoded to its middle), two dimensions to a byte (dimension ``j`` in the low half of byte ``j``,
dimension ``j + ceil(dim / 2)`` in the high half). Which width an index keeps is the tuner's choice
(:data:`FOUR_BIT_READS`): the build writes 8-bit codes, and `target_recall` tuning narrows them to 4
bits when those keep the target with at most twice the reads. A query is compared with a candidate's
code by one inner product, ``(q * scale) . code`` (the terms that are the same for every row are left
out); for l2 the code's reconstructed squared norm is added.

RAM: ``dim`` bytes per row (8 bits) or ``ceil(dim / 2)`` (4 bits: 192 MB at 1,000,000 x 384), plus
8 bytes per row for the sorted row ids (none when the ids are consecutive, as in a table never
deleted from): anonymous memory, never paged from disk while searching. The codes are held sorted by
row id, so a candidate's code is found by subtraction (consecutive ids) or one binary search.

Files (in the index folder): ``codes.i8`` (rows x dim int8) or ``codes.u4`` (rows x ceil(dim / 2)
uint8), in the order of ``codes_ids.npy`` (their row ids); ``codes_map.npy`` (per dimension: the low
end, the 8-bit step).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from hybrid.errors import CorruptionError
from hybrid.storage import npy

CODES_FILE, IDS_FILE, MAP_FILE = "codes.i8", "codes_ids.npy", "codes_map.npy"
CODES4_FILE = "codes.u4"
"""The 4-bit codes (two dimensions a byte); an index has this file or `CODES_FILE`, never both for long."""
ENCODE_ROWS = 1_024
"""Rows encoded at a time (a 1.5 MB float block at 384-d, worked in place in the core's cache): encoding
a 65,536 x 384 batch took 0.11 s of CPU against 0.75-1.4 s as one whole-batch expression."""
NARROW_ROWS = 65_536
"""Rows narrowed from 8 to 4 bits at a time when an index's codes file is rewritten."""
CLIP_QUANTILE = 0.001
"""Each dimension's range is its [0.1%, 99.9%] quantile range over the training sample."""
FOUR_BIT_READS = 2.0
"""The tuner keeps 4-bit codes when they reach the target recall with at most this many times the reads
the 8-bit codes need at the same depth and rescore factor (halving the codes' RAM may at most double
the rows read as floats); otherwise the 8-bit codes stay."""


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def pack4(codes8: np.ndarray) -> np.ndarray:
    """8-bit codes (rows x dim int8) narrowed to 4 bits, two dimensions a byte (rows x ceil(dim / 2) uint8)."""
    high = (codes8.view(np.uint8) ^ 0x80) >> 4  # the level 0-255 (int8 + 128), its high four bits
    half = (high.shape[1] + 1) // 2
    out = high[:, :half].copy()
    out[:, : high.shape[1] - half] |= high[:, half:] << 4
    return out


class RowCodes:
    """Per-row 8-bit or 4-bit codes of an index's rows, sorted by row id, ranking candidates by approximate
    distance."""

    def __init__(
        self, ids: np.ndarray, codes: np.ndarray, low: np.ndarray, step: np.ndarray, metric: str, bits: int = 8
    ) -> None:
        ids = np.asarray(ids, np.uint64)
        if len(ids) > 1 and not bool((ids[1:] > ids[:-1]).all()):  # in the order added: sorted once here
            order = np.argsort(ids, kind="stable")
            ids, codes = ids[order], codes[order]
        self.codes, self.low, self.step, self.metric, self.bits = codes, low, step, metric, bits
        self._wide = False  # 4-bit levels read from 8-bit codes (:meth:`narrowed_view`), not packed ones
        self.dim = len(low)
        self.count = len(ids)
        self._start = int(ids[0]) if len(ids) else 0
        consecutive = not len(ids) or int(ids[-1]) - self._start == len(ids) - 1
        self._ids: np.ndarray | None = None if consecutive else ids  # consecutive ids: found by subtraction
        self._decode_as(bits)

    def _decode_as(self, bits: int) -> None:
        """Decoded value of a dimension = base + level * scale (level: the int8 code, or the 4-bit level)."""
        low, step = self.low, self.step
        if bits == 8:
            self.base, self.scale = low + 128.0 * step, step
        else:
            self.base, self.scale = low + 7.5 * step, 16.0 * step
        self.bits = bits

    @property
    def ids(self) -> np.ndarray:
        """The row ids coded here, ascending."""
        if self._ids is not None:
            return self._ids
        return np.arange(self._start, self._start + self.count, dtype=np.uint64)

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + (self._ids.nbytes if self._ids is not None else 0))

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
    def encode(x: np.ndarray, low: np.ndarray, step: np.ndarray, metric: str, bits: int = 8) -> np.ndarray:
        """`x`'s rows as codes, ``ENCODE_ROWS`` rows at a time in one scratch block worked in place (the
        whole-batch expression made five batch-sized temporaries: 7-13x the CPU, see the constant)."""
        x = np.asarray(x, np.float32)
        codes = np.empty(x.shape, np.int8)
        for start in range(0, len(x), ENCODE_ROWS):
            rows = x[start : start + ENCODE_ROWS]
            block = _unit(rows) if metric == "cosine" else rows.copy()
            block -= low
            block /= step
            np.rint(block, out=block)
            np.clip(block, 0, 255, out=block)
            block -= 128
            codes[start : start + ENCODE_ROWS] = block  # whole numbers in [-128, 127]: exact as int8
        return codes if bits == 8 else pack4(codes)

    def narrowed(self) -> RowCodes:
        """These 8-bit codes as 4-bit codes (the same rows and ranges)."""
        if self.bits == 4:
            return self
        return RowCodes(self.ids, pack4(self.codes), self.low, self.step, self.metric, 4)

    def narrowed_view(self) -> RowCodes:
        """The 4-bit codes :meth:`narrowed` makes, ranking exactly as they do, but read from these 8-bit codes
        row by row as candidates are ranked (no copy): the tuner compares both widths while holding only
        the 8-bit codes, where a packed copy held 1.5x the codes (and 2.5x while packing)."""
        if self.bits == 4:
            return self
        view = copy.copy(self)  # the same arrays: codes, ids, ranges
        view._decode_as(4)
        view._wide = True
        return view

    def levels(self, positions: np.ndarray) -> np.ndarray:
        """The rows at `positions` as float32 levels (rows x dim), decoded as ``base + level * scale``."""
        rows = self.codes[positions]
        if self._wide:  # a 4-bit level is the 8-bit level's high four bits
            rows = (rows.view(np.uint8) ^ 0x80) >> 4
        elif self.bits == 4:
            rows = np.concatenate([rows & 0x0F, rows >> 4], axis=1)[:, : self.dim]
        return rows.astype(np.float32)

    def positions(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions of the coded ones among `candidates`, which of `candidates` are coded here)."""
        if self._ids is None:
            pos = candidates.astype(np.int64) - self._start
            known = (pos >= 0) & (pos < self.count)
        else:
            pos = np.searchsorted(self._ids, candidates).astype(np.int64)
            pos[pos >= self.count] = 0
            known = self._ids[pos] == candidates
        return (pos if known.all() else pos[known]), known

    def ranked(self, q: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """`candidates` (row ids of rows coded here) nearest first by their codes; ids not coded here last."""
        pos, known = self.positions(candidates)
        rows = self.levels(pos)
        query = np.asarray(q, np.float32)
        if self.metric == "cosine":  # one query: a dot product, not `_unit`'s batched norm
            norm = float(np.sqrt(query @ query))
            query = query / np.float32(norm) if norm > 0 else np.zeros_like(query)
        if self.metric == "l2":  # ||x||^2 - 2 q.x, x = base + rows * scale reconstructed
            recon = self.base + rows * self.scale
            score = np.einsum("ij,ij->i", recon, recon) - 2.0 * (recon @ query)
        else:  # the inner product up to terms equal for every row
            score = -(rows @ (query * self.scale))
        order = np.argsort(score, kind="stable")
        if len(order) == len(candidates):
            return candidates[order]
        return np.concatenate([candidates[known][order], candidates[~known]])

    def save(self, folder: Path) -> None:
        np.save(folder / MAP_FILE, np.stack([self.low, self.step]))
        _write(folder, self.ids, [self.codes], self.bits)

    @classmethod
    def open(cls, folder: Path, metric: str) -> RowCodes | None:
        """The codes saved in `folder` (read into RAM), or None when the index has none (built before them).
        4-bit codes where their file is there, else 8-bit ones."""
        if not (folder / MAP_FILE).exists():
            return None
        bits = 4 if (folder / CODES4_FILE).exists() else 8
        try:
            low, step = npy.load(folder / MAP_FILE)
            ids = npy.load(folder / IDS_FILE)
            codes = np.fromfile(folder / (CODES4_FILE if bits == 4 else CODES_FILE), np.uint8 if bits == 4 else np.int8)
        except (OSError, ValueError) as exc:
            raise CorruptionError(f"the row codes in {folder} cannot be read ({exc}); rebuild the index") from exc
        width = len(low) if bits == 8 else (len(low) + 1) // 2
        if len(low) == 0 or ids.ndim != 1 or codes.size != len(ids) * width:
            raise CorruptionError(
                f"the {bits}-bit row codes in {folder} hold {codes.size} bytes for {len(ids)} rows of "
                f"{len(low)} dimensions; rebuild the index"
            )
        return cls(ids.astype(np.uint64), codes.reshape(len(ids), width), low, step, metric, bits)

    @staticmethod
    def narrow_files(folder: Path) -> None:
        """Replace the 8-bit codes file in `folder` by its 4-bit codes (written whole, then renamed into
        place, then the 8-bit file removed: a crash between leaves both, and the 4-bit ones are read)."""
        if not (folder / CODES_FILE).exists():
            return
        low = npy.load(folder / MAP_FILE)[0]
        size = (folder / CODES_FILE).stat().st_size
        codes = np.memmap(folder / CODES_FILE, dtype=np.int8, mode="r", shape=(size // len(low), len(low)))
        part = folder / f"{CODES4_FILE}.part"
        with open(part, "wb") as fh:  # a block of rows at a time: the build's memory stays bounded
            for start in range(0, len(codes), NARROW_ROWS):
                fh.write(pack4(np.asarray(codes[start : start + NARROW_ROWS])).tobytes())
        del codes
        os.replace(part, folder / CODES4_FILE)
        os.remove(folder / CODES_FILE)


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
    """As :func:`coded` for a merge: the codes in `source` less the rows `deleted`, then `batches`' codes
    (of the same width), written to `folder` (each file replaced by rename: a reader may hold the old ones)."""
    old = RowCodes.open(source, metric)
    if old is None:  # an index from before the codes: the merge keeps it without them
        yield from batches
        return
    old_ids = old.ids
    if len(deleted) and np.isin(old_ids, deleted).any():
        keep = ~np.isin(old_ids, deleted)
        parts, ids = [old.codes[keep]], [old_ids[keep]]
    else:  # nothing deleted: the codes as they are, not a copy of them
        parts, ids = [old.codes], [old_ids]
    for batch_ids, vectors in batches:
        parts.append(RowCodes.encode(vectors, old.low, old.step, metric, old.bits))
        ids.append(np.asarray(batch_ids, np.uint64))
        yield batch_ids, vectors
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{MAP_FILE}.part.npy", np.stack([old.low, old.step]))
    os.replace(folder / f"{MAP_FILE}.part.npy", folder / MAP_FILE)
    bits = old.bits
    del old  # its codes live on in `parts` only
    _write(folder, np.concatenate(ids), parts, bits)


def _write(folder: Path, ids: np.ndarray, parts: list[np.ndarray], bits: int = 8) -> None:
    """Write the codes `parts` (rows in the order of `ids`) sorted by row id, so that :meth:`RowCodes.open`
    reads them without a sorted copy (a tuned build adds its held-out rows last: unsorted)."""
    name = CODES4_FILE if bits == 4 else CODES_FILE
    with open(folder / f"{name}.part", "wb") as fh:
        if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
            for p in parts:
                fh.write(np.ascontiguousarray(p).tobytes())
        else:
            order = np.argsort(ids, kind="stable")
            ids = ids[order]
            codes = parts[0] if len(parts) == 1 else np.concatenate(parts)
            parts.clear()
            for start in range(0, len(order), NARROW_ROWS):  # a block of rows at a time
                fh.write(codes[order[start : start + NARROW_ROWS]].tobytes())
    _finish(folder, ids, bits)


def _finish(folder: Path, ids: np.ndarray, bits: int = 8) -> None:
    name, other = (CODES4_FILE, CODES_FILE) if bits == 4 else (CODES_FILE, CODES4_FILE)
    np.save(folder / f"{IDS_FILE}.part.npy", ids)
    os.replace(folder / f"{IDS_FILE}.part.npy", folder / IDS_FILE)
    os.replace(folder / f"{name}.part", folder / name)
    if (folder / other).exists():  # codes of the other width left by an earlier index in this folder
        os.remove(folder / other)
