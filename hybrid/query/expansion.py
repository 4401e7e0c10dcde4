"""Context expansion: a hit grows into the passage around it, ready for a prompt.

``.expand(neighbours=n)`` joins each hit with the `n` live chunks before and after it in
its document (by the declared position, else in the order the rows were added; a deleted
chunk is passed over, so the nearest live ones are taken); a hit whose window touches or
overlaps the passage of a better hit of its document joins it, and leaves the results (a
page's hit that joins a passage of an earlier page's hit too: so the pages of a query show
what one longer result shows). ``.expand(parent=True)`` returns each hit's whole document
once (on the page of its best hit): the text from the declared parent table, or its live
chunks joined in order. Chunks that repeat
the end of the previous one (an ingest overlap) are joined without the repetition. Title rows
(:mod:`hybrid.query.title_rows`) are passed over: a title row hit stands alone.

Added result columns: ``_context`` (the passage), ``_context_rowids`` (the chunks it was
made of, in order; for a parent table's text, the hits) and ``_context_spans``: the
``(start, end)`` character span of each hit inside ``_context`` (this row's hit first),
null where a hit's text could not be found in a parent table's text.

>>> join_chunks(["One two. Three four five.", "Three four five. Six seven."])
('One two. Three four five. Six seven.', [(0, 25), (9, 36)])
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hybrid.errors import SchemaError
from hybrid.query import chunk_layout, title_rows
from hybrid.query.chunk_layout import ChunkLayout

if TYPE_CHECKING:
    from hybrid.index.view import IndexedSnapshot

SEPARATOR = "\n\n"
"""Between two chunks that do not overlap."""
MIN_OVERLAP = 12
"""Characters a chunk must repeat of the previous one's end to be joined without the repetition."""
SPAN = pa.struct([("start", pa.int64()), ("end", pa.int64())])


@dataclass(frozen=True)
class Expansion:
    """`neighbours` chunks on each side, or the whole `parent` document."""

    neighbours: int = 0
    parent: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.neighbours, bool) or not isinstance(self.neighbours, int) or self.neighbours < 0:
            raise ValueError(f"expand: neighbours must be an integer >= 0, got {self.neighbours!r}")
        if not isinstance(self.parent, bool):
            raise ValueError(f"expand: parent must be True or False, got {self.parent!r}")
        if self.parent and self.neighbours:
            raise ValueError("expand: choose neighbours=n or parent=True, not both")
        if not self.parent and not self.neighbours:
            raise ValueError("expand needs neighbours >= 1 or parent=True")


@dataclass(frozen=True)
class ChunkMap:
    """Every live chunk of one version sorted by (parent, position), and each parent's slice of it."""

    rowids: np.ndarray
    slices: dict[Hashable, tuple[int, int]]
    starts: np.ndarray
    """For each place, where its parent's slice starts (a chunk without a parent: its own place)."""
    ends: np.ndarray
    by_rowid: np.ndarray
    """Order of `rowids` sorted by row id (to find a chunk's place)."""
    sorted_ids: np.ndarray
    """`rowids` sorted."""

    def place(self, ids: np.ndarray) -> np.ndarray:
        """Each row id's index in `rowids` (-1 where it is not a live chunk)."""
        if not len(self.rowids):
            return np.full(len(ids), -1, np.int64)
        sorted_ids = self.sorted_ids
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        return np.where(sorted_ids[at] == ids, self.by_rowid[at], -1).astype(np.int64)


def layout_of(view: IndexedSnapshot, expansion: Expansion) -> ChunkLayout:
    """The table's declared chunk layout, checked for what `expansion` needs (read and checked once
    per version and declaration)."""
    declared = view.snapshot.manifest.metadata.get(chunk_layout.METADATA_KEY)
    if declared is None:
        raise SchemaError("expand() needs the table's chunk layout: call table.set_chunking(parent=..., position=...)")
    return view.remember("chunk_layouts", (view.version, declared), lambda: _checked_layout(view), keep=4)


