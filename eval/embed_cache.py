"""Document embeddings kept on disk between eval runs, keyed by the text's hash.

Embedding a collection's chunks (webfaq: some 20,000 per layout) costs most of a chunked
evaluation; a change to the chunk layout (the title in the dense text or not) changes only
some texts. :func:`load` fills an embedder's in-memory cache (:class:`hybrid.embedders.base.
EmbeddingCache`) from ``<work>/<embedder>.npz`` and :func:`save` writes it back, so a table
built after :func:`load` embeds only the texts never seen. Run alone, it embeds a collection's
documents and its chunks ahead of time (both layouts), saving every ``--every`` texts:

    python eval/embed_cache.py <data>/webfaq --work <folder> --chunk 128
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from hybrid.embedders import create
from hybrid.embedders.base import EmbeddingCache, TextEmbedder


def cache_path(work: Path, embedder: TextEmbedder) -> Path:
    return work / f"embeddings_{embedder.name}.npz"


def load(work: Path, embedder: TextEmbedder) -> int:
    """Put the vectors saved for this embedder into its cache; the number loaded."""
    path = cache_path(work, embedder)
    if not path.exists():
        return 0
    with np.load(path) as saved:
        keys, vectors = saved["keys"], saved["vectors"]
    embedder.cache.max_entries = max(embedder.cache.max_entries, 2 * len(keys) + 100_000)
    for k, v in zip(keys, vectors, strict=True):
        embedder.cache.put(bytes(k), v)
    return len(keys)


def save(work: Path, embedder: TextEmbedder) -> int:
    """Write the embedder's cached document vectors (atomically); the number written."""
    items = embedder.cache.items()
    if not items:
        return 0
    keys = np.array([k for k, _ in items], dtype="S32")
    vectors = np.stack([v for _, v in items]).astype(np.float32)
    path = cache_path(work, embedder)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, keys=keys, vectors=vectors)
    os.replace(tmp, path)
    return len(items)


def main() -> None:
    from hybrid.eval.chunked import chunk_rows
    from hybrid.eval.collection import load_beir

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("collections", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--embedder", default="onnx-minilm")
    ap.add_argument("--every", type=int, default=1024)
    ap.add_argument("--titled-only", action="store_true", help="skip the chunks without their title")
    args = ap.parse_args()
    embedder = create(args.embedder)
    if not isinstance(embedder, TextEmbedder):
        raise SystemExit(f"{args.embedder} keeps no cache")
    print(f"loaded {load(args.work, embedder)} vectors", flush=True)
    for path in args.collections:
        coll = load_beir(path, "test")
        # the unchunked documents and the titled chunks first: the dense text of every layout but "none"
        texts = [r["content"] for r in coll.documents()]
        for title in (True, False)[: 1 if args.titled_only else 2]:
            texts += [r["content"] for r in chunk_rows(coll, args.chunk, title=title)]
        todo = list(dict.fromkeys(t for t in texts if embedder.cache.get(EmbeddingCache.key("document", t)) is None))
        print(f"{coll.name}: {len(texts)} texts, {len(todo)} to embed", flush=True)
        started = time.perf_counter()
        for start in range(0, len(todo), args.every):
            embedder.embed_documents(todo[start : start + args.every])
            save(args.work, embedder)
            done = min(start + args.every, len(todo))
            print(f"  {done}/{len(todo)} in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
