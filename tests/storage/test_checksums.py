"""Checksums: a damaged or missing file is a CorruptionError naming it, `check` finds it, `repair` is safe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.errors import CorruptionError
from hybrid.storage import checksums, pages

DIM = 8


def rows(start: int, n: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(start)
    return [
        {"id": i, "text": f"document {i} about topic{i % 7}", "v": rng.standard_normal(DIM).astype("float32").tolist()}
        for i in range(start, start + n)
    ]


@pytest.fixture
def table(tmp_path: Path) -> hybrid.Table:
    """Versions: 1 create, 2 fts, 3 vector index, 4 delete (a deletion file), 5 append."""
    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", rows(0, 300))
    t.create_fts_index(["text"])
    t.create_vector_index("v")
    t.delete("id < 10")
    t.add(rows(300, 20))
    return t


def reopen(t: hybrid.Table) -> hybrid.Table:
    """The table as a new process would see it (no file, page or index cached)."""
    pages.clear_cache()
    return hybrid.connect(t.path.parent, upkeep=None).open_table(t.name)


def flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x5A
    path.write_bytes(bytes(data))


def files(t: hybrid.Table, pattern: str) -> list[Path]:
    return sorted(t.path.glob(pattern))


def test_every_file_a_commit_writes_carries_a_checksum(table: hybrid.Table) -> None:
    named = files(table, "data/*.arrow") + files(table, "deletions/*.arrow")
    assert len(named) == 3 and all(checksums.digest_in_name(p.name) == checksums.digest_file(p) for p in named)
    manifest = (table.path / "_versions" / f"{table.version}.json").read_text()
    assert checksums.unseal(manifest, "m", table.path) != manifest
    for entry in table.snapshot().manifest.indexes:
        assert entry["checksums"], entry["name"]
        folder = table.path / entry["path"]
        assert checksums.folder_digests(folder) == entry["checksums"]
    report = table.check(all_versions=True)
    assert report.ok and report.unverified == 0 and report.versions == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("kind", ["data", "deletions"])
def test_a_damaged_data_file_is_an_error_never_wrong_rows(table: hybrid.Table, kind: str) -> None:
    victim = files(table, f"{kind}/*.arrow")[0]
    flip(victim)
    t = reopen(table)
    with pytest.raises(CorruptionError) as err:
        t.to_arrow()
    assert err.value.path == f"{kind}/{victim.name}" and victim.name in str(err.value)
    report = t.check()
    assert not report.ok and [d.path for d in report.damage] == [f"{kind}/{victim.name}"]
    assert report.damage[0].problem == "damaged" and report.damage[0].kind == kind


def test_a_damaged_manifest_is_an_error_naming_it(table: hybrid.Table) -> None:
    path = table.path / "_versions" / "4.json"
    flip(path, 0.3)
    t = reopen(table)
    with pytest.raises(CorruptionError, match="_versions/4.json"):
        t.checkout(4)
    assert t.checkout(3).count_rows() == 300 and t.count_rows() == 310  # other versions are whole
    report = t.check(all_versions=True)
    assert [(d.path, d.versions) for d in report.damage] == [("_versions/4.json", (4,))]


def test_a_manifest_that_lost_its_checksum_is_refused(table: hybrid.Table) -> None:
    path = table.path / "_versions" / f"{table.version}.json"
    body = checksums.unseal(path.read_text(), "m", table.path)
    path.write_text(body)  # the seal cut off, as a truncated copy would
    with pytest.raises(CorruptionError, match="lost its checksum"):
        reopen(table).count_rows()


@pytest.mark.parametrize("name", ["hnsw.bin", "rowids.npy", "tantivy/*.idx", "tantivy/meta.json"])
def test_a_damaged_index_file_is_found_and_rebuilt_from_the_data(table: hybrid.Table, name: str) -> None:
    want_text = [r["id"] for r in table.search("topic3").limit(5).to_list()]
    want_vec = [r["id"] for r in table.search(np.ones(DIM, dtype=np.float32), vector_column="v").limit(5).to_list()]
    victim = files(table, f"indexes/*/{name}")[0]
    flip(victim)
    t = reopen(table)
    rel = victim.relative_to(t.path).as_posix()
    query = t.search("topic3") if "hnsw" not in name else t.search(np.ones(DIM, dtype=np.float32), vector_column="v")
    if name == "rowids.npy":
        query = t.search("topic3", query_type="hybrid").vector(np.ones(DIM, dtype=np.float32))
    with pytest.raises(CorruptionError) as err:
        query.limit(5).to_list()
    assert err.value.path == rel
    report = t.check()
    assert [d.path for d in report.damage] == [rel] and report.damage[0].kind == "index"
    assert not report.data_broken(t.version) and report.broken_indexes[t.version]
    ops = [c.operation for c in t.repair()]
    assert ops == ["create_index"] and t.check().ok and victim.exists()  # rebuilt beside; nothing deleted
    t = reopen(t)
    assert [r["id"] for r in t.search("topic3").limit(5).to_list()] == want_text
    assert [r["id"] for r in t.search(np.ones(DIM, dtype=np.float32), vector_column="v").limit(5).to_list()] == want_vec


def test_repair_restores_the_newest_version_with_intact_data(table: hybrid.Table) -> None:
    newest = table.snapshot().manifest.fragments[-1].files[0].path  # the append of version 5
    flip(table.path / newest)
    t = reopen(table)
    report = t.check(all_versions=True)
    assert [d.versions for d in report.damage] == [(5,)] and report.broken_versions == (5,)
    ops = [c.operation for c in t.repair()]
    assert ops == ["restore"] and t.check().ok and t.count_rows() == 290
    assert (t.path / newest).exists() and len(t.versions()) == 6  # history and the damaged file are kept


def test_a_missing_file_is_reported_as_missing(table: hybrid.Table) -> None:
    victim = files(table, "deletions/*.arrow")[0]
    victim.unlink()
    report = reopen(table).check(all_versions=True)
    assert [(d.problem, d.versions) for d in report.damage] == [("missing", (4, 5))]


def test_a_damaged_page_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "INLINE_FRAGMENTS", 2)
    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", rows(0, 1))
    for i in range(1, 8):
        t.add(rows(i, 1))
    page = sorted(json.loads((t.path / "_versions" / f"{t.version}.json").read_text())["pages"], key=str)[0]["path"]
    flip(t.path / page)
    with pytest.raises(CorruptionError) as err:
        reopen(t).count_rows()
    assert err.value.path == page
    report = check_fresh(t.path.parent)
    assert page in report and "DAMAGED" in report


def check_fresh(db: Path) -> str:
    """`hybrid check` in another process; returns what it printed, asserting it exited 1."""
    done = subprocess.run(
        [sys.executable, "-m", "hybrid.cli", "check", "--db", str(db), "--all-versions"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_cli_check_and_repair(table: hybrid.Table) -> None:
    from typer.testing import CliRunner

    from hybrid.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["check", "--db", str(table.path.parent), "--all-versions"])
    assert ok.exit_code == 0 and "OK" in ok.output and "5 version(s)" in ok.output
    flip(files(table, "indexes/*/hnsw.bin")[0])
    pages.clear_cache()
    bad = runner.invoke(app, ["check", "--db", str(table.path.parent)])
    assert bad.exit_code == 1 and "DAMAGED" in bad.output and "hnsw.bin" in bad.output
    fixed = runner.invoke(app, ["check", "--db", str(table.path.parent), "--repair"])
    assert fixed.exit_code == 0 and "create_index" in fixed.output and "after repair: OK" in fixed.output


def test_a_mapped_digest_equals_the_buffer_digest(tmp_path: Path) -> None:
    import mmap

    data = np.random.default_rng(1).integers(0, 255, 3 * 4096 + 17, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    old = checksums.MAPPED_BLOCK
    try:
        checksums.MAPPED_BLOCK = 4096  # blocks, and a short last one
        assert checksums.digest_mapped(mapped) == checksums.digest_bytes(data)
        assert mapped[:] == data  # released pages read back from the file
    finally:
        checksums.MAPPED_BLOCK = old
        mapped.close()


_PEAK = """
import sys
from pathlib import Path
import hybrid
from hybrid.storage import checksums

