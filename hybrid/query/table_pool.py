"""Small result tables of one fixed-width layout, made ahead in batches and filled by one pack.

After an HNSW walk has pushed the CPU caches' contents out, every Arrow call a query makes misses
them: reading one IPC message into a table (:class:`hybrid.query.fixed_batch.Layout`) costs ~30 us
then, ~5 us warm. A pool makes up to :data:`BATCH` tables of a (schema, rows) layout at a time, back to
back (warm), each over a writable buffer of its own that no other table shares; a query takes one
and writes its values into the buffer with one ``struct.pack_into`` (the columns whose values are
the same for every query, such as the ranks, are written when the table is made). A table is handed
out once (``list.pop`` is atomic) and its buffer is never written again after that, so a result
stays what it was when returned. The tables hold plain numbers only (no validity buffers, no
offsets): whatever bytes a column holds are valid values of its type.
"""

from __future__ import annotations

import struct

import pyarrow as pa

from hybrid.query.fixed_batch import Layout

BATCH = 32
"""Tables made per refill at most: a new pool makes :data:`FIRST`, then each refill as many as it has made
so far, up to this, so a table version searched only a few times (a write between searches) makes few."""
FIRST = 4
_read = pa.ipc.read_record_batch
_from_batches = pa.Table.from_batches


class TablePool:
    """Tables of `layout` (`rows` rows) whose columns have the struct format characters `codes`; the
    last ``len(fixed)`` columns hold the bytes `fixed` in every table; the others are written per table
    through :attr:`pack_into` (their values in column order, from :attr:`at`; ``pack_into`` writes the
    bytes of its format's span, padding included, so the fixed columns lie after it)."""

    __slots__ = ("_made", "_template", "at", "layout", "pack_into", "tables")

    def __init__(self, layout: Layout, rows: int, codes: list[str], fixed: list[bytes]) -> None:
        if len(codes) != len(layout.pads) or len(fixed) > len(codes):
            raise ValueError(f"{len(codes)} column formats, {len(fixed)} fixed, for {len(layout.pads)} columns")
        written = len(codes) - len(fixed)
        fmt, body = "@", bytearray()
        for i, (code, pad) in enumerate(zip(codes, layout.pads, strict=True)):
            size = rows * struct.calcsize(code)
            if i < written:
                fmt += f"{rows}{code}" + (f"{len(pad)}x" if pad else "")
                body += bytes(size)
            elif len(fixed[i - written]) != size:
                raise ValueError(f"column {i}: {len(fixed[i - written])} fixed bytes for {rows} values of {code!r}")
            else:
                body += fixed[i - written]
            body += pad
        packer = struct.Struct(fmt)
        if packer.size != sum(rows * struct.calcsize(c) + len(p) for c, p in zip(codes[:written], layout.pads)):
            raise ValueError(f"the format {fmt!r} pads where the IPC layout does not")  # native alignment
        self.layout = layout
        self.at = len(layout.head)
        """Where the body starts in a table's buffer."""
        self.pack_into = packer.pack_into
        """``pack_into(buffer, at, *values)``: a taken table's values (its written columns in order)."""
        self._template = layout.head + bytes(body)
        self.tables: list[tuple[pa.Table, bytearray]] = []
        """The tables made and not yet taken (``tables.pop()`` takes one, as :meth:`take` does)."""
        self._made = 0

    def take(self) -> tuple[pa.Table, bytearray]:
        """A table no one else has, and its buffer (write its values before handing the table out)."""
        tables = self.tables
        while True:
            try:
                return tables.pop()
            except IndexError:  # (other threads may take the new ones first: then make more)
                self._refill()

    def _refill(self) -> None:
        made = []
        schema, template = self.layout.schema, self._template
        for _ in range(min(BATCH, max(FIRST, self._made))):
            buf = bytearray(template)
            made.append((_from_batches([_read(pa.py_buffer(buf), schema)]), buf))
        self._made += len(made)
        self.tables.extend(made)
