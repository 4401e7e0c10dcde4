"""`HybridVectorStore` beyond LangChain's standard suite: hybrid retrieval with the real
packaged MiniLM, filters (checked against a Python oracle), reranking, metadata, upserts,
deletes, reopening, relevance scores, MMR, index upkeep and the RAG example."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("langchain_core", reason="langchain-core is not installed (langchain extra)")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings  # noqa: E402

import hybrid  # noqa: E402
from hybrid.embedders import HashingEmbedder  # noqa: E402
from hybrid.integrations import langchain as lc  # noqa: E402
from hybrid.integrations.langchain import HybridEmbeddings, HybridVectorStore  # noqa: E402
from hybrid.query.fusion import RRF  # noqa: E402
from hybrid.rerankers import CallableReranker  # noqa: E402
from tests.conftest import ChatEndpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

CORPUS = {
    "keys": "Rotate API keys by issuing a new key, deploying it everywhere, then revoking the old one.",
    "passwords": "Store passwords with a slow salted hash such as Argon2 or bcrypt, never in plain text.",
    "btree": "A B-tree index keeps keys sorted so range scans and point lookups take logarithmic time.",
    "wal": "A write-ahead log records changes before they reach the data files, so a crash loses nothing committed.",
    "sourdough": "Feed a sourdough starter flour and water daily until it doubles within a few hours.",
    "car": "The automobile would not start on cold mornings until the mechanic replaced its battery.",
    "kitten": "Our kitten sleeps most of the day and chases laser pointers at night.",
    "jam": "Paper jams in the office printer usually come from damp paper or a worn pickup roller.",
    "toner": "When printouts look faded, shake the toner cartridge or replace it.",
    "driver": "Reinstall the printer driver if documents stay stuck in the print queue.",
    "ticket": "Ticket ZK-31: the coffee machine on the third floor leaks water onto the counter.",
    "garden": "Tomatoes need full sun, deep watering twice a week and a stake to climb.",
}
TOPICS = {
    "keys": "security",
    "passwords": "security",
    "btree": "databases",
    "wal": "databases",
    "jam": "office",
    "toner": "office",
    "driver": "office",
    "ticket": "office",
}


@pytest.fixture(scope="module")
def minilm() -> Any:
    """The packaged all-MiniLM-L6-v2 (loaded once for the module)."""
    pytest.importorskip("sentence_transformers", reason="the models extra is not installed")
    from hybrid.embedders import SentenceTransformerEmbedder

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder()
    embedder.embed_query("warm up")
    return embedder


@pytest.fixture(scope="module")
def corpus_db(tmp_path_factory: pytest.TempPathFactory, minilm: Any) -> hybrid.Database:
    db = hybrid.connect(tmp_path_factory.mktemp("corpus"))
    metadatas = [{"topic": TOPICS.get(k, "other"), "n": i} for i, k in enumerate(CORPUS)]
    HybridVectorStore.from_texts(
        list(CORPUS.values()), minilm, metadatas=metadatas, ids=list(CORPUS), connection=db, table_name="corpus"
    )
    return db


@pytest.fixture(scope="module")
def corpus(corpus_db: hybrid.Database, minilm: Any) -> HybridVectorStore:
    return HybridVectorStore(corpus_db.open_table("corpus"), minilm)


def ids(docs: list[Document]) -> list[str]:
    return [d.id or "" for d in docs]


def fake_store(tmp_path: Path, **options: Any) -> HybridVectorStore:
    return HybridVectorStore.create(DeterministicFakeEmbedding(size=8), uri=tmp_path / "db", **options)


# -- hybrid retrieval with a real model ------------------------------------------------------


def test_hybrid_retriever_finds_a_keyword_match_that_vector_search_misses(corpus: HybridVectorStore) -> None:
    question = "printer trouble reported in ZK-31"
    by_vector = corpus.as_retriever(search_kwargs={"k": 3}).invoke(question)
    assert set(ids(by_vector)) <= {"jam", "toner", "driver"}  # meaning: printers, not the ticket
    by_keywords = corpus.as_retriever(search_type="hybrid", search_kwargs={"k": 3, "query_type": "fts"})
    assert ids(by_keywords.invoke(question))[0] == "ticket"
    hybrid_ = corpus.as_retriever(search_type="hybrid", search_kwargs={"k": 3})
    found = ids(hybrid_.invoke(question))
    assert "ticket" in found and len(set(found) & {"jam", "toner", "driver"}) == 2


def test_hybrid_retriever_finds_a_meaning_match_that_keywords_miss(corpus: HybridVectorStore) -> None:
    question = "how do I keep my secrets safe"
    keyword_hits = ids(corpus.hybrid_search(question, k=3, query_type="fts"))
    assert "passwords" not in keyword_hits and keyword_hits  # BM25 matches only "keep(s)"
    assert ids(corpus.similarity_search(question, k=1)) == ["passwords"]
    found = ids(corpus.as_retriever(search_type="hybrid", search_kwargs={"k": 3}).invoke(question))
    assert "passwords" in found


def test_hybrid_scores_and_fusion(corpus: HybridVectorStore) -> None:
    scored = corpus.hybrid_search_with_score("printer trouble reported in ZK-31", k=4, fusion=RRF(k=60))
    scores = [s for _, s in scored]
    assert scores == sorted(scores, reverse=True)
    assert 0 < scores[0] <= 2 / 61  # two RRF(k=60) contributions at most
    keyword = corpus.hybrid_search_with_score("ZK-31", k=1, query_type="fts")
    assert keyword[0][0].id == "ticket" and keyword[0][1] > 0  # BM25
    with pytest.raises(ValueError, match="query_type"):
        corpus.hybrid_search("x", query_type="semantic")  # type: ignore[arg-type]


def test_async_hybrid_retrieval(corpus: HybridVectorStore) -> None:
    retriever = corpus.as_retriever(search_type="hybrid", search_kwargs={"k": 2, "filter": {"topic": "office"}})
    docs = asyncio.run(retriever.ainvoke("coffee machine ZK-31"))
    assert ids(docs)[0] == "ticket" and all(d.metadata["topic"] == "office" for d in docs)
    assert ids(asyncio.run(corpus.asearch("ZK-31", "hybrid", k=1))) == ["ticket"]


def test_reranking_through_the_retriever(corpus: HybridVectorStore) -> None:
    seen: list[list[str]] = []

    def coffee_first(query: str, texts: list[str]) -> list[float]:
        seen.append(texts)
        return [1.0 if "coffee" in t else 0.0 for t in texts]

    question = "printer paper problems"
    plain = ids(corpus.hybrid_search(question, k=2, filter={"topic": "office"}))
    assert "ticket" not in plain
    retriever = corpus.as_retriever(
        search_type="hybrid",
        search_kwargs={
            "k": 2,
            "filter": {"topic": "office"},
            "reranker": CallableReranker(coffee_first),
            "fetch_k": 10,
        },
    )
    assert ids(retriever.invoke(question))[0] == "ticket"  # reranked up from the candidates
    assert len(seen) == 1 and len(seen[0]) == 4  # every office document was a candidate, no other


def test_mmr_with_real_vectors(tmp_path: Path, minilm: Any) -> None:
    texts = [
        "The cat sat on the mat.",
        "A cat was sitting on the mat.",
        "The cat is sitting on a mat.",
        "Dogs love to fetch sticks in the park.",
    ]
    store = HybridVectorStore.from_texts(texts, minilm, ids=["a", "b", "c", "dog"], uri=tmp_path / "db")
    assert "dog" not in ids(store.similarity_search("cat on a mat", k=2))
    diverse = ids(store.max_marginal_relevance_search("cat on a mat", k=2, fetch_k=4, lambda_mult=0.3))
    assert diverse[0] in {"a", "b", "c"} and diverse[1] == "dog"
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.3})
    assert ids(mmr.invoke("cat on a mat")) == diverse


def test_relevance_scores_are_cosine_similarities(tmp_path: Path, minilm: Any) -> None:
    store = HybridVectorStore.from_texts(list(CORPUS.values()), minilm, ids=list(CORPUS), uri=tmp_path / "db")
    scored = store.similarity_search_with_relevance_scores(CORPUS["kitten"], k=3)
    # queries go through the int8 ONNX MiniLM (cosine >= 0.98 to torch's document vectors), so the
    # identical text scores ~0.995 rather than exactly 1; the exact cosine relation is checked below
    assert scored[0][0].id == "kitten" and scored[0][1] == pytest.approx(1.0, abs=1e-2)
    q = np.asarray(minilm.embed_query(CORPUS["kitten"]))
    for doc, score in scored:
        v = np.asarray(minilm.embed_documents([doc.page_content])[0])
        assert score == pytest.approx(max(0.0, float(q @ v / np.linalg.norm(q) / np.linalg.norm(v))), abs=1e-4)
    above = store.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99})
    assert ids(above.invoke(CORPUS["kitten"])) == ["kitten"]


# -- filters -------------------------------------------------------------------------------

META = [
    {"lang": "en", "year": 2019, "score": 0.5, "draft": False, "author": {"name": "Ann"}, "tags": ["a"]},
    {"lang": "en", "year": 2021, "score": 2.5, "draft": True, "author": {"name": "O'Brien"}},
    {"lang": "de", "year": 2023, "score": 1.0, "draft": False, "author": {"name": "Bo"}, "note": None},
    {"lang": "fr", "year": 2024, "author": {"name": "Ann"}},
    {"lang": "1", "year": 9007199254740993, "score": -3.0},  # > 2**53: compared exactly
    {"year": "2021", "draft": "true"},  # strings that look like a number and a boolean
]


def _get(meta: dict[str, Any], key: str) -> tuple[bool, Any]:
    for part in key.split("."):
        if not isinstance(meta, dict) or part not in meta:
            return False, None
        meta = meta[part]
    return True, meta


def _same_kind(a: Any, b: Any) -> bool:
    def kind(x: Any) -> str:
        return "bool" if isinstance(x, bool) else "num" if isinstance(x, (int, float)) else type(x).__name__

    return kind(a) == kind(b)


def _matches(op: str, arg: Any, present: bool, value: Any) -> bool:
    """One operator of a dict filter, evaluated in Python (values compare only with their kind)."""

    def eq(a: Any) -> bool:
        return value is None if a is None else present and _same_kind(value, a) and value == a

    comparable = present and value is not None and _same_kind(value, arg)
    if op == "$eq":
        return eq(arg)
    if op == "$ne":
        return not eq(arg)
    if op in ("$in", "$nin"):
        return any(eq(a) for a in arg) == (op == "$in")
    if op == "$exists":
        return present == arg
    ordered = {"$gt": lambda: value > arg, "$gte": lambda: value >= arg, "$lt": lambda: value < arg}
    return comparable and ordered.get(op, lambda: value <= arg)()


def oracle(flt: dict[str, Any], meta: dict[str, Any]) -> bool:
    """What a dict filter means, evaluated in Python."""
    ok = True
    for key, cond in flt.items():
        if key == "$and":
            ok &= all(oracle(f, meta) for f in cond)
        elif key == "$or":
            ok &= any(oracle(f, meta) for f in cond)
        elif key == "$not":
            ok &= not oracle(cond, meta)
        else:
            present, value = _get(meta, key)
            for op, arg in (cond if isinstance(cond, dict) else {"$eq": cond}).items():
                ok &= _matches(op, arg, present, value)
    return ok


FILTERS = [
    {"lang": "en"},
    {"lang": "1"},
    {"year": 2021},
    {"year": "2021"},
    {"year": 9007199254740993},
    {"year": 9007199254740992},
    {"score": 1},
    {"score": {"$gt": 0.5}},
    {"score": {"$gte": 0.5, "$lt": 2.5}},
    {"year": {"$lte": 2021}},
    {"draft": True},
    {"draft": False},
    {"draft": "true"},
    {"draft": {"$ne": True}},
    {"lang": {"$ne": "en"}},
    {"lang": {"$in": ["de", "fr"]}},
    {"lang": {"$nin": ["de", "fr"]}},
    {"lang": {"$in": []}},
    {"note": None},
    {"note": {"$exists": True}},
    {"score": {"$exists": False}},
    {"author.name": "Ann"},
    {"author.name": "O'Brien"},
    {"author.name": "x') OR TRUE OR ('"},
    {"lang": "en", "draft": False},
    {"$or": [{"lang": "de"}, {"year": {"$gt": 2023}}]},
    {"$and": [{"lang": "en"}, {"$not": {"draft": True}}]},
    {"$not": {"lang": {"$in": ["en", "de"]}}},
    {},
]


@pytest.fixture(scope="module")
def filtered(tmp_path_factory: pytest.TempPathFactory) -> HybridVectorStore:
    store = fake_store(tmp_path_factory.mktemp("filters"))
    store.add_texts([f"document {i}" for i in range(len(META))], META, ids=[str(i) for i in range(len(META))])
    return store


@pytest.mark.parametrize("flt", FILTERS, ids=[str(f) for f in FILTERS])
def test_dict_filters_match_a_python_oracle(filtered: HybridVectorStore, flt: dict[str, Any]) -> None:
    expected = {str(i) for i, m in enumerate(META) if oracle(flt, m)}
    found = {d.id for d in filtered.similarity_search("document", k=len(META), filter=flt)}
    assert found == expected


def test_filters_apply_to_every_search(filtered: HybridVectorStore) -> None:
    flt = {"lang": "en"}
    assert {d.id for d in filtered.hybrid_search("document", k=10, filter=flt)} == {"0", "1"}
    assert {d.id for d in filtered.hybrid_search("document", k=10, filter=flt, query_type="fts")} == {"0", "1"}
    assert {d.id for d in filtered.max_marginal_relevance_search("document", k=10, filter=flt)} == {"0", "1"}
    assert {d.id for d in filtered.similarity_search("document", k=10, filter="id IN ('2', '3')")} == {"2", "3"}
    sql = "json_extract_string(metadata, '$.author.name') = 'Ann'"
    assert {d.id for d in filtered.similarity_search("document", k=10, filter=sql)} == {"0", "3"}


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ({"lang": {"$regex": "e.*"}}, "unknown operator '\\$regex'"),
        ({"$nor": [{"lang": "en"}]}, "unknown filter operator '\\$nor'"),
        ({"lang'; DROP TABLE x; --": "en"}, "invalid metadata key"),
        ({"year": {"$gt": None}}, "None can only be compared"),
        ({"draft": {"$lt": True}}, "booleans can only be compared"),
        ({"lang": {"$in": "en"}}, "needs a list"),
        ({"lang": {"$eq": ["en"]}}, "filter values must be"),
        ({"score": float("nan")}, "cannot compare"),
        ({"$or": []}, "non-empty list"),
        ("no_such_column = 1", "unknown column 'no_such_column'"),
        ("id = '1'; DELETE FROM t", "single expression|malformed"),
        ("(SELECT 1) = 1", "subqueries"),
        ("", "empty string"),
        (["lang", "en"], "SQL string or a dict"),
    ],
)
def test_bad_filters_raise_filter_error(filtered: HybridVectorStore, flt: Any, message: str) -> None:
    with pytest.raises(hybrid.FilterError, match=message):
        filtered.similarity_search("document", k=2, filter=flt)


def test_typed_metadata_columns(tmp_path: Path) -> None:
    store = fake_store(tmp_path, metadata_columns={"year": pa.int64(), "lang": pa.string()})
    store.add_texts(["a", "b", "c"], [{"year": 2020, "lang": "en", "x": 1}, {"year": 2024}, {}], ids=["a", "b", "c"])
    assert store.table.schema.field("year").type == pa.int64()
    assert store.table.to_arrow(["id", "year"]).to_pylist() == [
        {"id": "a", "year": 2020},
        {"id": "b", "year": 2024},
        {"id": "c", "year": None},
    ]
    assert store.get_by_ids(["a", "b", "c"]) == [
        Document(id="a", page_content="a", metadata={"year": 2020, "lang": "en", "x": 1}),
        Document(id="b", page_content="b", metadata={"year": 2024}),
        Document(id="c", page_content="c", metadata={}),
    ]
    assert {d.id for d in store.similarity_search("a", k=3, filter="year >= 2021")} == {"b"}
    assert {d.id for d in store.similarity_search("a", k=3, filter={"year": {"$lt": 2021}, "x": 1})} == {"a"}
    assert {d.id for d in store.similarity_search("a", k=3, filter={"lang": None})} == {"b", "c"}
    with pytest.raises(hybrid.SchemaError, match="'year'"):
        store.add_texts(["d"], [{"year": "not a year"}])
    assert store.table.count_rows() == 3


# -- documents: metadata, upserts, deletes, reopening --------------------------------------


def test_metadata_round_trips(tmp_path: Path) -> None:
    store = fake_store(tmp_path)
    metadata = {
        "nested": {"a": [1, 2.5, {"b": None}], "ü": "ünïcödé ✓"},
        "flag": True,
        "none": None,
        "big": 2**62,
        "float": 0.1,
        "list": ["x", "y"],
        "quote": 'it\'s "quoted"',
    }
    [doc_id] = store.add_documents([Document(page_content="payload", metadata=metadata)])
    [doc] = store.get_by_ids([doc_id])
    assert doc.metadata == metadata and doc.page_content == "payload"
    assert store.similarity_search("payload", k=1)[0].metadata == metadata
    with pytest.raises(hybrid.SchemaError, match="JSON"):
        store.add_texts(["bad"], [{"when": object()}])
    with pytest.raises(hybrid.SchemaError, match="JSON"):
        store.add_texts(["bad"], [{"nan": float("nan")}])


def test_upsert_by_id_replaces_text_vector_and_metadata(tmp_path: Path) -> None:
    store = fake_store(tmp_path)
    store.add_texts(["red apple", "green pear"], [{"v": 1}, {"v": 1}], ids=["a", "b"])
    assert store.add_texts(["yellow banana"], [{"v": 2}], ids=["a"]) == ["a"]
    assert store.table.count_rows() == 2
    assert store.get_by_ids(["a"]) == [Document(id="a", page_content="yellow banana", metadata={"v": 2})]
    assert ids(store.hybrid_search("apple", k=2, query_type="fts")) == []  # the old text is gone from BM25
    assert ids(store.hybrid_search("banana", k=2, query_type="fts")) == ["a"]
    assert ids(store.similarity_search("yellow banana", k=1)) == ["a"]  # and its vector follows
    # the last of a repeated id wins, and the returned ids follow the input
    assert store.add_texts(["one", "two"], ids=["c", "c"]) == ["c", "c"]
    assert store.get_by_ids(["c"])[0].page_content == "two"
    generated = store.add_texts(["no id"])
    assert len(generated) == 1 and len(generated[0]) == 36  # a UUID
    with pytest.raises(TypeError, match="id #0"):
        store.add_texts(["x"], ids=[7])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="2 ids for 1 texts"):
        store.add_texts(["x"], ids=["p", "q"])


def test_get_by_ids_keeps_request_order_and_skips_missing(tmp_path: Path) -> None:
    store = fake_store(tmp_path)
    store.add_texts(["a", "b", "c"], ids=["1", "2", "it's"])
    assert ids(store.get_by_ids(["it's", "missing", "1", "1"])) == ["it's", "1"]
    assert store.get_by_ids([]) == []


def test_delete_by_ids_filter_and_all(tmp_path: Path) -> None:
    store = fake_store(tmp_path)
    store.add_texts(list("abcde"), [{"g": i % 2} for i in range(5)], ids=list("abcde"))
    version = store.table.version
    assert store.delete(["zz"]) is True and store.delete([]) is True
    assert store.table.version == version  # nothing matched: no empty version written
    store.delete(["a", "b", "zz"])
    assert sorted(ids(store.get_by_ids(list("abcde")))) == ["c", "d", "e"]
    assert "a" not in ids(store.hybrid_search("a", k=5, query_type="fts"))
    store.delete(filter={"g": 0})
    assert ids(store.get_by_ids(list("abcde"))) == ["d"]
    store.delete()
    assert store.table.count_rows() == 0 and store.similarity_search("d", k=1) == []


def test_reopen_in_a_new_store(tmp_path: Path, minilm: Any) -> None:
    db = hybrid.connect(tmp_path / "db")
    first = HybridVectorStore.from_texts(
        list(CORPUS.values()), minilm, metadatas=[{"k": k} for k in CORPUS], ids=list(CORPUS), connection=db
    )
    expected = ids(first.hybrid_search("printer trouble reported in ZK-31", k=3))
    del first
    again = HybridVectorStore(hybrid.connect(tmp_path / "db").open_table("langchain"))  # the table binds MiniLM
    assert isinstance(again.embeddings, HybridEmbeddings) and again.embeddings.embedder.name == "sentence-transformers"
    assert ids(again.hybrid_search("printer trouble reported in ZK-31", k=3)) == expected
    assert again.get_by_ids(["kitten"])[0].metadata == {"k": "kitten"}
    # hybrid's own API sees the same table: the query is embedded by the bound model
    table = db.open_table("langchain")
    assert table.search("young feline", query_type="vector").limit(1).to_list()[0]["id"] == "kitten"
    # exist_ok opens it too, and LangChain embeddings of the same model work on it
    reopened = HybridVectorStore.create(HybridEmbeddings(minilm), connection=db, mode="exist_ok")
    assert reopened.table.count_rows() == len(CORPUS)
    assert ids(reopened.similarity_search("young feline", k=1)) == ["kitten"]


def test_a_store_needs_a_place_and_a_fitting_table(tmp_path: Path) -> None:
    emb = DeterministicFakeEmbedding(size=4)
    with pytest.raises(ValueError, match="connection= .* or uri="):
        HybridVectorStore.from_texts(["a"], emb)
    with pytest.raises(ValueError, match="exactly one"):
        HybridVectorStore.create(emb, uri=tmp_path / "a", connection=hybrid.connect(tmp_path / "b"))
    db = hybrid.connect(tmp_path / "db")
    HybridVectorStore.create(emb, connection=db, table_name="t")
    with pytest.raises(hybrid.TableExistsError):
        HybridVectorStore.create(emb, connection=db, table_name="t")
    plain = db.create_table("plain", [{"id": 1, "text": "x", "vector": [0.0, 1.0]}])
    with pytest.raises(hybrid.SchemaError, match="id column 'id' must hold strings"):
        HybridVectorStore(plain, emb)
    with pytest.raises(TypeError, match="pass embedding="):
        HybridVectorStore(db.open_table("t"))
    with pytest.raises(TypeError, match="unexpected keyword arguments: filters"):
        HybridVectorStore(db.open_table("t"), emb).similarity_search("x", filters={"a": 1})


def test_an_existing_hybrid_table_becomes_a_store(tmp_path: Path) -> None:
    """Extra scalar columns of a table made with hybrid's API are metadata keys of their own."""
    embedder = HashingEmbedder(dim=32)
    db = hybrid.connect(tmp_path / "db")
    rows = [
        {"id": "r1", "text": "rotate keys", "lang": "en", "year": 2020},
        {"id": "r2", "text": "hello", "lang": "de"},
    ]
    table = db.create_table("docs", rows, embedding={"vector": ("text", embedder)})
    store = HybridVectorStore(table)  # no metadata column: metadata lives in lang / year
    assert store.get_by_ids(["r1"])[0].metadata == {"lang": "en", "year": 2020}
    store.add_texts(["keys again"], [{"lang": "en"}], ids=["r3"])
    assert {d.id for d in store.hybrid_search("keys", k=5, filter={"lang": "en"})} == {"r1", "r3"}
    with pytest.raises(hybrid.SchemaError, match="no 'metadata' column"):
        store.add_texts(["x"], [{"other": 1}])
    with pytest.raises(hybrid.FilterError, match="unknown metadata key 'other'"):
        store.similarity_search("x", filter={"other": 1})


