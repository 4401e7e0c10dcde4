"""Fragment pages: immutable files holding runs of a manifest's fragments, shared between versions.

A manifest lists its pages in order; their fragments, concatenated, are the
version's fragments. Publishing a manifest reuses every page of the version it
was built on whose fragments are still there, in the same place and unchanged,
and writes new pages only for the rest: an append writes one small page, a
delete rewrites the pages holding the fragments whose deletion files changed.

The fragments after the last page stay inline in the manifest while they are
fewer than `INLINE_FRAGMENTS`, so most appends write no page at all; the next
one moves them to a new page. Small pages are merged as they pile up, the way a
binary counter carries: two neighbouring pages merge when the left one is no
bigger than the right one and the two fit in one page of `PAGE_FRAGMENTS`. So a
table of n fragments has about n / `PAGE_FRAGMENTS` + log2(`PAGE_FRAGMENTS` /
`INLINE_FRAGMENTS`) pages, and each fragment is written to a page a few times
over its life.

Pages are written like data files: under a fresh name that carries the checksum
of their bytes (:mod:`hybrid.storage.checksums`, verified when read), flushed and synced
(with their folder) before the manifest that lists them is published, and never
changed afterwards.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from hybrid.errors import CorruptionError
from hybrid.storage import checksums, disk, flushes
from hybrid.storage.manifest import Fragment, Page, fragments_from_dicts, fragments_to_dicts

PAGES_DIR = "_pages"
PAGE_FRAGMENTS = 256
INLINE_FRAGMENTS = 16
CACHE_FRAGMENTS = 1 << 18

Segment = Page | list[Fragment]
"""A page kept as it is, or fragments that go to a new page."""


class _PageCache:
    """Parsed pages by absolute path (pages never change), least recently used first out."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._pages: OrderedDict[str, Page] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Page | None:
        with self._lock:
            hit = self._pages.get(key)
            if hit is not None:
                self._pages.move_to_end(key)
            return hit

    def put(self, key: str, page: Page) -> None:
        with self._lock:
            if key in self._pages:
                return
            self._pages[key] = page
            self._held += len(page.fragments)
            while self._held > self.capacity and len(self._pages) > 1:
                _, old = self._pages.popitem(last=False)
                self._held -= len(old.fragments)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._held = 0


_cache = _PageCache(CACHE_FRAGMENTS)


def clear_cache() -> None:
    """Forget every parsed page (benchmarks use it to time a cold open)."""
    _cache.clear()


def read_page(root: Path, rel: str) -> Page:
    """Page `rel` of the table at `root` (parsed once per process)."""
    key = os.path.join(str(root), rel)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    try:
        data = bytes(disk.read_plain(Path(key), rel))
        checksums.verify_named(root, rel, data)
        fragments = tuple(fragments_from_dicts(json.loads(data)["fragments"]))
    except FileNotFoundError:
        raise CorruptionError(f"page {rel} of table {root.name} is missing", rel, "missing") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"page {rel} of table {root.name} is unreadable: {exc}", rel, "unreadable") from None
    page = Page(rel, fragments)
    _cache.put(key, page)
    return page


def plan_pages(fragments: Sequence[Fragment], previous: Sequence[Page]) -> list[Segment]:
    """Split a prefix of `fragments` into pages (the rest stays inline in the manifest).

    Pages of `previous` that hold an unchanged run are kept; small pages merge.
    """
    by_first = {p.fragments[0].id: p for p in previous if p.fragments}
    segments: list[Segment] = []
    i, n = 0, len(fragments)
    while i < n:
        page = by_first.get(fragments[i].id)
        size = len(page.fragments) if page is not None else 0
        if page is not None and tuple(fragments[i : i + size]) == page.fragments:  # identity first: cheap
            segments.append(page)
            i += size
            continue
        if not segments or isinstance(segments[-1], Page):
            segments.append([])
        loose = segments[-1]
        assert isinstance(loose, list)
        loose.append(fragments[i])
        i += 1
    if segments and isinstance(segments[-1], list) and len(segments[-1]) < INLINE_FRAGMENTS:
        segments.pop()  # the tail stays inline
    stack: list[Segment] = []
    for segment in segments:
        pieces = (
            [segment]
            if isinstance(segment, Page)
            else [segment[k : k + PAGE_FRAGMENTS] for k in range(0, len(segment), PAGE_FRAGMENTS)]
        )
        for piece in pieces:
            stack.append(piece)
            while len(stack) > 1 and _size(stack[-2]) <= _size(stack[-1]) <= PAGE_FRAGMENTS - _size(stack[-2]):
                right, left = stack.pop(), stack.pop()
                stack.append([*_fragments(left), *_fragments(right)])
    return stack


def write_pages(
    root: Path, fragments: Sequence[Fragment], previous: Sequence[Page]
) -> tuple[tuple[Page, ...], list[str]]:
    """Pages holding a prefix of `fragments`, new ones written and synced (now, or inside
    :func:`hybrid.storage.flushes.together` with the manifest); returns (pages, paths written).

    A page file that is written but never listed by a published manifest (the
    commit lost a race, or the process died) is removed by cleanup.
    """
    pages: list[Page] = []
    written: list[str] = []
    try:
        for segment in plan_pages(fragments, previous):
            if isinstance(segment, Page):
                pages.append(segment)
                continue
            if not written:
                (root / PAGES_DIR).mkdir(parents=True, exist_ok=True)
            frozen = tuple(segment)
            body = json.dumps({"fragments": fragments_to_dicts(frozen)}, separators=(",", ":"))
            rel = checksums.with_digest(f"{PAGES_DIR}/{uuid.uuid4().hex}.json", checksums.digest_bytes(body.encode()))
            written.append(rel)
            disk.write_new(root / rel, body.encode(), sync=False)
            flushes.sync_file(root / rel)
            page = Page(rel, frozen)
            _cache.put(os.path.join(str(root), rel), page)
            pages.append(page)
        if written:
            flushes.sync_folder(root / PAGES_DIR)
    except BaseException:
        remove_pages(root, written)
        raise
    return tuple(pages), written


def remove_pages(root: Path, paths: Sequence[str]) -> None:
    """Delete pages that no published manifest lists (those of a commit that lost its race)."""
    for rel in paths:
        (root / rel).unlink(missing_ok=True)


def _size(segment: Segment) -> int:
    return len(segment.fragments) if isinstance(segment, Page) else len(segment)


def _fragments(segment: Segment) -> Sequence[Fragment]:
    return segment.fragments if isinstance(segment, Page) else segment
