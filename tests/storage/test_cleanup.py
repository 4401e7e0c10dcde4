"""`Table.cleanup` reports every byte it deletes: files, index folders, manifests, leftovers."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import hybrid

from ..conftest import make_rows


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_bytes_removed_is_what_the_folder_lost(db: hybrid.Database) -> None:
    t = db.create_table("t", make_rows(range(10)))
    t.cleanup(older_than=dt.timedelta(0))  # the first cleanup writes its marker file; now it only rewrites it
    for i in range(10, 40):
        t.add(make_rows([i]))
    t.create_fts_index("text")
    t.delete("id < 5")
    t.compact()
    t.create_fts_index("text", replace=True)
    leftover = t.path / "_versions" / ".tmp-unfinished-publish"
    leftover.write_text("x" * 1000)
    os.utime(leftover, (time.time() - 60, time.time() - 60))
    manifests = sum(p.stat().st_size for p in (t.path / "_versions").glob("*.json"))
    before = folder_bytes(t.path)

    stats = t.cleanup(older_than=dt.timedelta(0))

    assert stats.versions_removed == 34 and len(t.versions()) == 1
    assert not leftover.exists()
    assert stats.bytes_removed == before - folder_bytes(t.path)
    assert stats.bytes_removed > manifests  # manifests are counted, not only data files
    assert t.count_rows() == 35 and t.search("number 7").limit(1).to_list()[0]["id"] == 7


def test_cleanup_that_removes_nothing_reports_nothing(db: hybrid.Database) -> None:
    t = db.create_table("t", make_rows(range(3)))
    t.add(make_rows([3]))
    stats = t.cleanup(older_than=dt.timedelta(days=1))
    assert (stats.versions_removed, stats.files_removed, stats.bytes_removed) == (0, 0, 0)
    assert len(t.versions()) == 2
