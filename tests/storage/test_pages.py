"""Paged manifests: fragments in immutable page files shared by versions, the last few inline.

Most tests shrink the pages (`PAGE_FRAGMENTS` 8, `INLINE_FRAGMENTS` 2) so that a few dozen
appends build several levels of pages; the subprocess tests use the real sizes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import hybrid
from hybrid.storage import pages
from hybrid.storage.manifest import Manifest
from hybrid.storage.versions import VersionLog

from .test_concurrent_writers import after_read, assert_raced

TABLE = "paged"
OLD_KEYS = {
    "format_version", "version", "timestamp", "operation", "schema", "columns", "field_ids", "next_field_id",
    "next_rowid", "next_fragment_id", "schema_epoch", "lineage_epoch", "metadata", "details", "num_rows",
    "fragments", "indexes",
}  # fmt: skip


def connect(path: Path | str) -> hybrid.Database:
    """A database whose tables do no background upkeep (where the API has it): these tests count
    versions and fragments, and a compaction of its own would change both."""
    try:
        return hybrid.connect(path, upkeep=None)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return hybrid.connect(path)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "PAGE_FRAGMENTS", 8)
    monkeypatch.setattr(pages, "INLINE_FRAGMENTS", 2)


def row(i: int) -> dict[str, Any]:
    return {"id": i, "text": f"doc {i}"}


def ids(table: hybrid.Table) -> list[int]:
    return sorted(table.to_arrow(["id"]).column("id").to_pylist())


def manifest_file(table: hybrid.Table, version: int | None = None) -> dict[str, Any]:
    v = table.version if version is None else version
    return json.loads((table.path / "_versions" / f"{v}.json").read_text())


def fresh_log(table: hybrid.Table) -> VersionLog:
    """A log that parses everything from disk again (as another process would)."""
    pages.clear_cache()
    return VersionLog(table.path)


def page_files(table: hybrid.Table) -> set[str]:
    folder = table.path / pages.PAGES_DIR
    return {f"{pages.PAGES_DIR}/{n}" for n in os.listdir(folder)} if folder.is_dir() else set()


def appended(tmp_path: Path, n: int) -> hybrid.Table:
    """A table created with row 0, then rows 1..n appended one by one (version k holds rows 0..k-1)."""
    table = connect(tmp_path / "db").create_table(TABLE, [row(0)])
    for i in range(1, n + 1):
        table.add([row(i)])
    return table


def test_paged_manifest_round_trips(tmp_path: Path, small_pages: None) -> None:
    table = appended(tmp_path, 40)
    published = table.snapshot().manifest
    data = manifest_file(table)
    assert data["format_version"] == 4 and data["fragment_count"] == 41 and len(data["checksum"]) == 16
    assert len(data["pages"]) >= 3 and len(data["fragments"]) < pages.INLINE_FRAGMENTS
    assert all(p["fragments"] <= pages.PAGE_FRAGMENTS for p in data["pages"])
    reread = fresh_log(table).load(table.version)
    assert reread == published and reread.fragments == published.fragments
    assert [p.path for p in reread.pages] == [p["path"] for p in data["pages"]]
    again = Manifest.from_json(reread.to_json(), fresh_log(table).read_page, sealed=True)  # text made here
    assert again == published and again.num_rows == 41 == published.num_rows


def test_appends_reuse_pages_and_stay_few(tmp_path: Path, small_pages: None) -> None:
    table = appended(tmp_path, 100)
    data = manifest_file(table)
    assert len(data["pages"]) <= 101 // 8 + 3, "small pages are not merged"
    for v in range(table.version - 20, table.version):
        before, after = manifest_file(table, v), manifest_file(table, v + 1)
        new = {p["path"] for p in after["pages"]} - {p["path"] for p in before["pages"]}
        assert len(new) <= 1, f"version {v + 1}: an append wrote {len(new)} pages"
        if not new:
            assert after["pages"] == before["pages"]


def test_delete_rewrites_only_the_page_it_touches(tmp_path: Path, small_pages: None) -> None:
    table = appended(tmp_path, 60)
    before = manifest_file(table)
    assert before["pages"][0]["fragments"] == 8 and len(before["pages"]) > 2
    table.delete("id = 3")  # fragment 3 lies in the first page
    after = manifest_file(table)
    kept = [p for p in after["pages"] if p in before["pages"]]
    assert len(kept) == len(before["pages"]) - 1 and after["pages"][0] not in before["pages"]
    assert ids(table) == [i for i in range(61) if i != 3]
    assert ids(table.checkout(table.version - 1)) == list(range(61))


def test_time_travel_after_many_appends(tmp_path: Path, small_pages: None) -> None:
    table = appended(tmp_path, 70)
    table.delete("id % 10 = 5")
    table.add([row(100), row(101)])
    newest = table.version
    pages.clear_cache()
    reader = connect(tmp_path / "db").open_table(TABLE)
    for v in range(1, 72):
        old = reader.checkout(v)
        assert ids(old) == list(range(v)), f"version {v}"
        assert old.count_rows() == v
    assert ids(reader.checkout(72)) == [i for i in range(71) if i % 10 != 5]
    assert ids(reader.checkout(newest)) == [i for i in range(71) if i % 10 != 5] + [100, 101]
    assert [info.num_rows for info in reader.versions()][:71] == list(range(1, 72))


def test_compaction_and_restore_keep_pages_consistent(tmp_path: Path, small_pages: None) -> None:
    table = appended(tmp_path, 30)
    table.delete("id < 4")
    table.compact()
    data = manifest_file(table)
    assert "pages" not in data and len(data["fragments"]) == 1 and ids(table) == list(range(4, 31))
    table.restore(20)
    assert ids(table) == list(range(20))
    assert ids(connect(tmp_path / "db").open_table(TABLE)) == list(range(20))
    assert fresh_log(table).load(table.version).num_rows == 20


def test_cleanup_keeps_referenced_pages_and_removes_the_rest(tmp_path: Path, small_pages: None) -> None:
    table = appended(tmp_path, 50)
    table.tag("early", 12)
    table.delete("id = 1")
    before = page_files(table)
    stats = table.cleanup(older_than=dt.timedelta(0))
    assert [v.version for v in table.versions()] == [12, table.version]
    log = fresh_log(table)
    referenced = {p for v in log.list_versions() for p in log.load(v).page_paths()}
    on_disk = page_files(table)
    assert referenced and on_disk == referenced, "cleanup left or removed the wrong pages"
    assert before - on_disk and stats.files_removed >= len(before - on_disk)
    pages.clear_cache()
    reader = connect(tmp_path / "db").open_table(TABLE)
    assert ids(reader.checkout("early")) == list(range(12))
    assert ids(reader) == [i for i in range(51) if i != 1]
    reader.add([row(99)])
    assert ids(reader) == [i for i in range(51) if i != 1] + [99]


def test_cleanup_spares_new_unreferenced_pages(tmp_path: Path, small_pages: None) -> None:
    table = appended(tmp_path, 20)
    stray = table.path / pages.PAGES_DIR / "0123456789abcdef.json"
    stray.write_text('{"fragments": []}')  # a page of a commit still in flight
    table.cleanup(older_than=dt.timedelta(hours=1))
    assert stray.exists()
    table.cleanup(older_than=dt.timedelta(0))
    assert not stray.exists()


def test_old_inline_manifest_still_opens(tmp_path: Path) -> None:
    db = connect(tmp_path / "db")
    table = db.create_table(TABLE, [row(i) for i in range(5)])
    for i in range(5, 40):
        table.add([row(i)])
    folder = table.path / "_versions"
    for v in VersionLog(table.path).list_versions():  # rewrite every manifest as format 1 wrote it
        old = json.loads(replace(VersionLog(table.path).load(v), pages=()).to_json())
        (folder / f"{v}.json").write_text(json.dumps({**old, "format_version": 1}))  # unsealed, as format 1 was
    for name in os.listdir(table.path / pages.PAGES_DIR):
        os.unlink(table.path / pages.PAGES_DIR / name)
    data = manifest_file(table)
    assert set(data) == OLD_KEYS and data["format_version"] == 1 and len(data["fragments"]) == 36
    pages.clear_cache()
    reader = connect(tmp_path / "db").open_table(TABLE)
    assert ids(reader) == list(range(40)) and ids(reader.checkout(3)) == list(range(7))
    reader.add([row(40)])  # the first commit moves the fragments into pages
    assert "pages" in manifest_file(reader) and ids(reader) == list(range(41))
    assert ids(reader.checkout(reader.version - 1)) == list(range(40))


def test_missing_page_is_reported(tmp_path: Path, small_pages: None) -> None:
    table = appended(tmp_path, 20)
    first = manifest_file(table)["pages"][0]["path"]
    os.unlink(table.path / first)
    pages.clear_cache()
    with pytest.raises(hybrid.HybridError, match="missing"):
        connect(tmp_path / "db").open_table(TABLE).count_rows()


def test_rebase_onto_a_commit_that_shares_pages(
    tmp_path: Path, small_pages: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    appended(tmp_path, 29)
    a = connect(tmp_path / "db").open_table(TABLE)
    b = connect(tmp_path / "db").open_table(TABLE)
    seen = after_read(monkeypatch, lambda: a.add([row(30), row(31)]))
    b.add([row(32)])
    assert_raced(seen, 30)
    log = fresh_log(a)
    newest = log.load(log.latest_version())
    shared = {p.path for p in log.load(31).pages} & {p.path for p in newest.pages}
    assert shared, "the rebased commit rewrote every page"
    assert ids(connect(tmp_path / "db").open_table(TABLE)) == list(range(33))


# -- other processes: a crash between page and manifest, concurrent appenders ----------------

CHILD = textwrap.dedent(
    """
    import os, sys, signal
    import hybrid
    from hybrid.storage import pages, versions
    db, start, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    try:
        table = hybrid.connect(db, upkeep=None).open_table("paged")
    except TypeError:
        table = hybrid.connect(db).open_table("paged")
    if mode != "append":
        write_pages = pages.write_pages
        def write_then_die(*args, **kwargs):
            layout, written = write_pages(*args, **kwargs)
            if written:  # the pages are on disk and synced; the manifest is not published yet
                open(os.path.join(db, "wrote-" + mode), "w").write("\\n".join(written))
                if mode == "exit":
                    os._exit(9)
                os.kill(os.getpid(), signal.SIGKILL)
            return layout, written
        versions.pages.write_pages = write_then_die
    else:
        while not os.path.exists(os.path.join(db, "go")):
            pass
    for i in range(start, start + count):
        table.add([{"id": i, "text": f"doc {i}"}])
    """
)


def child(db: Path, start: int, count: int, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(start), str(count), mode])


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
@pytest.mark.parametrize("mode", ["exit", "kill"])
def test_crash_between_page_and_manifest_loses_nothing(tmp_path: Path, mode: str) -> None:
    table = appended(tmp_path, 10)
    newest, before = table.version, set(os.listdir(table.path / "_versions"))
    proc = child(tmp_path / "db", 100, pages.INLINE_FRAGMENTS + 2, mode)
    assert proc.wait(timeout=120) != 0
    marker = tmp_path / "db" / f"wrote-{mode}"
    assert marker.exists(), "the child never wrote a page"
    orphans = set(marker.read_text().split())
    assert orphans <= page_files(table)
    pages.clear_cache()
    reader = connect(tmp_path / "db").open_table(TABLE)
    crashed_at = reader.version
    assert crashed_at > newest and set(os.listdir(table.path / "_versions")) >= before
    expected = list(range(11)) + list(range(100, 100 + crashed_at - newest))
    assert ids(reader) == expected and ids(reader.checkout(newest)) == list(range(11))
    assert not orphans & {p.path for p in reader.snapshot().manifest.pages}
    reader.add([row(500)])
    assert ids(reader) == [*expected, 500]
    reader.cleanup(older_than=dt.timedelta(0))
    assert not orphans & page_files(table), "cleanup kept the crashed commit's pages"
    pages.clear_cache()
    assert ids(connect(tmp_path / "db").open_table(TABLE)) == [*expected, 500]


def test_two_processes_appending_concurrently_both_land(tmp_path: Path) -> None:
    start = appended(tmp_path, 3).version
    count = 2 * pages.INLINE_FRAGMENTS + 5
    procs = [child(tmp_path / "db", start, count, "append") for start in (1000, 2000)]
    (tmp_path / "db" / "go").write_text("")
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    pages.clear_cache()
    reader = connect(tmp_path / "db").open_table(TABLE)
    expected = list(range(4)) + list(range(1000, 1000 + count)) + list(range(2000, 2000 + count))
    assert ids(reader) == expected and reader.version == start + 2 * count
    rows = [reader.checkout(v).count_rows() for v in range(start, reader.version + 1)]
    assert rows == list(range(4, 4 + 2 * count + 1)), "a version lost or repeated an append"
    log = fresh_log(reader)
    for v in log.list_versions():
        assert log.load(v).num_rows == manifest_file(reader, v)["num_rows"]


def test_threads_appending_concurrently_both_land(tmp_path: Path, small_pages: None) -> None:
    import threading

    appended(tmp_path, 3)
    errors: list[BaseException] = []

    def write(start: int) -> None:
        try:
            t = connect(tmp_path / "db").open_table(TABLE)
            for i in range(start, start + 30):
                t.add([row(i)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s,)) for s in (1000, 2000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    pages.clear_cache()
    reader = connect(tmp_path / "db").open_table(TABLE)
    assert ids(reader) == list(range(4)) + list(range(1000, 1030)) + list(range(2000, 2030))


def test_newest_version_hint_survives_cleanup_gaps(tmp_path: Path) -> None:
    from hybrid.storage import versions

    table = appended(tmp_path, 4)
    table.tag("five", 5)
    key = VersionLog(table.path)._prefix
    stale = versions._newest_seen[key]  # what a process that last looked at version 5 remembers
    assert stale[0] == 5
    for i in range(5, 10):
        table.add([row(i)])
    table.cleanup(older_than=dt.timedelta(0))  # keeps 5 (tagged) and 10: versions 6..9 are gone
    assert VersionLog(table.path).list_versions() == [5, 10]
    versions._newest_seen[key] = stale
    assert VersionLog(table.path).latest_version() == 10, "a stale hint hid the newest version"
    versions._newest_seen[key] = stale
    assert ids(connect(tmp_path / "db").open_table(TABLE)) == list(range(10))
