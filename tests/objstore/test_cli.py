"""The ``hybrid`` command line on an S3 database: ``--db s3://bucket/prefix``, options from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.objstore.conftest import options


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hybrid.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200", **env},
    )


def test_ingest_search_check_on_s3(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "backup.md").write_text("# Backups\n\nSnapshots of the volume are taken every night at two.\n")
    (docs / "keys.md").write_text("# Keys\n\nRotate the API keys every ninety days.\n")
    env = {"HYBRID_STORAGE_OPTIONS": json.dumps(options(s3_endpoint, tmp_path / "cache"))}
    uri = f"s3://{bucket}/kb"
    done = run(env, "ingest", str(docs), "--db", uri, "--table", "manual", "--embedder", "hashing")
    assert done.returncode == 0, done.stderr
    # another cache folder: the search reads the store
    env = {"HYBRID_STORAGE_OPTIONS": json.dumps(options(s3_endpoint, tmp_path / "cache2"))}
    done = run(env, "search", "rotate keys", "--db", uri, "--table", "manual", "--type", "fts", "--json")
    assert done.returncode == 0, done.stderr
    hits = [json.loads(line) for line in done.stdout.splitlines()]
    assert hits and hits[0]["source"].endswith("keys.md")
    done = run(env, "check", "--db", uri, "--table", "manual")
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout + done.stderr


def test_bad_store_is_one_clear_line(tmp_path: Path) -> None:
    env = {"HYBRID_STORAGE_OPTIONS": json.dumps(options("http://127.0.0.1:9", tmp_path / "cache"))}
    done = run(env, "search", "x", "--db", "s3://bucket/kb", "--table", "manual")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "unreachable" in done.stderr
