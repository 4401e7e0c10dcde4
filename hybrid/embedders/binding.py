"""Bindings: a vector column filled from a text column by an embedder, kept in the table's
metadata (embedder name and config, never secrets) so a reopened table embeds the same way."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from hybrid.embedders import registry, twins
from hybrid.embedders.base import Embedder
from hybrid.errors import EmbeddingError, RegistryError, SchemaError

METADATA_KEY = "embeddings"
EmbeddingSpec = Mapping[str, tuple[str, Embedder]]
"""``{vector_column: (source_text_column, embedder)}``."""


@dataclass(frozen=True)
class Binding:
    """Vector column `column` holds `embedder_name(**config)` embeddings of text column `source`."""

    column: str
    source: str
    embedder_name: str
    config_json: str

    @property
    def embedder(self) -> Embedder:
        """The embedder (one shared instance per configuration in a process); a table bound to the torch
        all-MiniLM-L6-v2 where torch is missing gets its agreeing ONNX twin (:mod:`hybrid.embedders.twins`)."""
        try:
            return twins.resolve(self.embedder_name, json.loads(self.config_json))
        except RegistryError as exc:
            raise RegistryError(
                f"column {self.column!r} is bound to embedder {self.embedder_name!r}, which is not available "
                f"here ({exc}); install or register it"
            ) from None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "embedder": self.embedder_name, "config": json.loads(self.config_json)}


def parse(spec: EmbeddingSpec) -> list[Binding]:
    """Check a user's ``{column: (source, embedder)}`` and remember the embedder instances."""
    if not isinstance(spec, Mapping):
        raise TypeError("embedding must be a dict {vector_column: (text_column, embedder)}")
    out = []
    for column, pair in spec.items():
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(f"embedding[{column!r}] must be a (text_column, embedder) pair, got {pair!r}")
        source, embedder = pair
        if not isinstance(embedder, Embedder):
            raise TypeError(
                f"embedding[{column!r}]: {type(embedder).__name__} is not an Embedder "
                "(needs name, dim, embed_documents, embed_query, to_config)"
            )
        if column == source:
            raise SchemaError(f"embedding[{column!r}]: the vector column cannot be its own source")
        registry.remember(embedder)
        config = json.dumps(embedder.to_config(), sort_keys=True)
        out.append(Binding(column, source, embedder.name, config))
    return out


def parse_spec(spec: object) -> list[Binding]:
    """The bindings in an ``add_columns`` spec made only of ``(text_column, embedder)`` pairs, else []."""
    if not isinstance(spec, Mapping) or not spec:
        return []
    pairs = [isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], Embedder) for v in spec.values()]
    if not any(pairs):
        return []
    if not all(pairs):
        raise TypeError("add_columns: give either (text_column, embedder) pairs or other column specs, not both")
    return parse(spec)


def column_function(bindings: list[Binding]) -> Any:
    """A batch -> new vector columns function (for ``add_columns``)."""

    def compute(batch: pa.RecordBatch) -> dict[str, pa.Array]:
        return {b.column: embed_column(b, batch.column(b.source)) for b in bindings}

    return compute


def to_metadata(metadata: Mapping[str, str], bindings: Iterable[Binding]) -> dict[str, str]:
    """`metadata` with the bindings stored (replacing any earlier list)."""
    encoded = {b.column: b.to_json() for b in bindings}
    out = {k: v for k, v in metadata.items() if k != METADATA_KEY}
    if encoded:
        out[METADATA_KEY] = json.dumps(encoded, sort_keys=True)
    return out


def read(metadata: Mapping[str, str]) -> tuple[Binding, ...]:
    """The bindings stored in a manifest's metadata."""
    return _decode(metadata.get(METADATA_KEY, ""))


@lru_cache(maxsize=256)
def _decode(text: str) -> tuple[Binding, ...]:
    if not text:
        return ()
    return tuple(
        Binding(column, d["source"], d["embedder"], json.dumps(d["config"], sort_keys=True))
        for column, d in json.loads(text).items()
    )


