"""Encryption at rest: every file of an encrypted table is ciphertext, a missing or wrong key is a clear
error, a flipped byte fails authentication, and the right key reads and searches as before."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybrid
from hybrid.errors import CorruptionError, EncryptionError
from hybrid.storage import crypto, pages

pytest.importorskip("cryptography")

PLAIN_FILES = {"_encryption.json", ".cleanup"}
"""Files that hold no table content: the key id marker and the cleanup mark."""


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(start)
    return [
        {
            "id": i,
            "text": f"note about topic{i % 5} secretword{i}q",
            "vec": rng.standard_normal(8).astype(np.float32).tolist(),
        }
        for i in range(start, start + n)
    ]


def build(folder: Path, key: bytes) -> tuple[hybrid.Table, list[dict[str, Any]]]:
    db = hybrid.connect(folder, encryption_key=key, upkeep=None)
    data = rows(40)
    t = db.create_table("docs", data)
    t.create_fts_index("text")
    t.create_vector_index("vec", metric="l2")
    t.create_scalar_index("id")
    t.add(rows(10, 40))
    t.delete("id = 3")
    t.compact()
    return t, data


def results(t: hybrid.Table, data: list[dict[str, Any]]) -> list[Any]:
    return [
        [h["_rowid"] for h in t.search("secretword7q", query_type="fts").limit(3).to_list()],
        [h["_rowid"] for h in t.search(np.asarray(data[9]["vec"], np.float32), query_type="vector").limit(5).to_list()],
        t.count_rows("id >= 20"),
        t.take([5, 6]).column("text").to_pylist(),
    ]


def forget(folder: Path) -> None:
    """As a fresh process would be: no key registered, no cached file or index."""
    crypto.register(folder, None)
    from hybrid.index import sealed
    from hybrid.index.cache import SearchCache
    from hybrid.storage.files import FileCache

    for table in folder.iterdir():
        FileCache.purge_root(table)
        sealed.purge(table)
    SearchCache.purge_all()
    pages.clear_cache()


def test_every_file_is_ciphertext_and_the_right_key_searches_as_before(tmp_path: Path) -> None:
    key = os.urandom(32)
    t, data = build(tmp_path, key)
    before = results(t, data)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name not in PLAIN_FILES and not path.name.endswith(".lock"):
            content = path.read_bytes()
            assert content.startswith(crypto.MAGIC), path
            assert b"secretword" not in content and np.asarray(data[9]["vec"], np.float32).tobytes() not in content
    assert t.check(all_versions=True).ok
    forget(tmp_path)
    again = hybrid.connect(tmp_path, encryption_key=key.hex(), upkeep=None).open_table("docs")
    assert results(again, data) == before
    assert again.checkout(1).count_rows() == 40


def test_no_key_or_a_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    key = os.urandom(32)
    t, _ = build(tmp_path, key)
    forget(tmp_path)
    with pytest.raises(EncryptionError, match="is encrypted: open it with its key"):
        hybrid.connect(tmp_path)
    with pytest.raises(EncryptionError, match="wrong encryption key"):
        hybrid.connect(tmp_path, encryption_key=os.urandom(32))
    with pytest.raises(EncryptionError, match="is encrypted"):  # reading the files without going through connect
        hybrid.Table(t.path, upkeep=None).to_arrow()
    with pytest.raises(EncryptionError, match="32 bytes"):
        hybrid.connect(tmp_path, encryption_key=b"short")


def test_key_from_the_environment_and_from_a_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    build(tmp_path, key)
    forget(tmp_path)
    monkeypatch.setenv(crypto.KEY_ENV, key.hex())
    assert hybrid.connect(tmp_path).open_table("docs").count_rows() == 49
    monkeypatch.delenv(crypto.KEY_ENV)
    forget(tmp_path)
    assert hybrid.connect(tmp_path, encryption_key=lambda: key).open_table("docs").count_rows() == 49
    assert key.hex() not in "".join(p.read_text(errors="ignore") for p in tmp_path.rglob("*.json"))


@pytest.mark.parametrize("kind", ["data", "_versions", "rowids", "indexes"])
def test_a_flipped_byte_fails_authentication(tmp_path: Path, kind: str) -> None:
    key = os.urandom(32)
    t, data = build(tmp_path, key)
    table = t.path
    files = sorted(p for p in (table / kind).rglob("*") if p.is_file() and not p.name.startswith("."))
    target = files[-1] if kind != "indexes" else next(p for p in files if p.name == "rowids.npy")
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x5A
    target.write_bytes(bytes(raw))
    forget(tmp_path)
    again = hybrid.connect(tmp_path, encryption_key=key, upkeep=None).open_table("docs")
    with pytest.raises(CorruptionError, match="failed authentication|damaged"):
        if kind == "indexes":
            again.search("secretword7q", query_type="fts").limit(3).to_list()
            again.search(np.asarray(data[9]["vec"], np.float32), query_type="vector").limit(3).to_list()
            again.count_rows("id = 4")
        else:
            for v in again.versions():
                again.checkout(v.version).to_arrow(with_rowid=True)
    assert not again.check(all_versions=True).ok


def test_a_key_for_a_database_of_plain_tables_is_refused(tmp_path: Path) -> None:
    hybrid.connect(tmp_path, upkeep=None).create_table("docs", rows(3))
    with pytest.raises(EncryptionError, match="unencrypted tables"):
        hybrid.connect(tmp_path, encryption_key=os.urandom(32))


def test_erasure_of_an_encrypted_table(tmp_path: Path) -> None:
    key = os.urandom(32)
    t, data = build(tmp_path, key)
    report = t.erase("id < 10", verify=True)
    assert report.verification is not None and report.verification.ok
    assert t.search("secretword7q", query_type="fts").limit(3).to_list() == []
    assert all(t.checkout(v.version).count_rows("id < 10") == 0 for v in t.versions())
    assert t.check(all_versions=True).ok


def test_key_rotation_rewrites_every_file_and_an_interrupted_one_finishes(tmp_path: Path) -> None:
    old, new, newer = os.urandom(32), os.urandom(32), os.urandom(32)
    t, data = build(tmp_path, old)
    before = results(t, data)
    db = hybrid.connect(tmp_path, encryption_key=old, upkeep=None)
    assert db.rotate_key(new) > 10
    forget(tmp_path)
    with pytest.raises(EncryptionError, match="wrong encryption key"):
        hybrid.connect(tmp_path, encryption_key=old)
    again = hybrid.connect(tmp_path, encryption_key=new, upkeep=None)
    assert results(again.open_table("docs"), data) == before
    # interrupted: the marker names the newer key, some files still carry the new (now previous) one
    real_replace = os.replace
    calls = [0]

    def crash(src: Any, dst: Any) -> None:
        calls[0] += 1
        if calls[0] == 6:
            raise KeyboardInterrupt
        real_replace(src, dst)

    import hybrid.storage.crypto as crypto_module

    crypto_module.os.replace = crash  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            again.rotate_key(newer)
    finally:
        crypto_module.os.replace = real_replace  # type: ignore[assignment]
    forget(tmp_path)
    with pytest.raises(EncryptionError, match="interrupted"):
        hybrid.connect(tmp_path, encryption_key=newer)
    resumed = hybrid.connect(tmp_path, encryption_key=newer, previous_key=new, upkeep=None)
    assert results(resumed.open_table("docs"), data) == before
    resumed.rotate_key(newer)
    forget(tmp_path)
    assert results(hybrid.connect(tmp_path, encryption_key=newer, upkeep=None).open_table("docs"), data) == before


def test_the_cli_takes_the_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from hybrid.cli import app

    key = os.urandom(32)
    build(tmp_path, key)
    forget(tmp_path)
    monkeypatch.delenv(crypto.KEY_ENV, raising=False)
    refused = CliRunner().invoke(app, ["check", "--db", str(tmp_path)])
    assert refused.exit_code == 2 and "is encrypted" in refused.output
    monkeypatch.setenv(crypto.KEY_ENV, key.hex())
    assert CliRunner().invoke(app, ["check", "--db", str(tmp_path)]).exit_code == 0
