"""Nothing is written outside the folders a user chose (and the cache folder): not at import, not by tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["hybrid", "hybrid.aio", "hybrid.cli", "hybrid.embedders", "hybrid.ingest", "hybrid.rerankers", "hybrid.eval"]


def test_importing_the_package_writes_nothing(tmp_path: Path) -> None:
    temp, home, cwd = (tmp_path / name for name in ("temp", "home", "cwd"))
    for folder in (temp, home, cwd):
        folder.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("HYBRID_CACHE_DIR", None)
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    done = subprocess.run(
        [sys.executable, "-c", code, *MODULES], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in temp.iterdir()] == []
    assert [p.name for p in home.iterdir()] == [] and [p.name for p in cwd.iterdir()] == []


def test_tests_make_their_temporary_folders_in_tmp_path(tmp_path: Path) -> None:
    made = Path(tempfile.mkdtemp(prefix="hybrid-"))
    assert made.parent == tmp_path and Path(tempfile.gettempdir()) == tmp_path


def test_numpy_files_are_loaded_under_the_one_lock() -> None:
    """Parallel search branches open index files at once; numpy parses .npy headers with the compiler, which
    CPython 3.11 cannot run in two threads at once (hybrid.storage.npy): every load goes through that module."""
    loose = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "hybrid").rglob("*.py"))
        if path != ROOT / "hybrid" / "storage" / "npy.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "np.load(" in line or "numpy.load(" in line
    ]
    assert loose == []
