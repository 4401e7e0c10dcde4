"""Checksums of every file a commit writes: damage is an error naming the file, never wrong rows.

The hash is xxh3-64 from the `xxhash` package (tens of GB/s, so hashing costs
far less than the write it guards); a digest is 16 hex digits. Where it lives:

- data, row-id and deletion files and fragment pages carry the digest of their
  bytes in their name (``data/<uuid>-<digest>.arrow``), so every manifest or page
  that refers to a file also records its checksum. A process verifies such a
  file the first time it opens it.
- an index folder's files and their digests are listed in the index entry
  (``checksums``), verified when a process loads the index.
- a manifest ends with the digest of its text before that field
  (``...,"checksum":"<digest>"}``), verified on every read.

Files written before checksums existed have none; ``hybrid check`` reports them
as unverified rather than guessing.
"""

from __future__ import annotations

import io
import mmap
import re
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import xxhash

from hybrid.errors import CorruptionError
from hybrid.storage import crypto, disk, remote

ALGORITHM = "xxh3_64"
_NAMED = re.compile(r"-([0-9a-f]{16})\.[A-Za-z0-9]+$")
_SEAL = re.compile(r',"checksum":"([0-9a-f]{16})"\}\s*$')
_CHUNK = 1 << 22


MAPPED_BLOCK = 64 << 20
"""Bytes of a memory-mapped file hashed at a time before their pages are released (:func:`digest_mapped`)."""


def digest_bytes(data: bytes | bytearray | memoryview) -> str:
    """The digest of a buffer."""
    return xxhash.xxh3_64(data).hexdigest()


def digest_mapped(mapped: mmap.mmap) -> str:
    """The digest of a memory-mapped file, hashed ``MAPPED_BLOCK`` bytes at a time, each block's pages
    released from the process once hashed (``MADV_DONTNEED``: they stay in the page cache). Hashing the
    whole map at once held every page of the file in the process at the end: a 1,000,000 x 384 table's
    1.48 GB data file raised a search process's peak RSS from ~0.3 to 1.8 GB the first time it opened it."""
    h = xxhash.xxh3_64()
    view = memoryview(mapped)
    release = hasattr(mapped, "madvise") and hasattr(mmap, "MADV_DONTNEED")
    try:
        for start in range(0, len(view), MAPPED_BLOCK):
            block = view[start : start + MAPPED_BLOCK]
            h.update(block)
            block.release()
            if release:
                mapped.madvise(mmap.MADV_DONTNEED, start, min(MAPPED_BLOCK, len(view) - start))
    finally:
        view.release()
    return h.hexdigest()


def digest_file(path: Path) -> str:
    """The digest of a file's bytes (its plaintext, if it is encrypted), read in chunks."""
    h = xxhash.xxh3_64()
    with open(path, "rb") as fh:
        if fh.read(len(crypto.MAGIC)) == crypto.MAGIC:
            fh.seek(0)
            return digest_bytes(crypto.decode(path, fh.read(), path.name))
        fh.seek(0)
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class HashingSink(io.RawIOBase):
    """A write-only file that hashes what passes through it on the way to `target`."""

    def __init__(self, target: BinaryIO) -> None:
        super().__init__()
        self._target = target
        self._hash = xxhash.xxh3_64()
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._hash.update(data)
        self._written += len(data)
        return self._target.write(data)

    def tell(self) -> int:
        return self._written

    def digest(self) -> str:
        return self._hash.hexdigest()


def with_digest(rel: str, digest: str) -> str:
    """`rel` renamed to carry `digest`: ``data/ab12.arrow`` -> ``data/ab12-<digest>.arrow``."""
    stem, dot, ext = rel.rpartition(".")
    return f"{stem}-{digest}{dot}{ext}"


def digest_in_name(rel: str) -> str | None:
    """The digest a file's name carries, or None for a file written before checksums."""
    found = _NAMED.search(rel)
    return found.group(1) if found else None


def publish_named(root: Path, rel: str, digest: str) -> str:
    """Rename the written file `rel` to carry its digest; return the new relative name.

    The caller syncs the folder afterwards, as it does for any new file name.
    """
    named = with_digest(rel, digest)
    disk.current().replace(root / rel, root / named)
    return named


def verify_named(root: Path, rel: str, data: bytes | bytearray | memoryview | mmap.mmap | None = None) -> None:
    """Raise :class:`CorruptionError` unless the file's bytes (or `data`, already read) match its name."""
    expected = digest_in_name(rel)
    if expected is None:
        return
    try:
        if isinstance(data, mmap.mmap):
            found = digest_mapped(data)
        else:
            found = digest_bytes(data) if data is not None else digest_file(root / rel)
    except FileNotFoundError:
        raise CorruptionError(f"{rel} of table {root.name} is missing", rel, "missing") from None
    if found != expected:
        raise CorruptionError(damaged(root, rel, expected, found), rel)


def damaged(root: Path, rel: str, expected: str, found: str) -> str:
    return f"{rel} of table {root.name} is damaged: its checksum is {found}, it was written as {expected}"


def folder_digests(folder: Path) -> dict[str, str]:
    """Digest of every regular file under `folder`, by path relative to it (posix separators)."""
    return {
        p.relative_to(folder).as_posix(): digest_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def verify_folder(root: Path, rel: str, digests: Mapping[str, str]) -> None:
    """Raise :class:`CorruptionError` naming the first file of folder `rel` that is missing or damaged."""
    store = remote.lookup(root)
    if store is not None:  # a table on an object store: bring the folder into the local cache first
        store.ensure_folder(root / rel, digests)
    for name, expected in digests.items():
        path = f"{rel}/{name}"
        try:
            found = digest_file(root / path)
        except FileNotFoundError:
            raise CorruptionError(f"{path} of table {root.name} is missing", path, "missing") from None
        if found != expected:
            raise CorruptionError(damaged(root, path, expected, found), path)


def seal(text: str) -> str:
    """A JSON object's text with its checksum appended as the last field."""
    if not text.endswith("}"):
        raise ValueError("seal() takes the text of one JSON object")
    return f'{text[:-1]},"checksum":"{digest_bytes(text.encode())}"}}'


def unseal(text: str, rel: str, root: Path) -> str:
    """The text `seal` was given, after checking its checksum; unsealed text (older files) passes as is."""
    found = _SEAL.search(text)
    if found is None:
        return text
    body = text[: found.start()] + "}"
    actual = digest_bytes(body.encode())
    if actual != found.group(1):
        raise CorruptionError(damaged(root, rel, found.group(1), actual), rel)
    return body
