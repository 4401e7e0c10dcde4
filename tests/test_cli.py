"""The ``hybrid`` command line as a real process: ingest, search, versions, demo, serve and error exits.

(``hybrid eval`` is tested in tests/eval/test_cli.py.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(*args: str, color: bool = False, columns: int = 200, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": str(columns)}
    env.pop("FORCE_COLOR", None)
    if color:
        env["FORCE_COLOR"] = "1"
    else:
        env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "hybrid.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def assert_user_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    assert message in " ".join(ANSI.sub("", done.stderr).split()), done.stderr


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with one table ingested from a small folder (hashing embedder)."""
    root = tmp_path_factory.mktemp("cli")
    docs = root / "docs"
    (docs / "sql").mkdir(parents=True)
    (docs / "sql" / "create-index.md").write_text(
        "# CREATE INDEX\n\n## Building Indexes Concurrently\n\n"
        "Creating an index concurrently builds it without locking out writes to the table.\n\n"
        "## Examples\n\nCREATE INDEX title_idx ON films (title);\n"
    )
    (docs / "vacuum.html").write_text(
        "<html><head><title>VACUUM</title></head><body><nav>Prev Next</nav><h1>VACUUM</h1>"
        "<h2>Description</h2><p>VACUUM FULL rewrites the entire table into a new file, reclaiming space.</p>"
        "</body></html>"
    )
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really")
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    db = root / "db"
    done = run(
        "ingest", str(docs), "--db", str(db), "--table", "manual", "--embedder", "hashing", "--chunk-size", "200"
    )
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert (
        "manual: 2 files read, 3 chunks (+3 written, -0 removed; 2 new, 0 changed, 0 unchanged files), 2 skipped" in out
    )
    assert "skipped broken.pdf: cannot parse pdf" in out
    assert "skipped photo.jpg: unsupported file type .jpg" in out
    return db


def test_ingest_again_is_idempotent(ingested: Path, tmp_path: Path) -> None:
    docs = ingested.parent / "docs"
    done = run("ingest", str(docs), "--db", str(ingested), "--table", "manual", "--chunk-size", "200")
    assert done.returncode == 0, done.stderr
    assert "3 chunks (+0 written, -0 removed; 0 new, 0 changed, 2 unchanged files)" in " ".join(done.stdout.split())


def test_search_prints_source_heading_and_marked_terms(ingested: Path) -> None:
    done = run(
        "search", "build indexes concurrently", "--db", str(ingested), "--table", "manual", color=True, columns=400
    )
    assert done.returncode == 0, done.stderr
    plain = ANSI.sub("", done.stdout)
    assert "sql/create-index.md" in plain and "CREATE INDEX > Building Indexes Concurrently" in plain
    # stemmed like the index: "builds" and "concurrently" are marked for "build ... concurrently"
    marked = re.findall(r"\x1b\[1;33m(\w+)\x1b\[0m", done.stdout)
    assert {"builds", "concurrently"} <= set(marked), marked


@pytest.mark.parametrize("search_type", ["hybrid", "fts", "vector"])
def test_search_types_filters_and_json(ingested: Path, search_type: str) -> None:
    done = run(
        "search", "vacuum full table", "--db", str(ingested), "--table", "manual",
        "--type", search_type, "--where", "source LIKE '%.html'", "--limit", "2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    hits = [json.loads(line) for line in done.stdout.splitlines()]
    assert [h["source"] for h in hits] == ["vacuum.html"]
    assert hits[0]["heading"] == "VACUUM > Description" and "vector" not in hits[0]


def test_search_with_a_reranker(ingested: Path) -> None:
    done = run("search", "reclaim space", "--db", str(ingested), "--table", "manual", "--rerank", "mmr", "--json")
    assert done.returncode == 0, done.stderr
    hits = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(hits) == 3 and all("_relevance_score" in h for h in hits)


def test_versions_lists_the_history(ingested: Path) -> None:
    done = run("versions", "--db", str(ingested), "--table", "manual")
    assert done.returncode == 0, done.stderr
    assert re.search(r"1 .* create .*\n", done.stdout) and "merge_insert" in done.stdout
    assert "create_index" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "--table", "nope"], "no table 'nope'"),
        (["search", "x", "--table", "manual", "--where", "year > 2000"], "unknown column 'year'"),
        (["search", "x", "--table", "manual", "--where", "source = "], "malformed where"),
        (["search", "   ", "--table", "manual"], "the query is empty"),
        (["search", "x", "--table", "manual", "--rerank", "magic"], "unknown reranker 'magic'"),
        (["versions", "--table", "nope"], "no table 'nope'"),
    ],
)
def test_errors_are_one_red_line_and_exit_2(ingested: Path, args: list[str], message: str) -> None:
    done = run(*args, "--db", str(ingested), color=True)
    assert_user_error(done, message)
    assert "\x1b[" in done.stderr  # styled (red) on a colour terminal


