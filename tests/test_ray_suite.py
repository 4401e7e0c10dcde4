"""The Ray tests (tests/scale) in a fresh interpreter, as part of the one ``python -m pytest`` run.

Ray starts its cluster's processes with a ``preexec_fn`` after fork; in the whole suite's process,
which by then runs many native threads (onnxruntime, torch, faiss), that crashed with a segmentation
fault. A fresh interpreter started for them alone is what a user's Ray driver is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_ray_suite_passes_in_its_own_interpreter(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    env = {**os.environ, "HYBRID_RAY_SUITE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t")]
    done = subprocess.run(
        [*command, "tests/scale"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    tail = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, tail
    assert " passed" in done.stdout and " failed" not in done.stdout, tail
