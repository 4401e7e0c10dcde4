"""Crash safety: a writer killed with SIGKILL at random moments never corrupts the table.

A child process writes to one table in a loop (add, delete, update,
merge_insert, and now and then add_columns and compact). Every row's content
is a pure function of its `id`, its `val` and the number of `x<j>` columns, so
a table version is fully described by ``{id: val}`` plus that column count.
Before each write the child appends an *intent* record (the base version, the
operation and the state it expects afterwards) to an fsynced, append-only log;
after the write returns it appends a *commit* record with the version it got.

The parent kills the child with SIGKILL 5-150 ms after it is ready to write,
then checks that the table opens and reads, that nothing committed was lost,
that the newest version is exactly a committed state (the last logged commit,
or the pending intent when the kill landed between publishing the manifest and
logging it; the child sometimes dawdles there to make that likelier), that
every version in the history reads back with exactly the content logged for
it, and that every published manifest parses. The same table is reused for
every kill, and the next child starts from whatever the crash left behind.
Children are forked from a forkserver that has already imported `hybrid`, so
a restart costs milliseconds rather than a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import hybrid
from hybrid.storage import disk
from hybrid.storage.versions import VersionLog

from .faulty_disk import Fault, FaultyDisk

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")

TABLE = "crash"
INITIAL_ROWS = 100
KILL_DELAY_S = (0.005, 0.150)

# -- what the rows of a version look like ---------------------------------------------------


def make_row(i: int, val: int, ncols: int) -> dict[str, Any]:
    """The only row `id` = i with value `val` that the writer ever stores (with `ncols` x-columns)."""
    row: dict[str, Any] = {"id": i, "val": val, "text": f"doc {i}"}
    for j in range(1, ncols + 1):
        row[f"x{j}"] = i * j
    return row


def digest(state: dict[int, int], ncols: int) -> str:
    payload = json.dumps([sorted(state.items()), ncols]).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def assert_content(table: pa.Table, state: dict[int, int], ncols: int, what: str) -> None:
    """`table` holds exactly the rows of `state` (each once) with the right derived columns."""
    expected_columns = ["id", "val", "text"] + [f"x{j}" for j in range(1, ncols + 1)]
    assert table.column_names == expected_columns, f"{what}: columns {table.column_names} != {expected_columns}"
    data = table.to_pydict()
    ids = data["id"]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    assert not dupes, f"{what}: ids appear more than once: {dupes[:10]}"
    actual = dict(zip(ids, data["val"], strict=True))
    if actual != state:
        missing = sorted(set(state) - set(actual))[:10]
        extra = sorted(set(actual) - set(state))[:10]
        changed = sorted(i for i in set(state) & set(actual) if state[i] != actual[i])[:10]
        pytest.fail(f"{what}: content differs: missing ids {missing}, extra ids {extra}, wrong val for {changed}")
    assert data["text"] == [f"doc {i}" for i in ids], f"{what}: wrong text column"
    for j in range(1, ncols + 1):
        assert data[f"x{j}"] == [i * j for i in ids], f"{what}: wrong x{j} column"


# -- the child: writes forever, logging intents and commits --------------------------------


def _append_record(fd: int, record: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(record) + "\n").encode())
    os.fsync(fd)


def crash_child(db_path: str, log_path: str, err_path: str, seed: int, ready: Any, faults: float = 0.0) -> None:
    """Process entry point; any exception is written to `err_path` and exits 3 (the parent fails).

    With `faults` > 0 every step of the storage layer's disk I/O fails with that probability
    (ENOSPC with a torn write, or EIO): a write that fails so is logged as failed, and the
    next one must start from the version before it.
    """
    try:
        with disk.use(FaultyDisk(chance=faults, seed=seed) if faults else disk.current()):
            _write_forever(db_path, log_path, seed, ready)
    except BaseException:  # noqa: BLE001 - reported to the parent through err_path
        Path(err_path).write_text(traceback.format_exc())
        os._exit(3)


def _write_forever(db_path: str, log_path: str, seed: int, ready: Any) -> None:
    t = hybrid.connect(db_path, upkeep=None).open_table(TABLE)  # the sole writer: versions are counted
    version = t.version
    data = t.to_arrow(["id", "val"]).to_pydict()
    state = dict(zip(data["id"], data["val"], strict=True))
    ncols = sum(1 for n in t.schema.names if n.startswith("x"))
    t.count_rows("id < 0")  # start this process's DuckDB before the parent's clock runs
    rng = random.Random(seed)
    fresh = iter(range(seed * 1_000_000, (seed + 1) * 1_000_000))  # ids never used before
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    ready.set()
    while True:
        op, new, new_ncols, write = _next_write(t, rng, state, ncols, fresh)
        d = digest(new, new_ncols)
        intent = {"kind": "intent", "base": version, "op": op, "state": sorted(new.items()), "ncols": new_ncols}
        _append_record(fd, {**intent, "digest": d})
        try:
            result = write()
        except Fault:
            latest = t.checkout_latest().version
            if latest != version:
                raise AssertionError(f"{op} failed by an injected fault, yet version {latest} is newer") from None
            _append_record(fd, {"kind": "failed", "digest": d})
            continue
        noop = op in ("compact", "merge_index") and result.version == version
        if not noop and result.version != version + 1:
            raise AssertionError(f"sole writer got version {result.version} on top of {version}: {result}")
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0, 0.01))  # widen the window "published but not yet acknowledged"
        _append_record(fd, {"kind": "commit", "version": result.version, "digest": d})
        version, state, ncols = result.version, new, new_ncols


def _next_write(
    t: hybrid.Table, rng: random.Random, state: dict[int, int], ncols: int, fresh: Iterator[int]
) -> tuple[str, dict[int, int], int, Callable[[], hybrid.Commit]]:
    """Pick a write: (operation as versions() names it, state after it, x-column count after it, the write)."""
    new = dict(state)
    r = rng.random()
    # Filters cost a few ms per fragment: compact before a sole writer's writes outgrow the kill window.
    if len(t.snapshot().manifest.fragments) > 12:
        r = 0.99
    if r < 0.94 and (len(state) < 40 or r < 0.28):
        ids = [next(fresh) for _ in range(rng.randint(1, 8))]
        new.update((i, rng.randrange(1 << 40)) for i in ids)
        return "append", new, ncols, lambda: t.add([make_row(i, new[i], ncols) for i in ids])
    if r < 0.48 or (r < 0.94 and len(state) > 250):
        ids = rng.sample(sorted(state), rng.randint(1, 6 if len(state) < 200 else 30))
        for i in ids:
            del new[i]
        return "delete", new, ncols, lambda: t.delete(f"id IN ({', '.join(map(str, ids))})")
    if r < 0.68:
        ids = rng.sample(sorted(state), rng.randint(1, 3))
        val = rng.randrange(1 << 40)
        new.update((i, val) for i in ids)
        return "update", new, ncols, lambda: t.update(f"id IN ({', '.join(map(str, ids))})", values={"val": val})
    if r < 0.90:
        ids = rng.sample(sorted(state), rng.randint(0, 3)) + [next(fresh) for _ in range(rng.randint(1, 2))]
        new.update((i, rng.randrange(1 << 40)) for i in ids)
        return "merge_insert", new, ncols, lambda: t.merge_insert([make_row(i, new[i], ncols) for i in ids], on="id")
    if r < 0.94 and ncols < 6:
        j = ncols + 1
        return "add_columns", new, j, lambda: t.add_columns({f"x{j}": f"id * {j}"})
    if r < 0.96:
        return "create_index", new, ncols, lambda: t.create_fts_index("text", replace=True)
    if r < 0.98 and any(s["kind"] == "fts" for s in t.index_stats()):
        return "merge_index", new, ncols, lambda: _newest(t.optimize(), t)
    return "compact", new, ncols, t.compact


def _newest(commits: list[hybrid.Commit], t: hybrid.Table) -> hybrid.Commit:
    """The last of `commits`, or the current version when there were none (nothing to merge)."""
    return commits[-1] if commits else hybrid.Commit(t.version, "none")


# -- the parent: kill, then check everything ------------------------------------------------


@dataclass
class Expected:
    state: dict[int, int]
    ncols: int
    op: str
    digest: str


@dataclass
class CrashChecker:
    """Keeps the log's meaning (version -> expected content) and checks the table after each kill."""

    db_path: Path
    log_path: Path
    known: dict[int, Expected] = field(default_factory=dict)
    pending: dict[str, Any] | None = None
    offset: int = 0
    verified: set[int] = field(default_factory=set)
    manifests_seen: set[str] = field(default_factory=set)
    stray_tmp_files: int = 0
    kills_mid_write: int = 0  # the child had logged an intent but not its commit
    kills_after_publish: int = 0  # ... and the new version was already published
    failed_writes: int = 0  # writes stopped by an injected disk fault (logged by the child)

    def read_log(self) -> None:
        """Fold new log records into `known`; drop a torn last line (the kill hit its write)."""
        with open(self.log_path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        if end < len(chunk):
            os.truncate(self.log_path, self.offset + end)  # the next child appends after whole lines
        self.offset += end
        for line in chunk[:end].splitlines():
            rec = json.loads(line)
            if rec["kind"] == "intent":
                assert rec["base"] == max(self.known), f"child wrote on top of {rec['base']}, not the newest version"
                self.pending = rec
                continue
            if rec["kind"] == "failed":
                assert self.pending is not None and self.pending["digest"] == rec["digest"], f"failed {rec}"
                self.failed_writes += 1
                self.pending = None
                continue
            assert self.pending is not None and self.pending["digest"] == rec["digest"], f"commit without intent {rec}"
            v = rec["version"]
            if v in self.known:  # compact or optimize with nothing to do
                assert v == self.pending["base"] and self.known[v].digest == rec["digest"]
            else:
                assert v == self.pending["base"] + 1
                self.known[v] = self._expected(self.pending)
            self.pending = None

    @staticmethod
    def _expected(rec: dict[str, Any]) -> Expected:
        return Expected(dict(map(tuple, rec["state"])), rec["ncols"], rec["op"], rec["digest"])

    def check_after_kill(self, reread_all: bool = False) -> None:
        """Check the table after a kill: new versions always, every old version again if `reread_all`."""
        if reread_all:
            self.verified.clear()
        self.read_log()
        last_logged = max(self.known)
        table = hybrid.connect(self.db_path).open_table(TABLE)
        newest = table.version
        assert newest >= last_logged, f"committed version {last_logged} was lost: the table is at {newest}"
        self.kills_mid_write += self.pending is not None
        if newest > last_logged:
            self.kills_after_publish += 1
            # Killed after publishing the manifest, before logging it: it must be the pending intent.
            assert self.pending is not None and newest == self.pending["base"] + 1 == last_logged + 1, (
                f"table is at version {newest} but the log knows only up to {last_logged} (pending: {self.pending})"
            )
            self.known[newest] = self._expected(self.pending)
        self.pending = None
        self.check_manifest_files(newest)

        expected = self.known[newest]
        assert table.count_rows() == len(expected.state)
        assert_content(table.to_arrow(), expected.state, expected.ncols, f"newest version {newest}")

        infos = table.versions()
        assert [i.version for i in infos] == list(range(1, newest + 1))
        for info in infos:
            if info.version not in self.verified:
                self.check_version(table, info)

    def check_version(self, table: hybrid.Table, info: hybrid.VersionInfo) -> None:
        exp = self.known[info.version]
        assert info.operation == exp.op, f"version {info.version}: operation {info.operation}, logged {exp.op}"
        assert info.num_rows == len(exp.state), f"version {info.version}: num_rows {info.num_rows}"
        old = table.checkout(info.version)
        assert old.count_rows() == len(exp.state)
        assert_content(old.to_arrow(), exp.state, exp.ncols, f"version {info.version}")
        self.verified.add(info.version)

    def check_manifest_files(self, newest: int) -> None:
        """Every published manifest is whole; only temporary files may be left half-written."""
        folder = self.db_path / TABLE / "_versions"
        names = os.listdir(folder)
        tmp = [n for n in names if n.startswith(".tmp-")]
        published = [n for n in names if not n.startswith(".tmp-")]
        assert sorted(published) == sorted(f"{v}.json" for v in range(1, newest + 1)), "unexpected version files"
        self.stray_tmp_files = len(tmp)
        for name in published:
            if name in self.manifests_seen:
                continue  # published manifests are never rewritten; each was parsed when it appeared
            text = (folder / name).read_text()
            json.loads(text)
            # its checksum holds, and the pages it lists are whole too
            assert VersionLog(self.db_path / TABLE).load(int(name[:-5])).version == int(name[:-5])
            self.manifests_seen.add(name)

    def final_sweep(self) -> None:
        """Reread every version from scratch, then check the table still takes writes."""
        self.manifests_seen.clear()
        self.check_after_kill(reread_all=True)
        table = hybrid.connect(self.db_path).open_table(TABLE)
        newest, exp = table.version, self.known[table.version]
        extra = {-1: 1, -2: 2}
        assert table.add([make_row(i, v, exp.ncols) for i, v in extra.items()]).version == newest + 1
        assert table.compact().version == table.version
        assert_content(table.to_arrow(), {**exp.state, **extra}, exp.ncols, "after the final writes")


def _context() -> Any:
    """Fork children from a server that has already imported hybrid (fast restarts); spawn elsewhere."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["hybrid", __name__])
        return ctx
    return multiprocessing.get_context("spawn")


def run_crash_test(
    tmp_path: Path,
    kills: int,
    seed: int,
    faults: float = 0.0,
    delay: tuple[float, float] = KILL_DELAY_S,
    reread_every: int = 10,
    until: Callable[[CrashChecker], bool] | None = None,
) -> CrashChecker:
    """`kills` writers in turn, each killed after a random `delay`; the table is checked after each.
    `faults`: the chance that any disk step of a writer fails; `reread_every`: reread every version
    after this many kills (0: only at the end); `until`: go on past `kills` (up to three times as
    many, each writer given four times the delay) until it holds, so a slow machine, where fewer
    writes finish before their kill, still covers what the test asks for."""
    db_path = tmp_path / "db"
    db = hybrid.connect(db_path)
    db.create_table(TABLE, [make_row(i, 0, 0) for i in range(INITIAL_ROWS)])
    checker = CrashChecker(db_path, tmp_path / "commits.log")
    checker.log_path.touch()
    initial = {i: 0 for i in range(INITIAL_ROWS)}
    checker.known[1] = Expected(initial, 0, "create", digest(initial, 0))
    ctx = _context()
    rng = random.Random(seed)
    err_path = tmp_path / "child_error.txt"
    n = 0
    while n < kills or (until is not None and not until(checker) and n < 3 * kills):
        ready = ctx.Event()
        child = ctx.Process(
            target=crash_child,
            args=(str(db_path), str(checker.log_path), str(err_path), seed * 10_000 + n + 1, ready, faults),
        )
        child.start()
        started = False
        try:
            started = ready.wait(timeout=60)
            if started:
                time.sleep(rng.uniform(*delay) * (1 if n < kills else 4))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)  # not yet reaped, so the pid is still this child's
            child.join()
        if err_path.exists():
            pytest.fail(f"writer {n} failed before it was killed:\n{err_path.read_text()}")
        assert started, f"writer {n} never became ready (exit code {child.exitcode})"
        assert child.exitcode == -signal.SIGKILL, f"writer {n} exited with {child.exitcode}, not by SIGKILL"
        try:
            checker.check_after_kill(reread_all=bool(reread_every) and (n + 1) % reread_every == 0)
        except AssertionError as exc:
            raise AssertionError(f"after kill {n + 1} of {kills}: {exc}") from exc
        n += 1
    checker.final_sweep()
    # The writers must actually have made progress, or the test tests nothing.
    # the writers made progress (on a loaded machine some are killed before their first commit)
    assert max(checker.known) > kills // 2, f"only {max(checker.known)} versions after {n} kills"
    return checker


def _committed_ops(checker: CrashChecker) -> set[str]:
    return {e.op for e in checker.known.values()}


def test_sigkill_during_writes_never_corrupts_the_table(tmp_path: Path) -> None:
    needed = {"append", "delete", "update", "merge_insert"}
    checker = run_crash_test(tmp_path, kills=50, seed=1, until=lambda c: needed <= _committed_ops(c))
    assert needed <= _committed_ops(checker), _committed_ops(checker)
    assert checker.kills_mid_write > 0, "no kill landed inside a write"


@pytest.mark.slow
def test_sigkill_during_writes_never_corrupts_the_table_stress(tmp_path: Path) -> None:
    checker = run_crash_test(tmp_path, kills=300, seed=2)
    ops = {e.op for e in checker.known.values()}
    assert {"append", "delete", "update", "merge_insert", "add_columns", "compact"} <= ops, ops
    assert checker.kills_mid_write > 0 and checker.kills_after_publish > 0, checker.kills_after_publish


def test_kills_and_disk_faults_together_lose_nothing(tmp_path: Path) -> None:
    """The torture run of eval/torture.py with a small budget: kills, injected disk faults, index builds."""
    checker = run_crash_test(tmp_path, kills=12, seed=3, faults=0.02, delay=(0.2, 0.6))
    ops = {e.op for e in checker.known.values()}
    assert checker.failed_writes > 0, "no injected fault stopped a write"
    assert {"append", "delete"} <= ops, ops