def _checked_layout(view: IndexedSnapshot) -> ChunkLayout:
    layout = chunk_layout.read(view.snapshot.manifest.metadata)
    assert layout is not None
    layout.check(view.schema)
    return layout


def chunk_map(view: IndexedSnapshot, layout: ChunkLayout) -> ChunkMap:
    """The version's chunk map, built once per (version, layout) and cached with the table."""
    key = (view.version, layout.parent, layout.position, layout.title_row)
    found: ChunkMap = view.remember("chunk_maps", key, lambda: _build(view, layout), keep=4)
    return found


def _build(view: IndexedSnapshot, layout: ChunkLayout) -> ChunkMap:
    columns = [layout.parent] + ([layout.position] if layout.position else [])
    data = view.snapshot.to_arrow(columns + ([layout.title_row] if layout.title_row else []), with_rowid=True)
    if layout.title_row:  # a title row is no passage: never a neighbour, never joined into a parent's text
        data = data.filter(pa.array(~title_rows.flags(data.column(layout.title_row))))
    rowids = data.column("_rowid").to_numpy()
    codes = data.column(layout.parent).combine_chunks().dictionary_encode()
    parent_codes = codes.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    position = (
        data.column(layout.position).to_numpy(zero_copy_only=False).astype(np.float64)
        if layout.position
        else rowids.astype(np.float64)
    )
    position = np.nan_to_num(position, nan=np.inf)
    order = np.lexsort((rowids, position, parent_codes))
    rowids, parent_codes = rowids[order], parent_codes[order]
    keys = codes.dictionary.to_pylist()
    bounds = np.flatnonzero(np.diff(parent_codes)) + 1
    first = np.concatenate([[0], bounds]).astype(np.int64)
    last = np.concatenate([bounds, [len(rowids)]]).astype(np.int64)
    slices: dict[Hashable, tuple[int, int]] = {}
    starts = np.arange(len(rowids), dtype=np.int64)
    ends = starts + 1
    for s, e in zip(first.tolist(), last.tolist()):
        if s < e and parent_codes[s] >= 0:
            starts[s:e], ends[s:e] = s, e
            slices[keys[parent_codes[s]]] = (s, e)
    by_rowid = np.argsort(rowids, kind="stable")
    return ChunkMap(rowids, slices, starts, ends, by_rowid, rowids[by_rowid])


