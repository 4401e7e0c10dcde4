"""`hybrid serve --open` opens the page once the server answers; `hybrid demo` names the page."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parents[2]


def test_serve_open_opens_the_page(tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"  # what webbrowser runs (BROWSER): records the URL it was given
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "db").mkdir()
    env = {
        **os.environ,
        "BROWSER": f"{browser} %s",
        "HYBRID_API_KEYS": "open-test-key-0123456789:read",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "hybrid.cli", "serve", "--db", str(tmp_path / "db"), "--port", str(port)]
    proc = subprocess.Popen([*command, "--workers", "1", "--open"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not opened.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert opened.exists(), f"no browser was opened; server exited with {proc.poll()}"
        assert opened.read_text().strip() == f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"the web page: http://127.0.0.1:{port}/" in err
    assert "open-test-key" not in err
