"""Encryption at rest: AES-256-GCM (from the `cryptography` package) for a database's files.

A database opened with a key (``hybrid.connect(path, encryption_key=...)``, a key
provider callable, or the ``HYBRID_ENCRYPTION_KEY`` environment variable) registers a
:class:`Cipher` for its folder; the storage layer then encrypts every manifest, fragment
page, data, row-id and deletion file it writes under that folder, and decrypts what it
reads. The key is never stored: the folder keeps only a key id (an HMAC of a fixed
label under the key), so a wrong key is told apart from damage.

An encrypted file is ``MAGIC + key tag (8 bytes: the start of the key id) + nonce (12 bytes)
+ ciphertext + GCM tag (16 bytes)``; the key tag picks the key during a rotation. The
nonce is random per file (files are written once, so a key encrypts far fewer than the
2**32 messages random 96-bit nonces are safe for). GCM's tag authenticates every byte:
a flipped byte fails decryption, reported as :class:`CorruptionError` naming the file.
Checksums in file names are of the plaintext, verified after decryption.

Index folders (tantivy's and hnswlib's files, which those libraries read from disk
themselves) are *not* encrypted: see ``docs/data-protection.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Union

from hybrid.errors import CorruptionError, EncryptionError, require

MAGIC = b"HYBENC1\x00"
KEY_TAG = 8
NONCE = 12
HEADER = len(MAGIC) + KEY_TAG + NONCE
MARKER = "_encryption.json"
KEY_ENV = "HYBRID_ENCRYPTION_KEY"
KeySource = Union[bytes, str, Callable[[], bytes | str], "Keyring"]
"""Key bytes, 64 hex digits or base64, a callable giving one, or a :class:`Keyring` this process already opened."""


class Cipher:
    """AES-256-GCM with one key."""

    def __init__(self, key: bytes) -> None:
        aead: object = require("cryptography.hazmat.primitives.ciphers.aead", "encryption")
        self._aead = aead.AESGCM(key)  # type: ignore[attr-defined]
        self.key_id = key_id(key)
        self.tag = bytes.fromhex(self.key_id[: 2 * KEY_TAG])

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        nonce = os.urandom(NONCE)
        header = MAGIC + self.tag + nonce
        return header + self._aead.encrypt(nonce, bytes(data), header[: len(MAGIC) + KEY_TAG])

    def decrypt(self, data: bytes | bytearray | memoryview, rel: str) -> bytes:
        view = memoryview(data)
        nonce = bytes(view[len(MAGIC) + KEY_TAG : HEADER])
        try:
            return bytes(self._aead.decrypt(nonce, view[HEADER:], bytes(view[: len(MAGIC) + KEY_TAG])))
        except Exception as exc:  # cryptography's InvalidTag: damaged, tampered with, or another key
            raise CorruptionError(
                f"{rel} failed authentication (AES-GCM): the file is damaged or was tampered with", rel
            ) from exc


class Keyring:
    """The key a database writes with (`primary`) and, during a rotation, the one it wrote with before."""

    def __init__(self, primary: Cipher, previous: Cipher | None = None) -> None:
        self.primary = primary
        self.previous = previous
        self.key_id = primary.key_id
        self._by_tag = {c.tag: c for c in (previous, primary) if c is not None}

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        return self.primary.encrypt(data)

    def decrypt(self, data: bytes | bytearray | memoryview, rel: str) -> bytes:
        tag = bytes(memoryview(data)[len(MAGIC) : len(MAGIC) + KEY_TAG])
        cipher = self._by_tag.get(tag)
        if cipher is None:
            raise EncryptionError(f"{rel} was encrypted with another key (key id {tag.hex()}...)")
        return cipher.decrypt(data, rel)


def key_id(key: bytes) -> str:
    """A public fingerprint of `key` (HMAC-SHA256 of a fixed label): tells a wrong key, reveals nothing."""
    return hmac.new(key, b"hybridsearch key id", hashlib.sha256).hexdigest()[:32]


def parse_key(source: KeySource) -> bytes:
    """The 32 key bytes of `source`: bytes, a 64-hex-digit or base64 string, or a callable returning one."""
    value = source() if callable(source) else source
    if isinstance(value, str):
        text = value.strip()
        try:
            value = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
        except ValueError:
            raise EncryptionError("an encryption key string must be 64 hex digits or base64 of 32 bytes") from None
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise EncryptionError("an encryption key must be 32 bytes (AES-256); make one with os.urandom(32)")
    return bytes(value)


# -- which folders are encrypted ------------------------------------------------------------

_ciphers: dict[str, Keyring] = {}
_lock = threading.Lock()


def register(folder: Path, cipher: Keyring | None) -> None:
    """Encrypt (or, with None, stop encrypting) what the storage layer writes under `folder`."""
    key = os.path.abspath(folder)
    with _lock:
        if cipher is None:
            _ciphers.pop(key, None)
        else:
            _ciphers[key] = cipher


def cipher_for(path: Path | str) -> Keyring | None:
    """The cipher of the encrypted database holding `path`, or None."""
    if not _ciphers:
        return None
    current = os.path.abspath(path)
    while True:
        found = _ciphers.get(current)
        if found is not None:
            return found
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def encode(path: Path | str, data: bytes) -> bytes:
    """The bytes to store for `data` at `path` (encrypted under an encrypted database)."""
    cipher = cipher_for(path)
    return data if cipher is None else cipher.encrypt(data)


def decode(path: Path | str, data: bytes | bytearray | memoryview, rel: str = "") -> bytes | bytearray | memoryview:
    """The plaintext of the stored bytes `data` of `path`."""
    if bytes(memoryview(data)[: len(MAGIC)]) != MAGIC:
        return data
    cipher = cipher_for(path)
    if cipher is None:
        raise EncryptionError(
            f"{rel or path} is encrypted: open the database with its key "
            f"(hybrid.connect(path, encryption_key=...) or {KEY_ENV})"
        )
    return cipher.decrypt(data, rel or str(path))


# -- the database's marker -------------------------------------------------------------------


def _write_marker(folder: Path, content: dict[str, str]) -> None:
    tmp = folder / f".{MARKER}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"algorithm": "AES-256-GCM", **content}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / MARKER)


def open_database(folder: Path, source: KeySource | None, previous: KeySource | None = None) -> Keyring | None:
    """Check `source` against the database's key id (written for a new encrypted database); register it.

    `previous` is the key before an interrupted :func:`rotate`, needed until the rotation is run again.
    """
    if source is None and os.environ.get(KEY_ENV):
        source = os.environ[KEY_ENV]
    marker = folder / MARKER
    stored = json.loads(marker.read_text()) if marker.exists() else None
    if source is None:
        if stored is not None:
            raise EncryptionError(
                f"the database at {folder} is encrypted: open it with its key "
                f"(hybrid.connect(path, encryption_key=...) or {KEY_ENV})"
            )
        return None
    if isinstance(source, Keyring):  # a key this process already checked: the library's own companion tables
        if stored is None or stored["key_id"] != source.key_id:
            raise EncryptionError(f"the key of another database does not open the database at {folder}")
        register(folder, source)
        return source
    cipher = Cipher(parse_key(source))
    if stored is None:
        if any(p.is_dir() and (p / "_versions").is_dir() for p in folder.iterdir()):
            raise EncryptionError(
                f"the database at {folder} holds unencrypted tables; an encryption key applies to a new database"
            )
        _write_marker(folder, {"key_id": cipher.key_id})
        stored = {"key_id": cipher.key_id}
    rotating = stored.get("previous_key_id")
    if stored["key_id"] != cipher.key_id:
        hint = f" (a rotation to key id {stored['key_id']} was interrupted: open with that key)" if rotating else ""
        raise EncryptionError(
            f"wrong encryption key for the database at {folder}: it was encrypted with key id {stored['key_id']}, "
            f"the key given has id {cipher.key_id}{hint}"
        )
    old = None
    if rotating:
        old = Cipher(parse_key(previous)) if previous is not None else None
        if old is None or old.key_id != rotating:
            raise EncryptionError(
                f"a key rotation of the database at {folder} was interrupted: open it with the new key and "
                f"previous_key=<the old key> (key id {rotating}), then call rotate_key(<new key>) again"
            )
    keyring = Keyring(cipher, old)
    register(folder, keyring)
    return keyring


def rotate(folder: Path, new_source: KeySource) -> int:
    """Re-encrypt every encrypted file under `folder` with a new key, each file atomically (a new file
    renamed over the old one); the key id marker names the new key first, so an interrupted rotation is
    finished by opening with both keys and rotating again. Returns the files rewritten."""
    current = cipher_for(folder)
    if current is None:
        raise EncryptionError(f"the database at {folder} is not open with an encryption key")
    new = Cipher(parse_key(new_source))
    old = current.primary if current.primary.key_id != new.key_id else current.previous  # the same key: resuming
    if old is None:
        return 0
    _write_marker(folder, {"key_id": new.key_id, "previous_key_id": old.key_id})
    keyring = Keyring(new, old)
    register(folder, keyring)
    rewritten = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            if name.endswith(".rotating"):  # left by an interrupted rotation: replaced below with its file
                continue
            with open(path, "rb") as fh:
                head = fh.read(len(MAGIC) + KEY_TAG)
                if head[: len(MAGIC)] != MAGIC or head[len(MAGIC) :] == new.tag:
                    continue
                fh.seek(0)
                data = keyring.decrypt(fh.read(), str(path.relative_to(folder)))
            tmp = path.with_name(f".{name}.rotating")
            with open(tmp, "wb") as out:
                out.write(new.encrypt(data))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            rewritten += 1
    _write_marker(folder, {"key_id": new.key_id})
    register(folder, Keyring(new))
    return rewritten
