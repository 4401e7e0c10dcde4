"""The TextEmbedder base: input checks, the content-hash cache, batching, progress, output checks."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from hybrid.embedders import Embedder, HashingEmbedder, TextEmbedder
from hybrid.embedders.base import Kind, embed_queries
from hybrid.errors import EmbeddingError


class Counting(HashingEmbedder):
    """A hashing embedder that records every batch the model is asked to encode."""

    def __init__(self, **options: Any) -> None:
        super().__init__(dim=32, **options)
        self.batches: list[list[str]] = []

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        self.batches.append(list(texts))
        return super()._encode(texts, kind)


class Broken(TextEmbedder):
    name = "broken"

    def __init__(self, output: np.ndarray) -> None:
        super().__init__()
        self.output = output

    def to_config(self) -> dict[str, Any]:
        return {}

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        return self.output[: len(texts)]


def test_satisfies_the_protocol() -> None:
    e = HashingEmbedder(dim=16)
    assert isinstance(e, Embedder)
    assert e.dim == 16
    assert e.embed_documents(["a b"]).shape == (1, 16)
    assert e.embed_query("a b").shape == (16,)
    assert e.embed_documents([]).shape == (0, 16)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["fine", "  "], "text #1 is empty"),
        (["fine", ""], "text #1 is empty"),
        (["fine", None], "text #1 is NoneType"),
        (["fine", 3], "text #1 is int"),
        ("one string", "a list of texts"),
    ],
)
def test_bad_texts_are_named(texts: Any, message: str) -> None:
    with pytest.raises(EmbeddingError, match=message):
        HashingEmbedder().embed_documents(texts)


def test_bad_query() -> None:
    with pytest.raises(EmbeddingError, match="empty"):
        HashingEmbedder().embed_query("   ")
    with pytest.raises(EmbeddingError, match="must be a string"):
        HashingEmbedder().embed_query(["a list"])  # type: ignore[arg-type]


def test_cache_serves_repeated_texts_without_encoding_again() -> None:
    e = Counting(batch_size=4)
    first = e.embed_documents(["alpha", "beta", "alpha", "gamma"])
    assert sorted(t for b in e.batches for t in b) == ["alpha", "beta", "gamma"]  # duplicates encoded once
    e.batches.clear()
    again = e.embed_documents(["gamma", "alpha", "delta"])
    assert e.batches == [["delta"]]
    np.testing.assert_array_equal(again[0], first[3])
    np.testing.assert_array_equal(again[1], first[0])
    assert e.cache.hits == 2


def test_queries_and_documents_are_cached_apart() -> None:
    e = Counting()
    e.embed_documents(["alpha"])
    e.embed_query("alpha")
    assert e.batches == [["alpha"], ["alpha"]]


def test_cache_items_is_a_snapshot_in_use_order() -> None:
    e = Counting()
    e.embed_documents(["a", "b"])
    e.embed_documents(["a"])  # a hit moves "a" to the most recently used end
    items = e.cache.items()
    key = e.cache.key
    assert [k for k, _ in items] == [key("document", "b"), key("document", "a")]
    np.testing.assert_array_equal(items[1][1], e.embed_documents(["a"])[0])
    e.cache.clear()
    assert len(items) == 2 and len(e.cache) == 0


def test_cache_is_bounded_and_can_be_off() -> None:
    e = Counting(cache_size=2)
    e.embed_documents(["a", "b", "c"])
    assert len(e.cache) == 2
    off = Counting(cache_size=0)
    off.embed_documents(["a"])
    off.embed_documents(["a"])
    assert len(off.batches) == 2


def test_batches_keep_the_callers_order() -> None:
    texts = [("word " * n).strip() + f" {n}" for n in (1, 9, 3, 27, 5, 2, 11)]
    e = Counting(batch_size=3)
    together = e.embed_documents(texts)
    assert max(len(b) for b in e.batches) <= 3
    assert [len(b) for b in e.batches] == [3, 3, 1]
    assert len(e.batches[0][0]) >= len(e.batches[-1][0])  # longest first: less padding per batch
    alone = np.stack([Counting().embed_documents([t])[0] for t in texts])
    np.testing.assert_array_equal(together, alone)


def test_progress_bar_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    Counting(batch_size=2, show_progress=True).embed_documents(["a", "b", "c"])
    assert "embedding (hashing)" in capsys.readouterr().err
    Counting(batch_size=2, show_progress=False).embed_documents(["a", "b", "c"])
    assert capsys.readouterr().err == ""


def test_a_query_does_not_import_the_progress_bar() -> None:
    script = (
        "import sys\n"
        "from hybrid.embedders import HashingEmbedder\n"
        "HashingEmbedder().embed_query('a question')\n"
        "print('tqdm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # its import is some 20 ms of a process's first query


def test_bad_model_output_is_refused() -> None:
    with pytest.raises(EmbeddingError, match="NaN or inf"):
        Broken(np.full((4, 3), np.nan, dtype=np.float32)).embed_documents(["a"])
    with pytest.raises(EmbeddingError, match="shape"):
        Broken(np.zeros(3, dtype=np.float32)).embed_documents(["a"])


def test_hashing_embedder_is_deterministic_and_lexical() -> None:
    a = HashingEmbedder(dim=64).embed_documents(["Red apples", "red APPLES!", "blue sky"])
    b = HashingEmbedder(dim=64).embed_documents(["Red apples"])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[0], a[1])
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="dim"):
        HashingEmbedder(dim=0)


def test_embed_queries_batches_and_matches_embed_query() -> None:
    e = Counting(batch_size=4, cache_size=0)
    texts = [f"question number {i}" for i in range(10)]
    many = e.embed_queries(texts)
    assert [len(b) for b in e.batches] == [4, 4, 2]  # three model calls for ten questions, not ten
    one = np.stack([e.embed_query(t) for t in texts])
    np.testing.assert_array_equal(many, one)
    assert e.embed_queries([]).shape == (0, 32)
    with pytest.raises(EmbeddingError, match="text #1 is empty"):
        e.embed_queries(["fine", " "])


def test_embed_queries_helper_falls_back_to_one_call_per_query() -> None:
    """A user's own embedder with only the protocol's methods still works, one question at a time."""

    class Plain:
        name = "plain"
        dim = 3

        def __init__(self) -> None:
            self.calls = 0

        def embed_documents(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 3), np.float32)

        def embed_query(self, text: str) -> np.ndarray:
            self.calls += 1
            return np.full(3, len(text), np.float32)

        def to_config(self) -> dict[str, Any]:
            return {}

    plain = Plain()
    out = embed_queries(plain, ["a", "bbb"])
    assert out.dtype == np.float32 and out.tolist() == [[1, 1, 1], [3, 3, 3]] and plain.calls == 2
    assert embed_queries(plain, []).shape == (0, 3)
    batched = Counting(batch_size=8)
    assert embed_queries(batched, ["x", "y", "z"]).shape == (3, 32) and len(batched.batches) == 1
