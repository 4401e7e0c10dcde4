"""The LangChain and LlamaIndex stores record feedback into their table's ``<table>__feedback``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid.errors import FeedbackError


def test_langchain_store_records_feedback(tmp_path: Path) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from hybrid.integrations.langchain import HybridVectorStore

    store = HybridVectorStore.create(DeterministicFakeEmbedding(size=8), uri=tmp_path / "db")
    store.add_texts(["rotate keys monthly", "water the plants"], ids=["k", "p"])
    store.add_feedback("how do I rotate keys?", "k", 2, who="u1")
    rows = store.table.feedback.to_arrow().to_pylist()
    assert [(r["query"], r["key"], r["label"], r["source"], r["who"]) for r in rows] == [
        ("how do I rotate keys?", "k", 2.0, "langchain", "u1")
    ]
    with pytest.raises(FeedbackError, match="has id = 'nope'"):
        store.add_feedback("q", "nope", 1)
    assert store.table.feedback.count() == 1


def test_llamaindex_store_records_feedback(tmp_path: Path) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import TextNode

    from hybrid.integrations.llamaindex import HybridVectorStore

    store = HybridVectorStore(uri=str(tmp_path), table_name="nodes")
    with pytest.raises(FeedbackError, match="holds no nodes"):
        store.add_feedback("q", "a", 1)
    store.add([TextNode(id_="a", text="rotate keys", embedding=[1.0, 0.0])])
    store.add_feedback("keys?", "a", 1)
    assert store.table is not None and store.table.feedback.to_arrow().column("source").to_pylist() == ["llamaindex"]
