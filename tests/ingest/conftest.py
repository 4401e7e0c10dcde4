"""Small files of every supported type, written by the tests themselves."""

from __future__ import annotations

import io
from pathlib import Path

import pytest


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def minimal_pdf(pages: list[list[str]]) -> bytes:
    """A valid PDF written by hand: one Helvetica text line per string, one page per list."""
    objects: list[bytes] = []
    n = len(pages)
    page_ids = [4 + 2 * i for i in range(n)]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {n} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        for line in lines:
            ops += [f"({_escape(line)}) Tj", "T*"]
        ops.append("ET")
        stream = "\n".join(ops).encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {page_ids[i] + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def pdf_with_outline(pages: list[list[str]], outline: list[tuple[str, int]], title: str | None = None) -> bytes:
    """`minimal_pdf` plus bookmarks ``(title, 0-based page)`` and a document title, added with pypdf."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(minimal_pdf(pages))))
    for name, page in outline:
        writer.add_outline_item(title=name, page_number=page)
    if title:
        writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder with one readable file of each type, and some that must be skipped."""
    root = tmp_path / "corpus"
    (root / "guide").mkdir(parents=True)
    (root / "guide" / "install.md").write_text(
        "# Install\n\nRun the installer.\n\n## Linux\n\nUse the package manager to install it.\n\n"
        "## Windows\n\nDownload the MSI and run it.\n"
    )
    (root / "notes.txt").write_text("Plain notes about vacuum.\n\nA second paragraph about indexes.\n")
    (root / "page.html").write_text(
        "<html><head><title>Reference</title><script>var x = 1;</script></head><body>"
        "<nav>Home | Up | Next</nav><h1>Reference</h1><p>Intro text.</p>"
        "<h2>Options</h2><p>The verbose option prints more.</p></body></html>"
    )
    (root / "manual.pdf").write_bytes(
        pdf_with_outline([["Page one talks about tables."], ["Page two talks about indexes."]], [("Tables", 0)])
    )
    (root / "records.jsonl").write_text(
        '{"id": 1, "title": "First", "text": "Record one text.", "lang": "en"}\n'
        '{"id": 2, "title": "Second", "text": "Record two text.", "lang": "de"}\n'
    )
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (root / ".hidden.md").write_text("# Hidden\n\nnever read\n")
    return root