def status(key):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024

checksums.MAPPED_BLOCK = 1 << 20
t = hybrid.connect(sys.argv[1], upkeep=None).open_table("docs")
snap = t.indexed_snapshot().snapshot
rel = snap.manifest.fragments[0].files[-1].path
before = status("VmRSS")
assert status("VmHWM") <= before + (1 << 20)
snap.cache.table(rel, True)
print(status("VmHWM") - before, (snap.root / rel).stat().st_size)
"""


def test_verifying_a_data_file_does_not_hold_all_of_it_in_memory(tmp_path: Path) -> None:
    """The first open of a data file hashes it through its map block by block, releasing each block's pages
    as it goes: the process's peak RSS grows by a few blocks, not by the file's size (measured in a fresh
    process: 25 MB file, 1 MiB blocks; before, the peak grew by the whole file)."""
    import pyarrow as pa

    n, dim = 16_384, 384
    vectors = np.random.default_rng(2).standard_normal((n, dim)).astype(np.float32)
    hybrid.connect(tmp_path, upkeep=None).create_table(
        "docs",
        pa.table({"id": np.arange(n), "v": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim)}),
    )
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(tmp_path)], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    grew, size = (int(x) for x in done.stdout.split())
    assert size > 24 << 20
    assert grew < 8 << 20, (grew, size)