def join_chunks(texts: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The chunks joined in order (a chunk that starts with the end of the previous one is joined
    without the repeat, else with a blank line), and each chunk's span in the result."""
    out = ""
    spans: list[tuple[int, int]] = []
    for text in texts:
        if not out:
            spans.append((0, len(text)))
            out = text
            continue
        cut = _overlap(out, text)
        if cut:
            start = len(out) - cut
            out += text[cut:]
        else:
            out += SEPARATOR
            start = len(out)
            out += text
        spans.append((start, start + len(text)))
    return out, spans


def _overlap(before: str, text: str) -> int:
    """The length of the longest start of `text` that `before` ends with (0 if under MIN_OVERLAP)."""
    if len(text) < MIN_OVERLAP:
        return 0
    probe = text[:MIN_OVERLAP]
    lo = max(0, len(before) - len(text))
    at = before.find(probe, lo)
    while at >= 0:
        if text.startswith(before[at:]):
            return len(before) - at
        at = before.find(probe, at + 1)
    return 0


@dataclass
class Plan:
    """Where the passages of a neighbour expansion of hits `ids` come from, worked out once from the
    row ids (before any text is read): the chunks of each passage, and the texts read so far."""

    layout: ChunkLayout
    cmap: ChunkMap
    ids: np.ndarray
    passages: dict[int, tuple[tuple[int, int], list[int]]]
    texts: dict[int, str | None] = field(default_factory=dict)
    windows: dict[int, list[int]] = field(default_factory=dict)
    """The row ids of each passage's chunks in order, by the hit that keeps it (all of them read
    from the chunk map at once)."""

    def __post_init__(self) -> None:
        if self.passages and not self.windows:
            self.windows = _window_ids(self.cmap, self.passages, self.ids)

    def chunk_ids(self, hit: int) -> list[int]:
        """The row ids of the passage kept on hit number `hit`, in order."""
        return self.windows[hit]

    def neighbours(self) -> np.ndarray:
        """The row ids of the passages' chunks that are not hits, sorted."""
        wanted = {r for chunk_ids in self.windows.values() for r in chunk_ids}.difference(self.ids.tolist())
        return np.asarray(sorted(wanted), np.uint64)


@dataclass
class Handoff:
    """What a search hands the expansion of its rows: the :func:`plan` made with them (the
    neighbours' texts read with the hits), and the row ids of the hits ranked above them (an
    earlier page's), best first."""

    plan: Plan | None = None
    above: np.ndarray | None = None


def plan(view: IndexedSnapshot, expansion: Expansion, ids: np.ndarray, above: np.ndarray | None = None) -> Plan:
    """The neighbour expansion of hits `ids` (best first) below the hits `above`, its texts not yet read."""
    layout = layout_of(view, expansion)
    cmap = chunk_map(view, layout)
    higher = None if above is None or not len(above) else cmap.place(above)
    return Plan(layout, cmap, ids, _passages(cmap, cmap.place(ids), expansion.neighbours, higher))


def expand(
    rows: pa.Table,
    view: IndexedSnapshot,
    expansion: Expansion,
    planned: Plan | None = None,
    above: np.ndarray | None = None,
) -> pa.Table:
    """`rows` (search results, best first) with the context columns; hits joined into a better hit's
    passage are left out. `planned`: the :func:`plan` of these rows, with texts already read;
    `above`: the row ids of the hits ranked above these (an earlier page's)."""
    layout = layout_of(view, expansion)
    if rows.num_rows == 0:
        return _with_columns(rows, [], [], [], [])
    ids = rows.column("_rowid").to_numpy()
    if expansion.parent:
        cmap = chunk_map(view, layout)
        return _parents(rows, view, layout, cmap, ids, cmap.place(ids), above)
    if planned is None or not np.array_equal(planned.ids, ids):
        planned = plan(view, expansion, ids, above)
    kept = sorted(planned.passages)
    windows = planned.windows
    texts = planned.texts
    wanted = sorted({r for i in kept for r in windows[i]}.difference(texts))
    if wanted:
        read = view.snapshot.take(np.asarray(wanted, np.uint64), [layout.text]).column(layout.text).to_pylist()
        texts.update(zip(wanted, read))
    hit_ids = ids.tolist()
    contexts: list[str] = []
    members: list[list[int]] = []
    spans: list[list[tuple[int, int] | None]] = []
    for i in kept:
        hits, chunk_ids = planned.passages[i][1], windows[i]
        text, chunk_spans = join_chunks([texts[r] or "" for r in chunk_ids])
        at = {r: k for k, r in enumerate(chunk_ids)}
        contexts.append(text)
        members.append(chunk_ids)
        spans.append([chunk_spans[at[hit_ids[j]]] for j in hits])
    return _with_columns(_rows_at(rows, kept), kept, contexts, members, spans)


def _rows_at(rows: pa.Table, kept: list[int]) -> pa.Table:
    """Rows number `kept` (ascending) of `rows`: a slice when they run on (one Arrow call, not two)."""
    if kept and kept[-1] - kept[0] == len(kept) - 1:
        return rows if len(kept) == rows.num_rows else rows.slice(kept[0], len(kept))
    return rows.take(pa.array(kept, pa.int64()))


def _passages(
    cmap: ChunkMap, places: np.ndarray, n: int, above: np.ndarray | None = None
) -> dict[int, tuple[tuple[int, int], list[int]]]:
    """For each hit that keeps a passage: its window of places and the hits it holds (its own first).
    Hits in rank order, those `above` (places of better hits, an earlier page's) first: a hit whose
    window touches or overlaps a passage of its document made so far joins the best such passage,
    else it makes its own. A hit's fate depends on the better hits alone, never on worse ones, so a
    page keeps the hits a longer result keeps."""
    runs: dict[int, list[list[int]]] = {}  # parent slice start -> [lo, hi, owner] (owner < 0: a hit above)
    held: dict[int, list[int]] = {}
    passages: dict[int, tuple[tuple[int, int], list[int]]] = {}
    higher = above if above is not None else np.empty(0, np.int64)
    every = np.concatenate([higher, places])
    live = every >= 0
    starts: list[int] = []
    ends: list[int] = []
    if len(cmap.starts):  # (junk where not live)
        starts, ends = cmap.starts[every].tolist(), cmap.ends[every].tolist()
    for j, (p, is_live) in enumerate(zip(every.tolist(), live.tolist())):
        i = j - len(higher)  # a hit of these rows when >= 0
        if not is_live:  # not a live chunk of this version: the hit alone
            if i >= 0:
                passages[i] = ((-1, -1), [i])
            continue
        lo, hi = max(starts[j], p - n), min(ends[j] - 1, p + n)
        found = runs.setdefault(starts[j], [])
        run = next((r for r in found if lo <= r[1] + 1 and r[0] <= hi + 1), None)  # touches or overlaps
        if run is None:
            found.append([lo, hi, i])
            if i >= 0:
                held[i] = [i]
            continue
        run[0], run[1] = min(run[0], lo), max(run[1], hi)
        if run[2] >= 0:
            held[run[2]].append(i)
    for found in runs.values():
        for lo, hi, owner in found:
            if owner >= 0:
                passages[owner] = ((lo, hi), held[owner])
    return dict(sorted(passages.items()))


def _window_ids(
    cmap: ChunkMap, passages: dict[int, tuple[tuple[int, int], list[int]]], ids: np.ndarray
) -> dict[int, list[int]]:
    """Each passage's chunk row ids in order (a hit that is no live chunk: itself), read from the
    chunk map in one gather."""
    places: list[int] = []
    for (lo, hi), _ in passages.values():
        if lo >= 0:
            places += range(lo, hi + 1)
    found = cmap.rowids[places].tolist() if places else []
    hit_ids = ids.tolist()
    out: dict[int, list[int]] = {}
    at = 0
    for hit, ((lo, hi), _) in passages.items():
        if lo < 0:
            out[hit] = [hit_ids[hit]]
        else:
            out[hit] = found[at : at + hi - lo + 1]
            at += hi - lo + 1
    return out


def _parents(
    rows: pa.Table,
    view: IndexedSnapshot,
    layout: ChunkLayout,
    cmap: ChunkMap,
    ids: np.ndarray,
    places: np.ndarray,
    above: np.ndarray | None = None,
) -> pa.Table:
    """One passage per document: the first (best) hit of each keeps it, with every hit's span marked;
    a document of a hit `above` (an earlier page's) was shown there: its hits here leave."""
    snap = view.snapshot
    keys = snap.take(ids, [layout.parent, layout.text])
    parents, hit_texts = keys.column(layout.parent).to_pylist(), keys.column(layout.text).to_pylist()
    shown = set()
    if above is not None and len(above):
        shown = set(snap.take(above, [layout.parent]).column(layout.parent).to_pylist())
    first: dict[Any, int] = {}
    hits_of: dict[int, list[int]] = {}
    for i, key in enumerate(parents):
        if key is not None and key in shown:
            continue
        owner = first.setdefault(("\0row", i) if key is None else key, i)
        hits_of.setdefault(owner, []).append(i)
    kept = sorted(hits_of)
    stored = _parent_texts(view, layout, [parents[i] for i in kept if parents[i] is not None])
    contexts, members, spans = [], [], []
    for i in kept:
        key = parents[i]
        if key is not None and key in stored:
            text = stored[key]
            contexts.append(text)
            members.append([int(ids[j]) for j in hits_of[i]])
            spans.append([locate(text, hit_texts[j] or "") for j in hits_of[i]])
            continue
        slice_ = cmap.slices.get(key) if key is not None else None
        chunk_ids = [int(r) for r in cmap.rowids[slice_[0] : slice_[1]]] if slice_ else [int(ids[i])]
        texts = snap.take(np.asarray(chunk_ids, np.uint64), [layout.text]).column(layout.text).to_pylist()
        text, chunk_spans = join_chunks([t or "" for t in texts])
        at = {r: k for k, r in enumerate(chunk_ids)}
        contexts.append(text)
        members.append(chunk_ids)
        spans.append([chunk_spans[at[int(ids[j])]] for j in hits_of[i] if int(ids[j]) in at])
    return _with_columns(rows.take(pa.array(kept, pa.int64())), kept, contexts, members, spans)


def _parent_texts(view: IndexedSnapshot, layout: ChunkLayout, keys: list[Any]) -> dict[Any, str]:
    """The whole texts of documents `keys` from the declared parent table (empty without one)."""
    if layout.parent_table is None or not keys:
        return {}
    from hybrid.table import Table

    root = view.root.parent / layout.parent_table
    try:
        parent = Table(root, upkeep=None)
        wanted = ", ".join(_literal(k) for k in dict.fromkeys(keys))
        data = parent.to_arrow([layout.parent_key, layout.parent_text], where=f"{layout.parent_key} IN ({wanted})")
    except (LookupError, FileNotFoundError) as exc:
        raise SchemaError(
            f"expand(parent=True): the parent table {layout.parent_table!r} cannot be read: {exc}"
        ) from None
    return dict(zip(data.column(layout.parent_key).to_pylist(), data.column(layout.parent_text).to_pylist()))


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    raise SchemaError(f"expand(parent=True): parent keys must be strings or numbers, got {type(value).__name__}")


_GAP = r"[\W_]+"


def locate(text: str, chunk: str) -> tuple[int, int] | None:
    """Where `chunk` lies in `text`, whitespace and punctuation between words aside (a loader may have
    collapsed them): its words found in order; else from its first words to its last words; else None."""
    words = re.findall(r"\w+", chunk)
    if not words:
        return None
    exact = text.find(chunk)
    if exact >= 0:
        return exact, exact + len(chunk)
    found = re.search(_GAP.join(map(re.escape, words)), text)
    if found:
        start, end = found.span()
        lead = re.match(r"\W*", chunk).group()  # type: ignore[union-attr]
        trail = re.search(r"\W*$", chunk).group()  # type: ignore[union-attr]
        lead, trail = lead.strip(), trail.strip()
        if lead and text[max(0, start - len(lead)) : start] == lead:
            start -= len(lead)
        if trail and text[end : end + len(trail)] == trail:
            end += len(trail)
        return start, end
    head = re.search(_GAP.join(map(re.escape, words[:6])), text)
    tail = re.search(_GAP.join(map(re.escape, words[-6:])), text[head.start() :]) if head else None
    if head and tail:
        return head.start(), head.start() + tail.end()
    return None


_ADDED = (
    pa.field("_context", pa.string()),
    pa.field("_context_rowids", pa.list_(pa.uint64())),
    pa.field("_context_spans", pa.list_(SPAN)),
)


def _with_columns(
    rows: pa.Table,
    kept: list[int],
    contexts: list[str],
    members: list[list[int]],
    spans: list[list[tuple[int, int] | None]],
) -> pa.Table:
    """`rows` and the context columns: one Arrow conversion per column, each appended."""
    for v, f in zip((contexts, members, spans), _ADDED):  # (appending is far cheaper than a new table)
        rows = rows.append_column(f, pa.array(v, f.type))
    return rows