# -- indexes and embeddings ---------------------------------------------------------------


def test_indexes_are_created_and_rebuilt_as_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lc, "STALE_MIN_ROWS", 4)
    store = fake_store(tmp_path, vector_index_min_rows=8)
    assert [s["kind"] for s in store.table.index_stats()] == ["fts"]  # created with the table
    store.add_texts([f"text number {i}" for i in range(6)])
    assert [s["kind"] for s in store.table.index_stats()] == ["fts"]
    store.add_texts([f"more text {i}" for i in range(3)])  # 9 rows: the vector index is built
    stats = {s["kind"]: s for s in store.table.index_stats()}
    assert stats["vector"]["indexed_rows"] == 9 and stats["vector"]["metric"] == "cosine"
    store.add_texts(["one more"])  # a few unindexed rows are searched exactly meanwhile
    assert {s["kind"]: s["unindexed_rows"] for s in store.table.index_stats()} == {"fts": 4, "vector": 1}
    assert ids(store.hybrid_search("one more", k=1, query_type="fts")) == ids(store.similarity_search("one more", 1))
    store.add_texts([f"batch {i}" for i in range(12)])  # now more than the indexes hold: rebuilt
    assert all(s["unindexed_rows"] == 0 for s in store.table.index_stats())
    manual = fake_store(tmp_path / "manual", auto_index=False)
    manual.add_texts(["x"])
    assert manual.table.index_stats() == []