def renamed(bindings: Iterable[Binding], old: str, new: str) -> list[Binding]:
    """Bindings after renaming column `old` to `new`."""
    swap = lambda name: new if name == old else name  # noqa: E731
    return [Binding(swap(b.column), swap(b.source), b.embedder_name, b.config_json) for b in bindings]


def check_schema(schema: pa.Schema, bindings: Iterable[Binding]) -> None:
    """Each source is a text column; each target a vector column of the embedder's dimension."""
    from hybrid.storage.ingest import is_vector_type

    for b in bindings:
        if b.source not in schema.names:
            raise SchemaError(f"embedding source column {b.source!r} is not in the table; it has {schema.names}")
        source_type = schema.field(b.source).type
        if not (pa.types.is_string(source_type) or pa.types.is_large_string(source_type)):
            raise SchemaError(f"embedding source column {b.source!r} must hold text, not {source_type}")
        if b.column in schema.names:
            t = schema.field(b.column).type
            if not is_vector_type(t) or t.list_size != b.embedder.dim:
                raise SchemaError(
                    f"column {b.column!r} ({t}) cannot hold {b.embedder_name}'s {b.embedder.dim}-d vectors"
                )


def vector_field(b: Binding) -> pa.Field:
    """The column type a binding's vectors have."""
    return pa.field(b.column, pa.list_(pa.float32(), b.embedder.dim))


def fill(batch: pa.RecordBatch, bindings: Iterable[Binding]) -> pa.RecordBatch:
    """Add or complete each bound vector column: rows with text and no vector get embedded.

    Vectors given by the caller are kept; rows whose text is null get a null vector.
    """
    for b in bindings:
        if b.source not in batch.schema.names:
            continue
        batch = _set(batch, b.column, embed_column(b, batch.column(b.source), _existing(batch, b.column)))
    return batch


def fill_batches(batches: Iterable[pa.RecordBatch], bindings: tuple[Binding, ...]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield fill(batch, bindings) if bindings else batch


def _existing(batch: pa.RecordBatch, column: str) -> pa.Array | None:
    return batch.column(column) if column in batch.schema.names else None


def _set(batch: pa.RecordBatch, name: str, column: pa.Array) -> pa.RecordBatch:
    names = batch.schema.names
    arrays = list(batch.columns)
    if name in names:
        arrays[names.index(name)] = column
        return pa.RecordBatch.from_arrays(arrays, names=names)
    return pa.RecordBatch.from_arrays([*arrays, column], names=[*names, name])


def embed_column(b: Binding, texts: pa.Array, existing: pa.Array | None = None) -> pa.Array:
    """fixed_size_list<float32> vectors for `texts`, keeping non-null `existing` vectors."""
    from hybrid.storage.ingest import conform_vectors

    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type) or pa.types.is_null(texts.type)):
        raise SchemaError(f"embedding source column {b.source!r} must hold text, not {texts.type}")
    values = texts.to_pylist()
    dim = b.embedder.dim
    matrix = np.zeros((len(values), dim), dtype=np.float32)
    have = np.zeros(len(values), dtype=bool)
    if existing is not None and existing.null_count < len(existing):
        given = conform_vectors(existing, b.column, dim)
        have = ~np.asarray(given.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        slots = given.values.slice(given.offset * dim, len(given) * dim)  # null rows keep their slots
        matrix[have] = slots.to_numpy(zero_copy_only=False).reshape(-1, dim)[have]
    todo = [i for i, t in enumerate(values) if t is not None and not have[i]]
    for i in todo:
        if not values[i].strip():
            raise EmbeddingError(f"column {b.source!r}: row {i} is empty text, which cannot be embedded")
    if todo:
        matrix[todo] = b.embedder.embed_documents([values[i] for i in todo])
        have[todo] = True
    flat_values = pa.array(matrix.reshape(-1), pa.float32())
    mask = pa.array(~have) if not have.all() else None
    return pa.FixedSizeListArray.from_arrays(flat_values, dim, mask=mask)
