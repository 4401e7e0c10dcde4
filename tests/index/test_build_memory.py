"""A compressed index build's pass over the table does not leave the table mapped in the process.

`vector_batches` (what builds, their training sample aside, and the tuner's exact neighbours read) copies
the table's vectors batch by batch out of the data file's map; each stored chunk's pages are released
behind it. Measured in a fresh process (peak RSS, VmHWM) over a 25 MB data file read 1,024 rows at a
time: the peak grows by a few batches, not by the file (before: by the whole file).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

import hybrid

N, DIM = 16_384, 384

_PASS = """
import sys
from pathlib import Path
import numpy as np
import hybrid
from hybrid.index.rescore import vector_batches
from hybrid.storage import checksums

def status(key):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024

checksums.MAPPED_BLOCK = 1 << 20  # the file's first open verifies it: 1 MiB at a time
t = hybrid.connect(sys.argv[1], upkeep=None).open_table("docs")
snap = t.indexed_snapshot().snapshot
rel = snap.manifest.fragments[0].files[-1].path
total = np.zeros(int(sys.argv[2]), np.float64)
before, rows = None, 0
for ids, vectors in vector_batches(snap, "v", 1024):
    total += vectors.sum(axis=0)
    rows += len(ids)
    before = before or status("VmRSS")  # after the first batch: the libraries' one-time set-up done
print(status("VmHWM") - before, (snap.root / rel).stat().st_size, rows, " ".join(map(repr, total.tolist())))
"""


def test_a_pass_over_the_table_releases_its_pages_behind_it(tmp_path: Path) -> None:
    vectors = np.random.default_rng(3).standard_normal((N, DIM)).astype(np.float32)
    rows = pa.table({"id": np.arange(N), "v": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM)})
    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", rows)
    t.add(pa.table({"id": np.arange(N, N + 100), "v": rows.column("v").slice(0, 100)}))  # a second fragment
    done = subprocess.run([sys.executable, "-c", _PASS, str(tmp_path), str(DIM)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    grew, size, count, *sums = done.stdout.split()
    assert int(count) == N + 100  # every row, once
    expected = vectors.sum(axis=0, dtype=np.float64) + vectors[:100].sum(axis=0, dtype=np.float64)
    np.testing.assert_allclose(np.array(sums, np.float64), expected, rtol=1e-4, atol=1e-2)
    assert int(size) > 24 << 20
    assert int(grew) < 8 << 20, (int(grew), int(size))
