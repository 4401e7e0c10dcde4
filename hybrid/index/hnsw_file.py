"""Loading and saving an hnswlib index file without holding the GIL for the whole call.

hnswlib's ``load_index`` parses the file in one native call that keeps the GIL
(tens of ms for a 20,000-row index, longer on a busy machine), so every other
thread of the process, an asyncio event loop included, waits that long. This
module reads the same file (hnswlib's own format, unchanged on disk) with
GIL-releasing I/O, splits it into hnswlib's pickle state with numpy, and hands
that state to ``hnswlib.Index(state)``, whose native part only copies memory:
a few ms. With `extra`, room for that many more rows is allocated at once,
which spares the merge a ``resize_index`` (another GIL-holding copy).

Saving is the same in reverse: hnswlib's ``save_index`` writes the file in one native call
that keeps the GIL (~15 ms for 20,000x64); :func:`save` takes the pickle state (one ~5 ms
copy), builds the upper-level link section with numpy and writes the same bytes with
GIL-releasing I/O.

The file layout (hnswlib's ``saveIndex``): a header of 13 little-endian
fields, every element's level-0 block (links, vector, label), then per element
a uint32 byte size and that many bytes of upper-level links.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import hnswlib
import numpy as np

from hybrid.errors import CorruptionError

_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
_DELETE_MARK = 0x01  # hnswlib's flag in the third byte of an element's level-0 link header
_SEED = 1
"""hnswlib's ``load_index`` leaves its level generator default-seeded (1): the same seed makes rows
added after this load get the levels they get after ``load_index``, so merged graphs are the same."""


def _corrupt(path: Path, why: str) -> CorruptionError:
    return CorruptionError(f"{path} is not a readable hnswlib index: {why}")


def _upper_links(path: Path, words: np.ndarray, count: int, per_level: int) -> tuple[np.ndarray, np.ndarray]:
    """Each element's level and the concatenated upper-level links of the link section `words`.

    Sizes are 0 for most elements (level 0), so the walk jumps from one non-zero size to the next:
    a Python step per element above level 0 (about 1 in M), each short enough to let other threads run.
    """
    levels = np.zeros(count, np.int32)
    nonzero = np.flatnonzero(words)
    starts: list[int] = []
    lengths: list[int] = []
    pos = element = 0
    while True:
        j = int(np.searchsorted(nonzero, pos))
        if j == len(nonzero):
            break
        at = int(nonzero[j])
        element += at - pos
        size = int(words[at])
        if element >= count or size % per_level or at + 1 + size // 4 > len(words):
            raise _corrupt(path, f"bad link list of element {element}")
        levels[element] = size // per_level
        starts.append(at + 1)
        lengths.append(size // 4)
        pos = at + 1 + size // 4
        element += 1
    if element + len(words) - pos != count:
        raise _corrupt(path, f"link section holds {element + len(words) - pos} elements, header says {count}")
    if not starts:
        return levels, np.empty(0, np.int8)
    first = np.asarray(starts, np.int64)
    sizes = np.asarray(lengths, np.int64)
    before = np.concatenate((np.zeros(1, np.int64), np.cumsum(sizes)[:-1]))
    offsets = np.repeat(first - before, sizes)
    links = words[offsets + np.arange(int(sizes.sum()), dtype=np.int64)]
    return levels, links.view(np.int8)


def load(path: Path, space: str, dim: int, ef: int, extra: int = 0) -> hnswlib.Index:
    """The hnswlib index saved at `path` (a file), with room for `extra` more rows; searches with `ef`."""
    with open(path, "rb", buffering=0) as fh:  # one read() with the GIL released
        data = fh.read()
    if len(data) < _HEADER.size:
        raise _corrupt(path, f"{len(data)} bytes, shorter than the header")
    head = _HEADER.unpack_from(data)
    offset0, _, count, per_element, label_offset, offset_data, max_level, entry, max_m, max_m0, m, mult, efc = head
    if count == 0:  # nothing to spare: an empty index loads in no time
        hnsw = hnswlib.Index(space=space, dim=dim)
        hnsw.load_index(str(path), max_elements=max(1, extra))
        hnsw.set_ef(ef)
        return hnsw
    level0_end = _HEADER.size + count * per_element
    if offset0 != 0 or offset_data + 4 * dim + 8 != per_element or label_offset != offset_data + 4 * dim:
        raise _corrupt(path, f"its layout does not hold {dim}-d float vectors")
    if level0_end > len(data) or (len(data) - level0_end) % 4:
        raise _corrupt(path, "truncated")
    level0 = np.frombuffer(data, np.int8, count * per_element, _HEADER.size)
    blocks = level0.reshape(count, per_element)
    labels = np.ascontiguousarray(blocks[:, label_offset : label_offset + 8]).view("<u8").ravel()
    deleted = bool((blocks[:, 2].view(np.uint8) & _DELETE_MARK).any())
    words = np.frombuffer(data, "<u4", offset=level0_end)
    levels, links = _upper_links(path, words, count, 4 * max_m + 4)
    state = {
        "ser_version": 1,
        "space": space,
        "dim": dim,
        "index_inited": True,
        "ep_added": True,
        "normalize": space == "cosine",
        "num_threads": os.cpu_count() or 1,
        "seed": _SEED,
        "offset_level0": offset0,
        "max_elements": count + max(0, extra),
        "cur_element_count": count,
        "size_data_per_element": per_element,
        "label_offset": label_offset,
        "offset_data": offset_data,
        "max_level": max_level,
        "enterpoint_node": entry,
        "max_M": max_m,
        "max_M0": max_m0,
        "M": m,
        "mult": mult,
        "ef_construction": efc,
        "ef": ef,
        "has_deletions": deleted,
        "size_links_per_element": 4 * max_m + 4,
        "allow_replace_deleted": False,
        "label_lookup_external": labels,
        "label_lookup_internal": np.arange(count, dtype=np.uint32),
        "element_levels": levels,
        "data_level0": level0,
        "link_lists": links,
    }
    try:
        return hnswlib.Index(state)
    except (RuntimeError, ValueError) as exc:
        raise _corrupt(path, str(exc)) from exc


def save(hnsw: hnswlib.Index, path: Path) -> None:
    """Write `hnsw` to `path` byte for byte as ``hnsw.save_index(path)`` does, without its long GIL hold."""
    state = hnsw.__getstate__()[0]
    count = int(state["cur_element_count"])
    per_element = int(state["size_data_per_element"])
    per_level = int(state["size_links_per_element"])
    if count == 0:
        hnsw.save_index(str(path))
        return
    head = _HEADER.pack(
        state["offset_level0"],
        state["max_elements"],
        count,
        per_element,
        state["label_offset"],
        state["offset_data"],
        state["max_level"],
        state["enterpoint_node"],
        state["max_M"],
        state["max_M0"],
        state["M"],
        state["mult"],
        state["ef_construction"],
    )
    level0 = np.asarray(state["data_level0"], np.int8)[: count * per_element]
    sizes = np.asarray(state["element_levels"][:count], np.int64) * per_level  # bytes of upper links per element
    links = np.asarray(state["link_lists"], np.int8).view(np.uint8)
    if int(sizes.sum()) != len(links):
        raise _corrupt(path, f"the index's link lists hold {len(links)} bytes, its levels say {int(sizes.sum())}")
    section = np.empty(4 * count + len(links), np.uint8)
    starts = 4 * np.arange(count, dtype=np.int64) + np.concatenate((np.zeros(1, np.int64), np.cumsum(sizes)[:-1]))
    section[starts[:, None] + np.arange(4)] = sizes.astype("<u4").view(np.uint8).reshape(count, 4)
    if len(links):
        before = np.concatenate((np.zeros(1, np.int64), np.cumsum(sizes)[:-1]))  # link bytes of earlier elements
        section[np.repeat(starts + 4 - before, sizes) + np.arange(len(links), dtype=np.int64)] = links
    with open(path, "wb", buffering=0) as fh:  # each write() releases the GIL
        for part in (memoryview(head), np.ascontiguousarray(level0).view(np.uint8).data, section.data):
            view = part.cast("B")
            while view.nbytes:
                view = view[fh.write(view) :]