def test_errors_without_a_database_or_documents(tmp_path: Path) -> None:
    assert_user_error(run("search", "x", "--db", str(tmp_path / "none")), "no database folder at")
    assert not (tmp_path / "none").exists()
    assert_user_error(run("versions", "--db", str(tmp_path / "none")), "no database folder at")
    assert_user_error(
        run("ingest", str(tmp_path / "missing"), "--db", str(tmp_path / "db")), "no such file or directory"
    )
    (tmp_path / "a.md").write_text("# A\n\ntext\n")
    done = run("ingest", str(tmp_path / "a.md"), "--db", str(tmp_path / "db"), "--embedder", "nonsense")
    assert_user_error(done, "no embedder named 'nonsense'")
    done = run("ingest", str(tmp_path / "a.md"), "--db", str(tmp_path / "db"), "--overlap", "900")
    assert_user_error(done, "overlap must be an integer in [0, size)")
    done = run("ingest", str(tmp_path / "a.md"), "--db", str(tmp_path / "db"), "--embedder-config", "{bad")
    assert_user_error(done, "--embedder-config is not JSON")


def test_a_bad_option_value_is_a_usage_error() -> None:
    done = run("search", "x", "--db", ".", "--type", "magic")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "magic" in done.stderr


def test_demo_runs_without_arguments_but_the_embedder(tmp_path: Path) -> None:
    done = run("demo", "--embedder", "hashing", "--db", str(tmp_path / "demo"), columns=400)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "demo: 5 files read" in out and "0 skipped" in out
    assert "Security handbook > Secrets > Rotating API keys" in out
    assert "Database internals > Write-ahead logging" in out
    assert "Sourdough starter" in out


def test_serve_refuses_a_missing_database_and_documents_its_options(tmp_path: Path) -> None:
    assert_user_error(run("serve", "--db", str(tmp_path / "none")), "no database folder at")
    done = run("serve", "--help")
    assert done.returncode == 0 and all(o in done.stdout for o in ("--db", "--host", "--port", "--config"))


def test_the_entry_point_lists_every_command() -> None:
    exe = shutil.which("hybrid", path=str(Path(sys.executable).parent))
    done = subprocess.run(
        [exe or sys.executable, *([] if exe else ["-m", "hybrid.cli"]), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    for command in ("ingest", "search", "versions", "demo", "serve", "eval"):
        assert command in done.stdout


def test_optimize_merges_and_watch_does_the_due_upkeep(tmp_path: Path) -> None:
    import hybrid

    db = hybrid.connect(tmp_path, upkeep=None)
    t = db.create_table("docs", [{"id": i, "text": f"row {i} alpha", "v": [float(i), 1.0]} for i in range(50)])
    t.create_fts_index(["text"])
    t.create_vector_index("v", metric="l2")
    for i in range(50, 70):  # 20 single-row appends: 20 small fragments, 20 unindexed rows
        t.add([{"id": i, "text": f"row {i} beta", "v": [float(i), 1.0]}])
    watched = run("optimize", "--db", str(tmp_path), "--watch", "0.1", "--rounds", "2")
    assert watched.returncode == 0, watched.stderr
    assert "docs: compact" in watched.stderr  # 16 one-row fragments are due; 20 unindexed rows are not
    assert len(t.snapshot().manifest.fragments) < 10
    assert {s["unindexed_rows"] for s in t.index_stats()} == {20}
    done = run("optimize", "--db", str(tmp_path), "--table", "docs")
    assert done.returncode == 0, done.stderr
    assert "merge_index, merge_index" in done.stderr
    assert {s["unindexed_rows"] for s in t.index_stats()} == {0}
    assert t.search("beta").limit(30).to_arrow().num_rows == 20
    assert_user_error(run("optimize", "--db", str(tmp_path), "--table", "nope"), "no table 'nope'")
