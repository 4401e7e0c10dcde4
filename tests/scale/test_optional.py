"""Ray stays optional: ``import hybrid`` never imports it."""

from __future__ import annotations

import subprocess
import sys


def test_import_hybrid_does_not_import_ray() -> None:
    code = "import sys, hybrid; t = hybrid.connect; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
