"""The storage layer's one seam to the file system.

Every file a commit creates, every byte written to it, every ``fsync`` of a file or
folder, every link and rename, and every read of a table file goes through the
:class:`Disk` in use (:func:`current`). The default is the real file system; a
test swaps in one that fails at a chosen step (:func:`use`): ENOSPC or EIO on a
write or a sync, a torn write that lands only a prefix of its bytes, a read
error. That is how ``tests/storage/test_faults.py`` checks that a fault at any
step of any commit leaves every committed version readable and the next commit
working. Index folders are written by tantivy and hnswlib themselves, outside
this seam; a fault there fails the build before anything is committed.

A table of a database on an object store lives in a local mirror folder
(:mod:`hybrid.storage.remote`): there a link (publishing a manifest) is a conditional put
on the store, a replace also puts the new bytes, and a read of a file the mirror lacks
fetches it first. A local table never reaches that code (one empty-dict test).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from hybrid.storage import crypto, remote


class Disk:
    """The real file system."""

    def create(self, path: Path) -> BinaryIO:
        """A new file opened for binary writing; fails if `path` exists."""
        return open(path, "xb")  # noqa: SIM115 - the caller closes it

    def sync(self, fh: BinaryIO) -> None:
        """Flush `fh` and make its bytes durable."""
        if isinstance(fh, Sealed):  # written (and synced) whole when closed
            return
        fh.flush()
        os.fsync(fh.fileno())

    def sync_dir(self, path: Path) -> None:
        """Make the names in folder `path` durable (a new file survives a power cut)."""
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def link(self, source: Path, target: Path) -> None:
        """A second name for `source`; fails if `target` exists (on an object store: a conditional put)."""
        store = remote.lookup(target)
        if store is not None:
            store.publish(source, target)
            return
        os.link(source, target)

    def replace(self, source: Path, target: Path) -> None:
        """Rename `source` onto `target` atomically (on an object store: a put, then the local rename)."""
        store = remote.lookup(target)
        if store is not None:
            store.replace(source, target)
            return
        os.replace(source, target)

    def read_bytes(self, path: Path) -> bytes:
        fh: BinaryIO
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            fh = _fetched(path)
        with fh:
            return fh.read()

    def open_read(self, path: Path) -> BinaryIO:
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            return _fetched(path)


def _fetched(path: Path) -> BinaryIO:
    """`path` opened after fetching it from the object store its mirror follows; FileNotFoundError if
    it is a local table's file or the store has none."""
    store = remote.lookup(path)
    if store is None or not store.fetch(path):
        raise FileNotFoundError(2, "No such file or directory", str(path))
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


_disk = Disk()


def current() -> Disk:
    """The disk in use."""
    return _disk


@contextmanager
def use(disk: Disk) -> Iterator[Disk]:
    """Route the storage layer's file operations through `disk` for the duration of the block."""
    global _disk
    before, _disk = _disk, disk
    try:
        yield disk
    finally:
        _disk = before


def write_new(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Create `path` holding `data` (encrypted under an encrypted database), durably unless `sync` is False
    (the caller then syncs it, see :mod:`hybrid.storage.flushes`; the folder is synced by the caller)."""
    _write_raw(path, crypto.encode(path, data), sync)


def _write_raw(path: Path, data: bytes, sync: bool = True) -> None:
    disk = current()
    with disk.create(path) as fh:
        fh.write(data)
        if sync:
            disk.sync(fh)


class Sealed(io.BytesIO):
    """A new file of an encrypted database: its bytes are buffered, then encrypted and written durably
    on close (AES-GCM encrypts a message whole)."""

    def __init__(self, path: Path, cipher: crypto.Keyring) -> None:
        super().__init__()
        self._path = path
        self._cipher = cipher

    def fileno(self) -> int:
        raise io.UnsupportedOperation("an encrypted file is written when closed")

    def close(self) -> None:
        if not self.closed:
            data = self._cipher.encrypt(self.getbuffer())
            super().close()
            _write_raw(self._path, data)


def open_new(path: Path) -> BinaryIO:
    """A new file opened for binary writing (fails if `path` exists when written); under an encrypted
    database its bytes are encrypted when it is closed."""
    cipher = crypto.cipher_for(path)
    return current().create(path) if cipher is None else Sealed(path, cipher)


def read_plain(path: Path, rel: str = "") -> bytes | bytearray | memoryview:
    """The bytes of `path`, decrypted if the file is encrypted."""
    return crypto.decode(path, current().read_bytes(path), rel)
