"""Files on disk: sizes, what a step wrote, the OS page cache, and the bytes read from storage."""

from __future__ import annotations

import os
from pathlib import Path

from bench.frame import proc_field


def dir_snapshot(path: Path) -> dict[str, tuple[int, int, int]]:
    snap = {}
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            try:
                st = os.stat(p)
            except FileNotFoundError:
                continue
            snap[p] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return snap


def dir_bytes(path: Path) -> int:
    return sum(v[0] for v in dir_snapshot(path).values())


def folder_bytes(paths: list[Path]) -> int:
    """Bytes of these folders and files together."""
    return sum(dir_bytes(p) if p.is_dir() else (p.stat().st_size if p.exists() else 0) for p in paths)


def written_bytes(before: dict, after: dict) -> int:
    """Bytes of files that are new or were changed between two snapshots."""
    return sum(v[0] for p, v in after.items() if before.get(p) != v)


def evict_page_cache(path: Path) -> None:
    os.sync()
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                fd = os.open(os.path.join(root, f), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def warm_page_cache(path: Path) -> int:
    """Read every file under `path` (into a reused buffer) so it sits in the
    page cache and counts as recently used."""
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                with open(os.path.join(root, f), "rb", buffering=0) as fh:
                    while True:
                        n = fh.readinto(view)
                        if not n:
                            break
                        total += n
            except OSError:
                continue
    return total


def disk_read_bytes() -> int:
    """Bytes this process (all threads) caused to be read from storage (/proc/self/io)."""
    return proc_field("/proc/self/io", "read_bytes:") or 0
