"""Which columns tie a chunk to its document: the parent key, the chunk's position, its heading path.

A table declares them once (:meth:`hybrid.Table.set_chunking`); the declaration is kept in
the table's metadata, so a reopened table (and every version after) knows it. Grouping
(``.group_by()``) and context expansion (``.expand()``) read it.

A layout may also name a boolean `title_row` column, true on rows that describe their document
without being a passage of it (its title, as ``hybrid ingest --titles once`` writes it). Grouping
counts such a row in its document's mean score but never takes it as the document's best row nor
returns it; expansion and highlights pass over it (:mod:`hybrid.query.title_rows`).

>>> layout = ChunkLayout(parent="doc_id", position="chunk_no")
>>> read(to_metadata({}, layout)) == layout
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache

import pyarrow as pa

from hybrid.errors import SchemaError

METADATA_KEY = "hybrid.chunking"


@dataclass(frozen=True)
class ChunkLayout:
    """`parent`: the column holding each chunk's document key; `position`: the chunk's number within
    its document (integer, increasing in reading order); `heading`: the heading path (optional);
    `text`: the chunk's text column; `parent_table`: a table of the same database holding each
    document's whole text (columns `parent_key` and `parent_text`), used by ``.expand(parent=True)``
    instead of joining the chunks; `title_row`: a boolean column, true on rows that are not passages
    (a document's title row: :mod:`hybrid.query.title_rows`)."""

    parent: str
    position: str | None = None
    heading: str | None = None
    text: str = "text"
    parent_table: str | None = None
    parent_key: str = "source"
    parent_text: str = "text"
    title_row: str | None = None

    def check(self, schema: pa.Schema) -> None:
        """Raise SchemaError naming a declared column the schema lacks or a position that is not an integer."""
        for role in ("parent", "position", "heading", "text", "title_row"):
            name = getattr(self, role)
            if name is not None and name not in schema.names:
                raise SchemaError(
                    f"chunking: the {role} column {name!r} is not in the table (columns: {', '.join(schema.names)})"
                )
        if self.position is not None and not pa.types.is_integer(schema.field(self.position).type):
            raise SchemaError(
                f"chunking: the position column {self.position!r} must hold integers, "
                f"not {schema.field(self.position).type}"
            )
        if self.title_row is not None and not pa.types.is_boolean(schema.field(self.title_row).type):
            raise SchemaError(
                f"chunking: the title_row column {self.title_row!r} must hold booleans (true on a title row), "
                f"not {schema.field(self.title_row).type}"
            )


def read(metadata: Mapping[str, str]) -> ChunkLayout | None:
    """The layout stored in a manifest's metadata, or None when the table declares none."""
    text = metadata.get(METADATA_KEY)
    return _parsed(text) if text else None


@lru_cache(maxsize=64)
def _parsed(text: str) -> ChunkLayout:
    """A stored layout, parsed once per distinct text (searches ask for it on every query)."""
    return ChunkLayout(**json.loads(text))


def to_metadata(metadata: Mapping[str, str], layout: ChunkLayout | None) -> dict[str, str]:
    """`metadata` with `layout` stored (or removed, for None)."""
    out = {k: v for k, v in metadata.items() if k != METADATA_KEY}
    if layout is not None:
        out[METADATA_KEY] = json.dumps(asdict(layout), sort_keys=True)
    return out
