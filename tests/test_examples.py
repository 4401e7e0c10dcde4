"""The examples run as real processes: the quickstart, and chat_with_docs on a tiny folder written here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ChatEndpoint

ROOT = Path(__file__).resolve().parent.parent
CHAT = ROOT / "examples" / "chat_with_docs" / "chat.py"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k != "FORCE_COLOR"}
    return {**out, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **extra}


def chat(*args: str, stdin: str = "", **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHAT), *args], input=stdin, capture_output=True, text=True, timeout=180, env=env(**extra)
    )


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "indexes.md").write_text(
        "# Indexes\n\n## Building Indexes Concurrently\n\n"
        "Use CREATE INDEX CONCURRENTLY to build an index without locking out writes.\n\n"
        "## Dropping\n\nDROP INDEX removes an index.\n"
    )
    (root / "vacuum.html").write_text(
        "<html><head><title>VACUUM</title></head><body><h1>VACUUM</h1><h2>Full</h2>"
        "<p>VACUUM FULL rewrites the whole table and returns the space to the operating system.</p></body></html>"
    )
    (root / "notes.txt").write_text("Backups should be tested regularly.\n")
    (root / "junk.bin").write_bytes(b"\x00\x01")
    return root


def test_quickstart_runs(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"  # the system temp folder of the run: the quickstart must leave it empty
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env(TMPDIR=str(scratch)),
    )
    assert done.returncode == 0, done.stderr
    # onnxruntime itself writes one small ".ses" file into the temp folder when it is imported
    assert [p.name for p in scratch.iterdir() if p.name != ".ses"] == []
    out = done.stdout
    assert "_score = BM25, higher is better" in out and "_distance, lower is closer" in out
    assert "created Table('docs'" in out and "fixed_size_list<item: float>[384]" in out
    assert "full-text (BM25) for 'how often should API keys be rotated?'" in out
    first_bm25 = out.split("full-text (BM25)")[1].splitlines()[1]
    assert "Rotating API keys" in first_bm25
    assert "version history:" in out and "time travel: version 3 had 10 rows" in out


def test_chat_answers_with_cited_passages_offline(docs: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    q1, q2 = "how do I create an index concurrently?", "what does VACUUM FULL do?"
    done = chat("--docs", str(docs), "--db", db, "--embedder", "hashing", "-q", q1, "--question", q2, "--limit", "2")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "ingested" in out and "3 files, 4 chunks (4 embedded now" in out and "1 skipped" in out
    assert "skipped junk.bin: unsupported file type .bin" in out
    first, second = out.split(q1)[1].split(q2)
    assert "[1] indexes.md — Indexes > Building Indexes Concurrently" in first
    assert "[1] vacuum.html — VACUUM > Full" in second
    assert "answer (" not in out  # no endpoint configured: passages only
    # a second run embeds nothing again, and colour marks the matched words
    again = chat("--docs", str(docs), "--db", db, "-q", q2, "--limit", "1", FORCE_COLOR="1")
    assert again.returncode == 0, again.stderr
    assert "(0 embedded now, 0 removed, 3 files unchanged)" in ANSI.sub("", again.stdout)
    assert {"VACUUM", "FULL"} <= set(re.findall(r"\x1b\[1;33m(\w+)\x1b\[0m", again.stdout))


def test_chat_reads_questions_from_stdin_and_reuses_the_table(docs: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    assert chat("--docs", str(docs), "--db", db, "--embedder", "hashing", "-q", "backups").returncode == 0
    done = chat("--db", db, "--limit", "1", stdin="backups tested\n\nwhat does vacuum full do\n")
    assert done.returncode == 0, done.stderr
    assert "[1] notes.txt" in done.stdout and "[1] vacuum.html — VACUUM > Full" in done.stdout
    assert "ingested" not in done.stdout


def test_chat_errors_exit_2(tmp_path: Path) -> None:
    done = chat("--docs", str(tmp_path / "missing"), "--db", str(tmp_path / "db"), "-q", "x")
    assert done.returncode == 2 and "no such file or directory" in done.stderr and "Traceback" not in done.stderr


def test_chat_without_docs_ingests_hybrids_own_documentation(tmp_path: Path) -> None:
    done = chat("--db", str(tmp_path / "db"), "--embedder", "hashing", "-q", "what does cleanup remove?")
    assert done.returncode == 0, done.stderr
    assert "ingested " in done.stdout and "docs" in done.stdout.split("ingested ")[1].split(":")[0]
    assert "[1] " in done.stdout and ".md" in done.stdout.split("[1] ")[1].splitlines()[0]


def test_chat_asks_an_openai_compatible_endpoint_with_the_numbered_passages(
    docs: Path, tmp_path: Path, chat_endpoint: ChatEndpoint
) -> None:
    chat_endpoint.reply = "Use CONCURRENTLY [1]."
    done = chat(
        "--docs", str(docs), "--db", str(tmp_path / "db"), "--embedder", "hashing", "--limit", "2",
        "-q", "how do I create an index concurrently?", "--model", "tiny-model",
        OPENAI_BASE_URL=chat_endpoint.url, OPENAI_API_KEY="sk-test",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "answer (tiny-model):" in done.stdout and "Use CONCURRENTLY [1]." in done.stdout
    (request,) = chat_endpoint.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "tiny-model"
    prompt = request["body"]["messages"][-1]["content"]
    assert "[1] (indexes.md — Indexes > Building Indexes Concurrently)" in prompt and "[2] (" in prompt
    assert prompt.endswith("Question: how do I create an index concurrently?")
    assert "Cite" in request["body"]["messages"][0]["content"]


def test_chat_keeps_the_passages_when_the_endpoint_fails(docs: Path, tmp_path: Path) -> None:
    done = chat(
        "--docs", str(docs), "--db", str(tmp_path / "db"), "--embedder", "hashing", "-q", "vacuum",
        "--model", "m", OPENAI_BASE_URL="http://127.0.0.1:9/v1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "[1] vacuum.html" in done.stdout and "no generated answer (ConnectError" in done.stdout
