"""Faults at every step of a commit: ENOSPC and torn writes, EIO on sync, link and rename, read errors.

Each write operation is run once on a counting disk to learn its steps (file
creations, writes, syncs, links, renames), then once per step on a copy of the
same table with a disk that fails at that step. After each fault: the error is
an OSError, the table opens, every committed version reads and searches, the
newest is either the old one unchanged or the new one complete, and the same
operation succeeds once the fault is gone.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybrid
from hybrid.storage import disk, pages

from .faulty_disk import Fault, FaultyDisk

DIM = 4
Op = Callable[[hybrid.Table], object]


def rows(start: int, n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(start)
    return [
        {"id": i, "text": f"note {i} about k{i % 5}", "v": rng.standard_normal(DIM).astype("float32").tolist()}
        for i in range(start, start + n)
    ]


OPS: dict[str, Op] = {
    "add": lambda t: t.add(rows(500, 20)),
    "delete": lambda t: t.delete("id % 7 = 0"),
    "update": lambda t: t.update("id < 30", values_sql={"text": "'changed'"}),
    "merge_insert": lambda t: t.merge_insert(rows(90, 20), on="id"),
    "add_columns": lambda t: t.add_columns({"twice": "id * 2"}),
    "compact": lambda t: t.compact(),
    "optimize": lambda t: t.optimize(),
    "restore": lambda t: t.restore(2),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table whose every operation above has work to do: 5 fragments, indexes, unindexed rows."""
    root = tmp_path_factory.mktemp("faults")
    t = hybrid.connect(root, upkeep=None).create_table("docs", rows(0, 100))
    t.create_fts_index(["text"])
    t.create_vector_index("v")
    for start in (100, 110, 120, 130):
        t.add(rows(start, 10))
    t.delete("id = 3")
    return root


def state(t: hybrid.Table) -> tuple[int, list[str]]:
    data = t.to_arrow()
    return t.version, sorted(map(str, data.to_pylist()))


def assert_whole(root: Path, before: tuple[int, list[str]], after: tuple[int, list[str]], label: str) -> None:
    """The table opens; every version reads and searches; the newest holds the old or the new rows (an
    operation of several commits, such as optimize, may stop between them)."""
    pages.clear_cache()
    t = hybrid.connect(root, upkeep=None).open_table("docs")
    now = state(t)
    assert before[0] <= now[0] <= after[0], f"{label}: newest version {now[0]} outside {before[0]}..{after[0]}"
    assert now[1] in (before[1], after[1]), f"{label}: version {now[0]} holds neither the old nor the new rows"
    for info in t.versions():
        old = t.checkout(info.version)
        assert old.count_rows() == info.num_rows == len(old.to_arrow()), label
    assert t.search("note").limit(3).to_list(), label
    assert t.search(np.ones(DIM, dtype=np.float32), vector_column="v").limit(3).to_list(), label


def fresh_copy(template: Path, dest: Path) -> hybrid.Table:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(template, dest)
    pages.clear_cache()
    return hybrid.connect(dest, upkeep=None).open_table("docs")


@pytest.mark.parametrize("name", sorted(OPS))
def test_a_fault_at_any_step_of_a_commit_loses_nothing(template: Path, tmp_path: Path, name: str) -> None:
    op = OPS[name]
    counting = FaultyDisk()
    t = fresh_copy(template, tmp_path / "count")
    before = state(t)
    with disk.use(counting):
        op(t)
    after = state(t)
    steps = counting.steps
    assert steps and "link" in steps, f"{name} made no commit through the disk seam: {steps}"
    for k in range(1, len(steps) + 1):
        label = f"{name}, fault at step {k} of {len(steps)} ({steps[k - 1]})"
        t = fresh_copy(template, tmp_path / "run")
        try:
            with disk.use(FaultyDisk(fail_at=k)):
                op(t)
        except OSError as exc:
            assert isinstance(exc, Fault) and "injected" in str(exc), label
        else:  # only the folder sync after a manifest is linked is absorbed: that commit is visible already
            assert steps[k - 1] == "sync_dir" and steps[k - 2] == "link", f"{label}: no error"
            assert state(t) == after, label
        assert_whole(tmp_path / "run", before, after, label)
        t = hybrid.connect(tmp_path / "run", upkeep=None).open_table("docs")
        if t.version == before[0]:  # the fault is gone: the same operation now commits
            op(t)
            assert state(t)[1] == after[1], label


def test_read_errors_are_errors_and_leave_nothing_behind(template: Path, tmp_path: Path) -> None:
    t = fresh_copy(template, tmp_path / "run")
    want = state(t)
    counting = FaultyDisk(reads=True)
    with disk.use(counting):
        state(fresh_copy(template, tmp_path / "run"))
    reads = counting.steps.count("read")
    assert reads >= 3
    for k in range(1, reads + 1):
        t = fresh_copy(template, tmp_path / "run")
        with disk.use(FaultyDisk(fail_at=k, reads=True)), pytest.raises(OSError, match="injected EIO"):
            state(t)
        assert state(t) == want, f"read fault {k} was remembered by the table object"


def test_a_version_whose_manifest_is_gone_is_reported_and_the_rest_reads(template: Path, tmp_path: Path) -> None:
    t = fresh_copy(template, tmp_path / "run")
    (t.path / "_versions" / "4.json").unlink()
    t = hybrid.connect(tmp_path / "run", upkeep=None).open_table("docs")
    with pytest.raises(hybrid.VersionNotFoundError, match="version 4 does not exist"):
        t.checkout(4)
    assert [v.version for v in t.versions()] == [1, 2, 3, 5, 6, 7, 8]
    assert t.checkout(5).count_rows() == 120 and t.count_rows() == 139
    assert t.check(all_versions=True).ok
    assert t.add(rows(900, 1)).version == 9


def test_a_clock_that_goes_backwards_changes_no_version_order(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt
    import time

    t = fresh_copy(template, tmp_path / "run")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 86_400 * 365)  # a year back
    t.add(rows(700, 5))
    monkeypatch.setattr(time, "time", real)
    assert t.count_rows() == 144 and t.versions()[-1].version == t.version
    t.cleanup(older_than=dt.timedelta(days=30))  # the newest version is older than that by its clock
    assert t.count_rows() == 144 and hybrid.connect(tmp_path / "run").open_table("docs").count_rows() == 144


def test_compact_plans_again_when_another_writer_changed_its_fragments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hybrid.table as table_module

    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", rows(0, 10))
    for start in range(10, 50, 10):
        t.add(rows(start, 10))
    other = hybrid.connect(tmp_path, upkeep=None).open_table("docs")
    real = table_module.commit_compaction
    calls: list[int] = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # another writer deletes from the same fragments first
            other.delete("id % 10 = 1")
        return real(*args, **kwargs)

    monkeypatch.setattr(table_module, "commit_compaction", racing)
    done = t.compact()
    assert len(calls) == 2 and done.operation == "compact"
    assert sorted(t.to_arrow(["id"]).column("id").to_pylist()) == [i for i in range(50) if i % 10 != 1]
    assert len(t.snapshot().manifest.fragments) == 1
