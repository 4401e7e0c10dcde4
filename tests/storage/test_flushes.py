"""A commit's syncs made together (hybrid.storage.flushes): the order crash safety needs, and nothing skipped.

A recording disk logs every sync, folder sync and link with the thread that made it. For a
single-row append: the data file, its folder and the manifest's bytes are each synced before the
manifest is linked, concurrently (so the disk's flushes overlap), and the versions folder after the
link. Outside a commit, files written for another process to publish are synced before the write
returns. A failing deferred sync publishes nothing; a forked child commits as its parent does.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pytest

import hybrid
from hybrid.storage import disk
from hybrid.storage.versions import VERSIONS_DIR
from hybrid.storage.writer import write_fragments

from .faulty_disk import Fault, FaultyDisk


class RecordingDisk(disk.Disk):
    """The real disk, logging (step, path, thread) of each sync, folder sync and link."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def _note(self, step: str, path: Path | str) -> None:
        with self._lock:
            self.log.append((step, str(path), threading.current_thread().name))

    def sync(self, fh: BinaryIO) -> None:
        super().sync(fh)
        self._note("sync", fh.name)

    def sync_dir(self, path: Path) -> None:
        super().sync_dir(path)
        self._note("sync_dir", path)

    def link(self, source: Path, target: Path) -> None:
        self._note("link", target)
        super().link(source, target)


def _table(tmp_path: Path) -> hybrid.Table:
    return hybrid.connect(tmp_path, upkeep=None).create_table("t", pa.table({"id": [0, 1], "text": ["a", "b"]}))


def test_an_append_syncs_what_its_manifest_lists_before_the_link_together_and_the_folder_after(tmp_path: Path) -> None:
    t = _table(tmp_path)
    files_before = set(t.snapshot().manifest.file_paths())
    recorder = RecordingDisk()
    with disk.use(recorder):
        t.add(pa.table({"id": [2], "text": ["c"]}))
    steps = [step for step, _, _ in recorder.log]
    assert steps.count("link") == 1, recorder.log
    at = steps.index("link")
    before, after = recorder.log[:at], recorder.log[at + 1 :]
    [data_file] = set(t.snapshot().manifest.file_paths()) - files_before
    synced = {(step, Path(path)) for step, path, _ in before}
    root = tmp_path / "t"
    assert ("sync", root / data_file) in synced, "the data file's bytes are durable before the link"
    assert ("sync_dir", root / "data") in synced, "the data file's name is durable before the link"
    assert any(step == "sync" and Path(path).parent == root / VERSIONS_DIR for step, path, _ in before), (
        "the manifest's bytes are durable before the link"
    )
    assert [(step, Path(path)) for step, path, _ in after] == [("sync_dir", root / VERSIONS_DIR)]
    assert len({thread for _, _, thread in before}) > 1, "the syncs before the link overlap (one thread each)"
    assert len(before) == 3, recorder.log  # no sync skipped, none added


def test_outside_a_commit_written_files_are_durable_when_the_write_returns(tmp_path: Path) -> None:
    """What the Ray sink relies on: its workers write fragments that another process publishes."""
    schema = pa.schema([("id", pa.int64())])
    recorder = RecordingDisk()
    with disk.use(recorder):
        [frag] = write_fragments(tmp_path, [pa.record_batch([pa.array([1, 2])], schema=schema)], schema, [0])
    assert {(step, Path(path)) for step, path, _ in recorder.log} == {
        ("sync", tmp_path / frag.files[0].path),
        ("sync_dir", tmp_path / "data"),
    }


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_a_failed_sync_at_the_flush_publishes_nothing_and_the_next_commit_works(tmp_path: Path, fail_at: int) -> None:
    t = _table(tmp_path)
    syncs = FaultyDisk()
    with disk.use(syncs):
        t.add(pa.table({"id": [2], "text": ["c"]}))
    sync_steps = [i + 1 for i, step in enumerate(syncs.steps) if step in ("sync", "sync_dir")]
    version = t.version
    faulty = FaultyDisk(fail_at=sync_steps[fail_at - 1])  # one of the three syncs made before the link
    with disk.use(faulty), pytest.raises(Fault):
        t.add(pa.table({"id": [3], "text": ["d"]}))
    assert "link" not in faulty.steps, "nothing is linked after a failed sync"
    assert t.version == version and sorted(t.to_arrow().column("id").to_pylist()) == [0, 1, 2]
    t.add(pa.table({"id": [4], "text": ["e"]}))
    assert sorted(t.to_arrow().column("id").to_pylist()) == [0, 1, 2, 4]


_FORK_SCRIPT = """
import multiprocessing, sys
import pyarrow as pa
import hybrid
from hybrid.storage import flushes

def append(root, queue):
    t = hybrid.connect(root, upkeep=None).open_table("t")
    t.add(pa.table({"id": [9], "text": ["forked"]}))
    queue.put(t.version)

if __name__ == "__main__":
    root = sys.argv[1]
    t = hybrid.connect(root, upkeep=None).create_table("t", pa.table({"id": [0, 1], "text": ["a", "b"]}))
    t.add(pa.table({"id": [2], "text": ["c"]}))  # the parent's flushing threads exist now
    assert flushes._pool is not None
    version = t.version
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=append, args=(root, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0, f"the child's commit hung or failed: exit code {child.exitcode}"
    assert queue.get(timeout=5) == version + 1 == t.version
    print("ok")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs fork")
def test_a_forked_child_commits_with_flushing_threads_of_its_own(tmp_path: Path) -> None:
    # In a fresh interpreter: forking the test process itself, which has loaded model runtimes with
    # threads of their own, can crash the child in code that is not ours.
    script = tmp_path / "fork_commit.py"
    script.write_text(_FORK_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "db")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
