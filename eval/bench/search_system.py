"""What every system of the search benchmark offers (the adapters are in search_hybrid, search_floor
and search_lance), and how a query of one kind is run and its ids read back."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench.frame import now
from bench.search_data import Where


class System:
    name = "?"

    def __init__(self, root: Path, args: argparse.Namespace):
        self.root = root / self.name
        self.root.mkdir(parents=True, exist_ok=True)
        self.args = args
        self.build: dict[str, Any] = {}

    def dirs(self) -> list[Path]:
        """What to read into the page cache before timed queries."""
        return [self.root]

    def prepare(self) -> None: ...

    def vector(self, v: np.ndarray, where: Where | None) -> Any: ...

    def text(self, s: str, where: Where | None) -> Any: ...

    def hybrid(self, s: str, v: np.ndarray, where: Where | None) -> Any: ...


def result_ids(out: Any) -> np.ndarray:
    if isinstance(out, np.ndarray):
        return out.astype(np.int64)
    return np.asarray(out.column("id").to_numpy(zero_copy_only=False), dtype=np.int64)


def run_query(st: System, kind: str, where: Where | None, text: str, vec: np.ndarray) -> Any:
    if kind == "vector":
        return st.vector(vec, where)
    if kind == "text":
        return st.text(text, where)
    return st.hybrid(text, vec, where)


class DatabaseSystem(System):
    """A system whose table lives in ``<module>.connect(<root>/db)`` (hybrid, LanceDB)."""

    def __init__(self, root: Path, args: argparse.Namespace, mod: Any):
        super().__init__(root, args)
        self.mod = mod
        self.db = mod.connect(str(self.root / "db"))

    def load(self, table: pa.Table) -> None:
        t0 = now()
        self.t = self.db.create_table("docs", data=table)
        self.build["ingest_seconds"] = now() - t0

    def reopen(self) -> None:
        """A fresh reader, like another process opening the table."""
        self.t = self.mod.connect(str(self.root / "db")).open_table("docs")
