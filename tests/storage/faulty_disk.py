"""A disk (the storage layer's I/O seam, :mod:`hybrid.storage.disk`) that fails where a test says."""

from __future__ import annotations

import errno
import random
from pathlib import Path
from typing import Any, BinaryIO

from hybrid.storage.disk import Disk


class Fault(OSError):
    """What the faulty disk raises (an OSError with a real errno, so callers see what users would)."""


class FaultyDisk(Disk):
    """Counts steps; fails at step `fail_at`, or at each step with probability `chance`: a write lands
    half its bytes then ENOSPC, anything else EIO. `reads` counts (and fails) reads too."""

    def __init__(self, fail_at: int | None = None, reads: bool = False, chance: float = 0.0, seed: int = 0) -> None:
        self.fail_at = fail_at
        self.reads = reads
        self.chance = chance
        self.rng = random.Random(seed)
        self.steps: list[str] = []
        self.injected = 0

    def step(self, what: str) -> bool:
        self.steps.append(what)
        hit = len(self.steps) == self.fail_at or (self.chance > 0 and self.rng.random() < self.chance)
        self.injected += hit
        return hit

    def fail(self, what: str, code: int = errno.EIO) -> None:
        raise Fault(code, f"injected {errno.errorcode[code]} at step {len(self.steps)} ({what})")

    def create(self, path: Path) -> BinaryIO:
        if self.step("create"):
            self.fail("create")
        return FaultyFile(super().create(path), self)  # type: ignore[return-value]

    def sync(self, fh: BinaryIO) -> None:
        if self.step("sync"):
            self.fail("sync")
        super().sync(fh)

    def sync_dir(self, path: Path) -> None:
        if self.step("sync_dir"):
            self.fail("sync_dir")
        super().sync_dir(path)

    def link(self, source: Path, target: Path) -> None:
        if self.step("link"):
            self.fail("link")
        super().link(source, target)

    def replace(self, source: Path, target: Path) -> None:
        if self.step("replace"):
            self.fail("replace")
        super().replace(source, target)

    def read_bytes(self, path: Path) -> bytes:
        if self.reads and self.step("read"):
            self.fail("read")
        return super().read_bytes(path)

    def open_read(self, path: Path) -> BinaryIO:
        if self.reads and self.step("read"):
            self.fail("read")
        return super().open_read(path)


class FaultyFile:
    """A file whose writes count as steps; the failing write is torn (half its bytes land)."""

    def __init__(self, inner: BinaryIO, owner: FaultyDisk) -> None:
        self.inner, self.owner = inner, owner

    def write(self, data: Any) -> int:
        if self.owner.step("write"):
            view = memoryview(data).cast("B")
            self.inner.write(view[: len(view) // 2])
            self.owner.fail("write", errno.ENOSPC)
        return self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __enter__(self) -> FaultyFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()