def test_embeddings_adapters(tmp_path: Path) -> None:
    class Counting(Embeddings):
        calls = 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            Counting.calls += 1
            return [[1.0, float(len(t))] for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return [1.0, float(len(text))]

    store = HybridVectorStore.create(Counting(), uri=tmp_path / "db")
    assert store.embeddings.__class__ is Counting and store.table.embeddings == {}  # nothing bound
    store.add_texts(["a", "bb", "ccc"])
    assert Counting.calls == 1  # one batch
    wrong = HybridVectorStore(store.table, DeterministicFakeEmbedding(size=3))
    with pytest.raises(hybrid.VectorError, match="3-d vectors, column 'vector' holds 2"):
        wrong.add_texts(["x"])
    with pytest.raises(hybrid.VectorError, match="dimension 3"):
        wrong.similarity_search("x")
    assert store.table.count_rows() == 3
    wrapped = HybridEmbeddings(HashingEmbedder(dim=16))
    assert np.allclose(wrapped.embed_documents(["red apple"])[0], wrapped.embedder.embed_documents(["red apple"])[0])
    with pytest.raises(TypeError, match="hybrid Embedder"):
        HybridEmbeddings(Counting())  # type: ignore[arg-type]


# -- the example ---------------------------------------------------------------------------


def _run_example(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and "proxy" not in k.lower()}
    cmd = [sys.executable, str(ROOT / "examples" / "langchain_rag.py"), "--db", str(tmp_path / "db"), *args]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**clean, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_rag_example_runs_offline_and_prints_the_prompt(tmp_path: Path) -> None:
    out = _run_example(tmp_path)
    assert f"stored 6 documents in {tmp_path / 'db' / 'rag'}" in out
    retrieved = out.split("topic = 'security':\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in retrieved] == ["api-keys", "tls"]
    assert "key-value" not in out.split("the prompt:")[0]  # a databases doc: filtered out
    assert "(2021)" not in out.split("year >= 2022):")[1].split("\n\n")[0]
    prompt = out.split("the prompt:")[1]
    assert "--- system" in prompt and "--- human" in prompt
    assert "[1] Rotate API keys every 90 days" in prompt and "Question: How often should API keys be rotated?" in prompt


def test_rag_example_generates_with_an_openai_compatible_endpoint(tmp_path: Path, chat_endpoint: ChatEndpoint) -> None:
    env = {"OPENAI_BASE_URL": chat_endpoint.url, "OPENAI_API_KEY": "test-key"}
    out = _run_example(tmp_path, "--topic", "databases", "--k", "1", "--embedder", "hashing", env=env)
    # the one retrieved passage is a databases document (the filter holds), and it is what the prompt quotes
    retrieved = out.split("topic = 'databases':\n")[1].splitlines()[0].split()[0]
    assert retrieved in ("key-value", "wal")
    assert out.rstrip().endswith("answer:\nEvery 90 days [1].")
    [request] = chat_endpoint.requests
    path, auth, body = request["path"], request["auth"], request["body"]
    assert path == "/v1/chat/completions" and auth == "Bearer test-key"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    quoted = {"key-value": "[1] A key-value store", "wal": "[1] A write-ahead log"}[retrieved]
    assert quoted in body["messages"][1]["content"]
