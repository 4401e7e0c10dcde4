"""Index folders of an encrypted database: encrypted at rest, decrypted into a private copy to be read.

tantivy and hnswlib read (and memory-map) their files from a folder themselves, so they
cannot be handed decrypted buffers. Under an encrypted database (:mod:`hybrid.storage.crypto`)
every file of an index folder is therefore encrypted in place once the index is built
(:func:`seal`, before its checksums are taken: checksums are of the plaintext), and a
process that loads the index decrypts the folder once into a private copy (:func:`readable`):
a folder made by ``mkdtemp`` (mode 0700) in ``/dev/shm`` where that exists (memory, never
written to a disk), else in the system's temporary folder. Copies are removed at exit and
when an erasure purges the table.

The trade-off, stated plainly: while a process has an index loaded, its plaintext exists
outside the database folder (in memory-backed ``/dev/shm`` on Linux), readable by the same
OS user; and an index is written in plaintext into the table folder by the library that
builds it, then replaced by its ciphertext before the commit that lists it (the plaintext
blocks may linger on the device until overwritten).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path

from hybrid.storage import crypto, remote

_copies: dict[str, Path] = {}
_lock = threading.Lock()


def _private_dir() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def readable(root: Path, rel: str) -> Path:
    """A folder holding the plaintext of the index folder `rel` of the table at `root`."""
    folder = root / rel
    store = remote.lookup(root)
    if store is not None:  # a table on an object store: the index files are read from the local cache
        store.ensure_folder(folder)
    if crypto.cipher_for(root) is None:
        return folder
    key = os.path.abspath(folder)
    with _lock:
        hit = _copies.get(key)
    if hit is not None and hit.is_dir():
        return hit
    target = Path(tempfile.mkdtemp(prefix="hybrid-index-", dir=_private_dir()))
    try:
        for file in sorted(folder.rglob("*")):
            if not file.is_file():
                continue
            dest = target / file.relative_to(folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(crypto.decode(file, file.read_bytes(), f"{rel}/{file.relative_to(folder).as_posix()}"))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    with _lock:
        _copies[key] = target
    return target


def seal(folder: Path) -> None:
    """Encrypt every file of a freshly built index folder in place (nothing when the database is not encrypted)."""
    cipher = crypto.cipher_for(folder)
    if cipher is None:
        return
    for file in sorted(folder.rglob("*")):
        if not file.is_file() or file.name.endswith(".lock"):
            continue
        data = file.read_bytes()
        if data[: len(crypto.MAGIC)] == crypto.MAGIC:
            continue
        tmp = file.with_name(f".{file.name}.sealing")
        with open(tmp, "xb") as fh:
            fh.write(cipher.encrypt(data))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, file)


def purge(root: Path) -> None:
    """Remove the decrypted copies of the index folders of the table at `root` (an erasure calls it)."""
    prefix = os.path.join(os.path.abspath(root), "")
    with _lock:
        gone = [k for k in _copies if k.startswith(prefix)]
        paths = [_copies.pop(k) for k in gone]
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


@atexit.register
def _remove_all() -> None:
    with _lock:
        paths = list(_copies.values())
        _copies.clear()
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
