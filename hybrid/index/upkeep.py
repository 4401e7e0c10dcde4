"""Automatic upkeep: a table folds its own writes into its indexes and compacts its small fragments.

Every write leaves work behind: rows the indexes do not hold yet (searched beside
them, :mod:`hybrid.index.tail`), rows they hold that are gone, and one small
fragment per append. Upkeep does that work in one background thread of the
writing process once it passes a threshold (:class:`Upkeep`): consecutive small
fragments of one size tier are rewritten as one (row ids kept), and an index that
misses or holds dead enough rows is merged (:mod:`hybrid.index.merge`). Each step
is an ordinary optimistic commit, so readers never wait and another writer never
loses anything: a step that conflicts is dropped and tried again after a later
write. ``hybrid optimize --watch`` runs the same steps for tables written by other
processes. Where several processes write one table (server workers), one of them
at a time runs background upkeep (:func:`upkeep_lock`): the others would redo the
same compaction and merges, only to lose the commit race.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hybrid.errors import CommitConflictError
from hybrid.index.catalog import IndexEntry
from hybrid.index.manage import Writable, optimize_index
from hybrid.index.merge import wants_rebuild
from hybrid.index.view import IndexedSnapshot
from hybrid.storage import transactions as tx
from hybrid.storage.manifest import Fragment, Manifest
from hybrid.storage.snapshot import Snapshot
from hybrid.storage.versions import VersionLog
from hybrid.storage.writer import rewrite_run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upkeep:
    """When automatic upkeep runs (``hybrid.connect(path, upkeep=Upkeep(...))``; ``Upkeep(enabled=False)`` or
    ``upkeep=None`` turns it off).

    Attributes:
        merge_rows: an index is merged once it misses (or holds deleted) at least this many rows...
        merge_share: ...or this share of its rows, whichever is larger: a merge reads and writes the
            whole index, so merging at a share of its size keeps the cost per written row flat.
        tier_fragments: this many (n) consecutive fragments of one size tier (fewer than n, n**2,
            n**3... live rows, up to 65,536), or of two neighbouring tiers, are compacted into one. A
            table keeps fewer than n fragments per tier, and each row is rewritten about once or twice
            per tier it climbs (6 tiers for n = 8).
    """

    enabled: bool = True
    merge_rows: int = 1_000
    merge_share: float = 0.01
    tier_fragments: int = 8

    def __post_init__(self) -> None:
        if self.merge_rows < 1 or not 0 <= self.merge_share <= 1 or self.tier_fragments < 2:
            raise ValueError(f"Upkeep needs merge_rows >= 1, 0 <= merge_share <= 1 and tier_fragments >= 2, got {self}")


DEFAULT_UPKEEP = Upkeep()
"""What a table does unless told otherwise (the policy is immutable, so one instance serves all)."""

LOCK_FILE = ".upkeep.lock"
"""Held (flock, exclusive, non-blocking) by the process running background upkeep of a table."""

SMALL_ROWS = 65_536
"""Fragments of fewer live rows than this are small enough to compact automatically."""


def tier(frag: Fragment, base: int) -> int | None:
    """The size tier of a small fragment (0: under `base` live rows, 1: under base**2, ...), None when large."""
    if frag.live_rows >= SMALL_ROWS:
        return None
    return int(math.log(max(frag.live_rows, 1), base))


def plan_tiers(manifest: Manifest, count: int) -> list[list[Fragment]]:
    """Runs of at least `count` consecutive small fragments of one tier, or of two neighbouring tiers,
    lowest tiers first, each fragment in one run at most (the order of row ids is kept).

    Neighbouring tiers join because appends whose sizes straddle a tier's bound (group commits of a
    few requests: 5 rows, then 12, then 3) would otherwise never line up `count` of one tier; a run
    never reaches more than one tier down, so a large fragment is not rewritten for a few tiny ones.
    """
    frags = manifest.fragments
    tiers = [tier(f, count) for f in frags]
    top = max((t for t in tiers if t is not None), default=None)
    used = [False] * len(frags)
    runs: list[list[int]] = []
    for level in range(top + 1 if top is not None else 0):
        current: list[int] = []
        for i in range(len(frags) + 1):
            here = tiers[i] if i < len(frags) else None
            if here is not None and not used[i] and level - 1 <= here <= level:
                current.append(i)
                continue
            if len(current) >= count and any(tiers[j] == level for j in current):
                runs.append(current)
                for j in current:
                    used[j] = True
            current = []
    return [[frags[i] for i in run] for run in sorted(runs)]


def commit_compaction(snap: Snapshot, log: VersionLog, runs: list[list[Fragment]], operation: str) -> Manifest:
    """Rewrite each run of `snap` as one fragment (row ids kept) and commit the swap on top of newer commits."""
    base = snap.manifest
    rewritten = [rewrite_run(snap.root, snap, run) for run in runs]

    def rebase(latest: Manifest) -> Manifest:
        tx.require_same_schema(operation, base, latest)
        for run in rewritten:
            latest = tx.replace_fragments(operation, base, latest, run.fragment_ids, run.new)
        return latest

    merged = sum(len(r.fragment_ids) for r in rewritten)
    return tx.commit(log, base, operation, rebase, {"fragments_merged": merged})


def due_indexes(view: IndexedSnapshot, policy: Upkeep) -> list[IndexEntry]:
    """The indexes of `view` that miss or hold dead enough rows to be merged now."""
    out = []
    for entry in view.entries():
        cov = view.coverage(entry)
        changed = len(cov.unindexed) + len(cov.dead)
        if changed and changed >= max(policy.merge_rows, policy.merge_share * entry.rows):
            out.append(entry)
    return out


BACKGROUND_THREADS = 1
"""Native threads a background merge inserts with: one, so the serving threads (an event loop, searches)
keep the other cores; all cores would leave them waiting for a CPU while the merge runs."""


def run_upkeep(table: Writable, policy: Upkeep, threads: int = -1) -> list[Manifest]:
    """Compact the small-fragment runs and merge the due indexes of `table`'s newest version, now (HNSW
    merges insert with `threads` native threads, -1: one per core)."""
    commits = []
    for _ in range(int(math.log(SMALL_ROWS, policy.tier_fragments)) + 1):  # a merged run may complete the next tier
        view = table.view()
        runs = plan_tiers(view.snapshot.manifest, policy.tier_fragments)
        if not runs:
            break
        commits.append(commit_compaction(view.snapshot, table.log, runs, "compact"))
    view = table.view()
    for entry in due_indexes(view, policy):
        commits.append(optimize_index(table, entry, wants_rebuild(entry, view.coverage(entry)), threads))
    return commits


class UpkeepWorker:
    """Runs :func:`run_upkeep` in one background thread per table object, one job at a time; a job
    that writes came in during looks again when it ends (what they made due is done, not left to the
    next write)."""

    def __init__(self, policy: Upkeep) -> None:
        self.policy = policy
        self._pool: ThreadPoolExecutor | None = None
        self._job: Future[None] | None = None
        self._again = False
        self._lock = threading.Lock()

    def after_write(self, table: Writable) -> bool:
        """Start upkeep in the background if some is due and none is running; True when started."""
        if not self.policy.enabled:
            return False
        with self._lock:
            if self._job is not None:  # running: it looks again when it ends
                self._again = True
                return False
            view = table.view()
            due = plan_tiers(view.snapshot.manifest, self.policy.tier_fragments) or due_indexes(view, self.policy)
            if not due:
                return False
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="hybrid-upkeep")
            self._job = self._pool.submit(self._run, table)
            return True

    def _run(self, table: Writable) -> None:
        done = False
        try:
            while not done:
                _guarded(table, self.policy)
                with self._lock:
                    done, self._again = not self._again, False
                    if done:
                        self._job = None  # under the lock: a write from now on starts a new job
        finally:
            if not done:  # an error _guarded lets through: the next write starts afresh
                with self._lock:
                    self._job = None

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running job (if any) has finished, with the looks again it took."""
        job = self._job
        if job is not None:
            job.result(timeout)


@contextmanager
def upkeep_lock(root: Path) -> Iterator[bool]:
    """Try to become the one process running background upkeep of the table at `root`; yields whether it did.

    An advisory ``flock`` on a file in the table folder: the kernel drops it when its holder exits or is
    killed, so a dead worker never blocks the others. Without ``fcntl`` (Windows) every process may run.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield True
        return
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the descriptor below releases the lock
    finally:
        os.close(fd)


def _guarded(table: Writable, policy: Upkeep) -> None:
    try:
        with upkeep_lock(table.root) as mine:
            if mine:
                run_upkeep(table, policy, BACKGROUND_THREADS)
            else:
                logger.debug("upkeep of %s left to the process that runs it now", table.name)
    except CommitConflictError as exc:  # another writer got there first: the next write tries again
        logger.info("upkeep of %s skipped: %s", table.name, exc)
    except Exception:  # a background step never raises into nobody's hands
        logger.warning("upkeep of %s failed; the table is unchanged by it", table.name, exc_info=True)
