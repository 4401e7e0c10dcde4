"""`ingest` end to end with the hashing embedder: rows, metadata, idempotency, replacement, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.errors import SchemaError
from hybrid.ingest import Chunker, ingest, snippet, table_analyzer
from tests.ingest.conftest import minimal_pdf

EMBEDDER = HashingEmbedder(dim=64)


def rows(table: hybrid.Table) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in table.to_arrow(
        ["id", "source", "heading", "page", "chunk", "text", "metadata"], with_rowid=True
    ).to_pylist():
        out.setdefault(r["source"], []).append(r)
    for chunks in out.values():
        chunks.sort(key=lambda r: r["chunk"])
    return out


def test_a_folder_becomes_chunks_with_metadata_and_indexes(db: hybrid.Database, corpus: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    report = ingest(db, "docs", [corpus], embedder=EMBEDDER, progress=lambda *a: seen.append(a))
    assert (report.files, report.new_files, report.unchanged_files) == (5, 5, 0)
    assert [(s.source, s.reason) for s in report.skipped] == [("logo.png", "unsupported file type .png")]
    assert report.added == report.chunks == 10 and report.removed == 0
    table = db.open_table("docs")
    assert table.count_rows() == 10 and report.version == table.version
    by_source = rows(table)
    assert sorted(by_source) == ["guide/install.md", "manual.pdf", "notes.txt", "page.html", "records.jsonl"]
    assert [r["heading"] for r in by_source["guide/install.md"]] == ["Install", "Install > Linux", "Install > Windows"]
    assert [(r["page"], r["heading"]) for r in by_source["manual.pdf"]] == [(1, "Tables"), (2, "Tables")]
    assert [r["heading"] for r in by_source["page.html"]] == ["Reference", "Reference > Options"]
    assert [json.loads(r["metadata"]) for r in by_source["records.jsonl"]] == [
        {"id": 1, "lang": "en"},
        {"id": 2, "lang": "de"},
    ]
    assert all(r["metadata"] is None for r in by_source["notes.txt"])
    assert {s["kind"] for s in table.index_stats()} == {"fts", "vector"}
    assert table.embeddings["vector"][1].to_config() == {"dim": 64}
    assert {stage for stage, _, _ in seen} == {"reading", "embedding", "indexing"}
    assert ("reading", 6, 6) in seen and ("embedding", 10, 10) in seen
    # searchable at once, by keyword, meaning and filter
    hit = table.search("package manager", query_type="fts").limit(1).to_list()[0]
    assert (hit["source"], hit["heading"]) == ("guide/install.md", "Install > Linux")
    hits = table.search("record text").where("json_extract_string(metadata, '$.lang') = 'de'").to_list()
    assert [h["heading"] for h in hits] == ["Second"]


def test_reingesting_the_same_folder_changes_nothing(db: hybrid.Database, corpus: Path) -> None:
    ingest(db, "docs", [corpus], embedder=EMBEDDER)
    table = db.open_table("docs")
    before, version = rows(table), table.version
    again = ingest(db, "docs", [corpus])  # the table's own embedder is used
    assert (again.added, again.removed, again.unchanged_files, again.new_files) == (0, 0, 5, 0)
    assert again.version == version and rows(table) == before  # same row ids: nothing rewritten


def test_a_changed_file_replaces_its_old_chunks_only(db: hybrid.Database, corpus: Path) -> None:
    ingest(db, "docs", [corpus], embedder=EMBEDDER, chunker=Chunker(size=60, overlap=0))
    table = db.open_table("docs")
    before = rows(table)
    (corpus / "guide" / "install.md").write_text("# Install\n\nRun the installer.\n\n## macOS\n\nUse brew.\n")
    report = ingest(db, "docs", [corpus], chunker=Chunker(size=60, overlap=0))
    assert (report.changed_files, report.unchanged_files) == (1, 4)
    after = rows(table)
    assert [r["heading"] for r in after["guide/install.md"]] == ["Install", "Install > macOS"]
    assert "Linux" not in " ".join(r["text"] for r in after["guide/install.md"])
    # the unchanged first chunk kept its row; the rest were replaced
    assert after["guide/install.md"][0]["_rowid"] == before["guide/install.md"][0]["_rowid"]
    assert report.added == 1 and report.removed == 2
    for source in ("manual.pdf", "notes.txt", "page.html", "records.jsonl"):
        assert after[source] == before[source]
    assert table.search("brew", query_type="fts").limit(1).to_list()[0]["heading"] == "Install > macOS"
    assert table.search("package manager", query_type="fts").where("source = 'guide/install.md'").to_list() == []
    assert all(s["dead_rows"] == 0 and s["unindexed_rows"] == 0 for s in table.index_stats())


def test_an_emptied_file_loses_its_chunks_and_a_corrupt_one_keeps_them(db: hybrid.Database, corpus: Path) -> None:
    ingest(db, "docs", [corpus], embedder=EMBEDDER)
    (corpus / "notes.txt").write_text("")
    (corpus / "manual.pdf").write_bytes(b"%PDF-1.4\ntruncated")
    report = ingest(db, "docs", [corpus])
    assert {s.source: s.reason.split(":")[0] for s in report.skipped} == {
        "logo.png": "unsupported file type .png",
        "manual.pdf": "cannot parse pdf",
        "notes.txt": "empty file",
    }
    by_source = rows(db.open_table("docs"))
    assert "notes.txt" not in by_source and len(by_source["manual.pdf"]) == 2


def test_prune_deletes_chunks_of_files_that_are_gone(db: hybrid.Database, corpus: Path) -> None:
    ingest(db, "docs", [corpus], embedder=EMBEDDER)
    (corpus / "page.html").unlink()
    kept = ingest(db, "docs", [corpus])
    assert kept.pruned_files == 0 and "page.html" in rows(db.open_table("docs"))
    pruned = ingest(db, "docs", [corpus], prune=True)
    assert (pruned.pruned_files, pruned.removed) == (1, 2)
    assert "page.html" not in rows(db.open_table("docs"))


def test_pdf_page_numbers_and_paths_given_as_files(db: hybrid.Database, tmp_path: Path) -> None:
    pdf = tmp_path / "deck.pdf"
    pdf.write_bytes(minimal_pdf([["Alpha slide."], ["Beta slide."], ["Gamma slide."]]))
    report = ingest(db, "slides", [pdf], embedder=EMBEDDER)
    assert report.chunks == 3
    hit = db.open_table("slides").search("gamma", query_type="fts").limit(1).to_list()[0]
    assert (hit["source"], hit["page"]) == ("deck.pdf", 3)


def test_two_roots_with_the_same_relative_path_are_reported(db: hybrid.Database, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "README.md").write_text(f"# {name}\n\ntext {name}\n")
    report = ingest(db, "docs", [tmp_path / "a", tmp_path / "b"], embedder=EMBEDDER)
    assert report.files == 1 and report.skipped[0].source == "README.md"
    assert "same source name" in report.skipped[0].reason


def test_a_different_embedder_or_a_foreign_table_is_refused(db: hybrid.Database, corpus: Path) -> None:
    ingest(db, "docs", [corpus / "notes.txt"], embedder=EMBEDDER)
    with pytest.raises(SchemaError, match="embeds with hashing"):
        ingest(db, "docs", [corpus], embedder=HashingEmbedder(dim=32))
    db.create_table("other", [{"id": 1, "text": "x"}])
    with pytest.raises(SchemaError, match="was not made by ingest"):
        ingest(db, "other", [corpus], embedder=EMBEDDER)


def test_nothing_readable_makes_an_empty_table_without_indexes(db: hybrid.Database, tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"\x00")
    report = ingest(db, "docs", [tmp_path, tmp_path / "missing.md"], embedder=EMBEDDER)
    assert report.files == 0 and [s.reason for s in report.skipped] == [
        "unsupported file type .bin",
        "no such file or directory",
    ]
    assert db.open_table("docs").count_rows() == 0 and db.open_table("docs").index_stats() == []


def test_snippets_mark_terms_as_the_index_analyses_them(db: hybrid.Database, corpus: Path) -> None:
    ingest(db, "docs", [corpus], embedder=EMBEDDER)
    analyzer = table_analyzer(db.open_table("docs"))
    assert analyzer is not None and analyzer.stem
    s = snippet("Installing packages: the manager installs each package.", "install the package", analyzer=analyzer)
    assert [s.text[a:b] for a, b in s.spans] == [
        "Installing",
        "packages",
        "installs",
        "package",
    ]  # "the" is a stop word
    long = (
        " ".join(["filler words here."] * 40) + " The VACUUM FULL command rewrites the table. " + "more filler. " * 40
    )
    s = snippet(long, "vacuum full", width=120)
    assert s.text.startswith("…") and s.text.endswith("…") and len(s.text) <= 122
    assert [s.text[a:b] for a, b in s.spans] == ["VACUUM", "FULL"]
