"""Each loader on small files written here; bad files are skipped with a reason, never raised."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from hybrid.ingest import Document, LoadOptions, Skipped, load_file, load_paths, walk
from tests.ingest.conftest import minimal_pdf, pdf_with_outline


def load(path: Path, root: Path | None = None, **options: object) -> Document:
    doc = load_file(path, root, LoadOptions(**options))  # type: ignore[arg-type]
    assert isinstance(doc, Document), doc
    return doc


def skipped(path: Path) -> str:
    result = load_file(path)
    assert isinstance(result, Skipped), result
    return result.reason


def test_markdown_sections_lists_code_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "---\ntitle: The Guide\nauthor: me\n---\n"
        "Before any heading.\n\n"
        "# Setup\n\nInstall it\nwith pip.\n\n"
        "## Options\n\n- first *item*\n- second `item`\n\n"
        "```python\nprint('hi')\nprint('there')\n```\n\n"
        "| flag | meaning |\n|---|---|\n| -v | verbose |\n\n"
        "### Deep\n\nDeep text.\n\n"
        "## Other\n\nOther text.\n\n# Second top\n\nTop text.\n"
    )
    doc = load(path)
    assert doc.kind == "markdown" and doc.title == "The Guide" and doc.source == "guide.md"
    by_heading = {s.heading: s.blocks for s in doc.sections}
    assert by_heading[()] == ("Before any heading.",)
    assert by_heading[("Setup",)] == ("Install it with pip.",)
    assert by_heading[("Setup", "Options")] == (
        "- first item",
        "- second item",
        "print('hi')\nprint('there')",
        "flag | meaning\n-v | verbose",
    )
    assert by_heading[("Setup", "Options", "Deep")] == ("Deep text.",)
    assert by_heading[("Setup", "Other")] == ("Other text.",)
    assert by_heading[("Second top",)] == ("Top text.",)


def test_markdown_title_falls_back_to_first_h1_then_file_name(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("intro\n\n# Real Title\n\nbody\n")
    (tmp_path / "b.markdown").write_text("no headings at all\n")
    assert load(tmp_path / "a.md").title == "Real Title"
    assert load(tmp_path / "b.markdown").title == "b"


def test_plain_text_paragraphs_join_wrapped_lines(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("First paragraph\nwrapped here.\n\n\nSecond one.\r\n")
    doc = load(path)
    assert doc.kind == "text" and doc.title == "notes"
    assert doc.sections[0].heading == () and doc.sections[0].blocks == ("First paragraph wrapped here.", "Second one.")


def test_text_in_windows_1252_and_utf16_is_decoded(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("café crème".encode("cp1252"))
    (tmp_path / "wide.txt").write_bytes("naïve text".encode("utf-16"))
    assert load(tmp_path / "latin.txt").sections[0].blocks == ("café crème",)
    assert load(tmp_path / "wide.txt").sections[0].blocks == ("naïve text",)


def test_html_structure_from_headings_without_nav_script_style(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Manual</title><style>p { color: red }</style></head><body>"
        "<nav><a href='/'>Home</a> Next</nav><div class='navheader'>Prev Up Next</div>"
        "<h1>Manual</h1><p>Intro <b>bold</b>\n text.</p>"
        "<h2>Install</h2><p>Step one.</p><ul><li>apt</li><li>pip</li></ul>"
        "<pre>make\nmake install</pre>"
        "<table><tr><th>flag</th><th>meaning</th></tr><tr><td>-v</td><td>verbose</td></tr></table>"
        "<h3>Linux</h3><p>Use apt.</p><h2>Usage</h2><p>Run it.</p>"
        "<script>alert('no')</script><!-- a comment --></body></html>"
    )
    doc = load(path)
    assert doc.kind == "html" and doc.title == "Manual"
    by_heading = {s.heading: s.blocks for s in doc.sections}
    assert by_heading[("Manual",)] == ("Intro bold text.",)
    assert by_heading[("Manual", "Install")] == (
        "Step one.",
        "apt",
        "pip",
        "make\nmake install",
        "flag | meaning\n-v | verbose",
    )
    assert by_heading[("Manual", "Install", "Linux")] == ("Use apt.",)
    assert by_heading[("Manual", "Usage")] == ("Run it.",)
    text = " ".join(b for s in doc.sections for b in s.blocks)
    for gone in ("Home", "Prev", "alert", "color", "comment"):
        assert gone not in text


def test_html_page_title_prefixes_headings_and_note_boxes_end_with_their_container(tmp_path: Path) -> None:
    path = tmp_path / "ref.html"
    path.write_text(
        "<html><head><title>CREATE INDEX</title></head><body>"
        "<div class='sect'><div class='titlepage'><h2>Notes</h2></div><p>General notes.</p>"
        "<div class='tip'><h3>Tip</h3><p>A tip.</p></div><p>More notes.</p>"
        "<div class='sect2'><h3>Concurrently</h3><p>Build without locks.</p></div></div>"
        "<div class='sect'><h2>Examples</h2><p>An example.</p></div></body></html>"
    )
    sections = [(s.heading, s.blocks) for s in load(path).sections]
    assert sections == [
        (("CREATE INDEX", "Notes"), ("General notes.",)),
        (("CREATE INDEX", "Notes", "Tip"), ("A tip.",)),
        (("CREATE INDEX", "Notes"), ("More notes.",)),
        (("CREATE INDEX", "Notes", "Concurrently"), ("Build without locks.",)),
        (("CREATE INDEX", "Examples"), ("An example.",)),
    ]


def test_pdf_keeps_pages_outline_headings_and_title(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    pages = [["Tables store rows."], ["Indexes speed up reads.", "They cost writes."], ["More about indexes."]]
    path.write_bytes(pdf_with_outline(pages, [("Tables", 0), ("Indexes", 1)], title="The Manual"))
    doc = load(path)
    assert doc.kind == "pdf" and doc.title == "The Manual"
    assert [(s.page, s.heading) for s in doc.sections] == [(1, ("Tables",)), (2, ("Indexes",)), (3, ("Indexes",))]
    assert "Indexes speed up reads." in doc.sections[1].blocks[0]


def test_pdf_without_outline_or_title(tmp_path: Path) -> None:
    path = tmp_path / "plain.pdf"
    path.write_bytes(minimal_pdf([["Just one page (with parentheses)."]]))
    doc = load(path)
    assert doc.title == "plain" and doc.sections[0].heading == () and doc.sections[0].page == 1
    assert doc.sections[0].blocks == ("Just one page (with parentheses).",)


def test_corrupt_encrypted_and_textless_pdfs_are_skipped(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    (tmp_path / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\ngarbage\n")
    (tmp_path / "fake.pdf").write_bytes(b"this is not a pdf at all")
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(minimal_pdf([["secret text"]]))))
    writer.encrypt("password")
    out = io.BytesIO()
    writer.write(out)
    (tmp_path / "locked.pdf").write_bytes(out.getvalue())
    (tmp_path / "blank.pdf").write_bytes(minimal_pdf([[]]))
    assert skipped(tmp_path / "corrupt.pdf").startswith("cannot parse pdf: ")
    assert skipped(tmp_path / "fake.pdf") == "not a PDF (no %PDF- header)"
    assert skipped(tmp_path / "locked.pdf") == "encrypted PDF (needs a password)"
    assert skipped(tmp_path / "blank.pdf") == "no text found (a scanned PDF?)"


def test_jsonl_records_with_metadata_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    lines = [
        json.dumps({"id": 7, "title": "Keys", "body": "Rotate keys.\n\nOften.", "tags": ["sec"]}),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"id": 8, "body": ""}),
        "",
        json.dumps({"id": 9, "body": "No title here."}),
    ]
    path.write_text("\n".join(lines) + "\n")
    doc = load(path, text_field="body")
    assert doc.kind == "jsonl"
    assert [(s.heading, s.blocks, s.metadata) for s in doc.sections] == [
        (("Keys",), ("Rotate keys.", "Often."), {"id": 7, "tags": ["sec"]}),
        ((), ("No title here.",), {"id": 9}),
    ]
    assert [(s.source, s.reason.split(" (")[0]) for s in doc.skipped] == [
        ("data.jsonl:2", "not valid JSON"),
        ("data.jsonl:3", "a JSON list, not an object"),
        ("data.jsonl:4", "no text in field 'body'"),
    ]


def test_jsonl_without_any_record_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "bad.ndjson").write_text('{"other": 1}\nnope\n')
    assert skipped(tmp_path / "bad.ndjson").startswith("no JSON records with text in field 'text'")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("binary.txt", b"\x00\x01\x02\x03binary\x00", "binary content (NUL bytes), not text"),
        ("binary.md", bytes(range(256)) * 4, "binary content (NUL bytes), not text"),
        ("binary.html", b"<html>\x00\x00\x00</html>", "binary content (NUL bytes), not HTML"),
        ("empty.md", b"", "empty file"),
        ("blank.txt", b"   \n\n  \n", "empty file"),
        (
            "comments.html",
            b"<html><body><script>x()</script><!-- c --></body></html>",
            "no text found (only navigation, scripts or a table of contents)",
        ),
        ("image.png", b"\x89PNG\r\n\x1a\n", "unsupported file type .png"),
        ("Makefile", b"all:\n", "unsupported file type (no extension)"),
    ],
)
def test_bad_files_are_skipped_with_a_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    (tmp_path / name).write_bytes(content)
    assert skipped(tmp_path / name) == reason


def test_missing_and_oversized_files(tmp_path: Path) -> None:
    assert skipped(tmp_path / "gone.md") == "no such file or directory"
    (tmp_path / "big.txt").write_text("x" * 100)
    result = load_file(tmp_path / "big.txt", options=LoadOptions(max_bytes=10))
    assert isinstance(result, Skipped) and result.reason.startswith("larger than 10 bytes")


def test_folders_are_walked_recursively_in_order_with_sources_relative_to_the_root(corpus: Path) -> None:
    results = list(load_paths([corpus]))
    assert [r.source for r in results] == [
        "logo.png",
        "manual.pdf",
        "notes.txt",
        "page.html",
        "records.jsonl",
        "guide/install.md",
    ]
    assert isinstance(results[0], Skipped) and all(isinstance(r, Document) for r in results[1:])
    # a file given directly is named by its file name
    assert [r.source for r in load_paths([corpus / "guide" / "install.md"])] == ["install.md"]


def test_hidden_files_only_on_request(corpus: Path) -> None:
    names = [p.name for p, _ in walk([corpus], LoadOptions(include_hidden=True))]
    assert ".hidden.md" in names
    assert ".hidden.md" not in [p.name for p, _ in walk([corpus])]
