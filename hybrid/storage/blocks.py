"""Long string and binary columns stored in small zstd blocks inside a data file.

Text is most of a search table's bytes and compresses about 2x, but a data file compressed whole
(Arrow IPC body compression) cannot be memory-mapped, and reading one row then decompresses a whole
record batch. Here a column whose values are long (documents, not keys: see :func:`plan`) is stored
as consecutive rows cut into blocks of about `BLOCK_BYTES` uncompressed bytes (a longer value is a
block of its own), each compressed on its own. The file keeps one physical column per logical one,
of the same length: the row where a block starts holds the block's bytes, every other row of the
block is empty (a block is never empty), so a record batch, a fragment's row count and every
other column are unchanged, and the file is still read through a memory map. Reading k rows
decompresses only the blocks holding them (:class:`BlockColumn`); a scan decompresses them all.

The physical field (binary, or large_binary for the large types) carries the logical type in its
metadata (`CODEC_KEY`, `TYPE_KEY`); a file without those fields is read as before. A block is a
zstd frame with its own checksum over ``[validity bits, if any nulls][value lengths][values]``, and
a 5-byte header (flags, row count): a damaged block raises :class:`hybrid.errors.CorruptionError`,
never wrong rows.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import zstandard

from hybrid.errors import CorruptionError
from hybrid.storage import decoded

CODEC_KEY = b"hybrid.codec"
CODEC = b"zstd-blocks-1"
TYPE_KEY = b"hybrid.type"
BLOCK_BYTES = 8_192
"""Uncompressed bytes per block: 8 KB compress to ~45% on Zipf text (16 KB: 41%, 4 KB: 49%) and
decode in ~10 us, so a take of 10 rows costs ~0.1 ms more than from plain columns
(eval/results/text_blocks.md)."""
MIN_MEAN_BYTES = 128
"""A column is stored in blocks when its values average at least this many bytes (in the first
record batch of the file): long text is most of the bytes, while short keys (ids, names, tags) are
small, compress poorly in small blocks and are what filters read whole. 0 stores every string and
binary column in blocks; a value no column reaches (e.g. 1 << 62) turns blocks off."""
LEVEL = 3

_HEADER = struct.Struct("<BI")  # flags (bit 0: has nulls), rows
_TYPES = {
    "string": (pa.string(), pa.binary(), np.int32),
    "binary": (pa.binary(), pa.binary(), np.int32),
    "large_string": (pa.large_string(), pa.large_binary(), np.int64),
    "large_binary": (pa.large_binary(), pa.large_binary(), np.int64),
}
_local = threading.local()  # zstd contexts are not thread-safe, and cost more to make than a block to decode


def _compressor() -> zstandard.ZstdCompressor:
    found = getattr(_local, "compressor", None)
    if found is None:
        found = _local.compressor = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True)
    return found


def _decompressor() -> zstandard.ZstdDecompressor:
    found = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


_UNSIGNED: dict[type, type] = {np.int32: np.uint32, np.int64: np.uint64}
_NAMES = {str(logical): name for name, (logical, _, _) in _TYPES.items()}


def encoded(field: pa.Field) -> bool:
    """Whether a data file's field holds a column stored in blocks."""
    return bool(field.metadata) and field.metadata.get(CODEC_KEY) == CODEC


def logical_type(field: pa.Field) -> pa.DataType:
    """The type of the values a field of a data file holds (the field's own type unless in blocks)."""
    if not encoded(field):
        return field.type
    name = field.metadata[TYPE_KEY].decode()
    if name not in _TYPES:
        raise CorruptionError(f"column {field.name!r} is stored in blocks of an unknown type {name!r}")
    return _TYPES[name][0]


def plan(schema: pa.Schema, batch: pa.RecordBatch | None) -> pa.Schema:
    """The physical schema of a new data file whose first record batch is `batch`: the string and binary
    columns whose values average at least `MIN_MEAN_BYTES` bytes there go to blocks."""
    if batch is None or batch.num_rows == 0:
        return schema
    fields = []
    for field, column in zip(schema, batch.columns):
        name = _NAMES.get(str(field.type))
        values = len(column) - column.null_count
        if name is not None and _value_bytes(column) >= MIN_MEAN_BYTES * max(values, 1):
            meta = {**(field.metadata or {}), CODEC_KEY: CODEC, TYPE_KEY: name.encode()}
            field = pa.field(field.name, _TYPES[name][1], field.nullable, meta)
        fields.append(field)
    return pa.schema(fields, metadata=schema.metadata)


def encode_batch(batch: pa.RecordBatch, physical: pa.Schema) -> pa.RecordBatch:
    """`batch` (of the logical schema) with the columns `physical` puts in blocks encoded."""
    if not any(encoded(f) for f in physical):
        return batch
    columns = [
        _encode(column, field) if encoded(field) else column
        for column, field in zip(batch.columns, physical, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=physical)


def decode_table(table: pa.Table) -> pa.Table:
    """A table read from a data file, every column in blocks decoded (a scan)."""
    if not any(encoded(f) for f in table.schema):
        return table
    fields, columns = [], []
    for field, column in zip(table.schema, table.columns):
        if encoded(field):
            column = BlockColumn(column, field, keep=False).decode()
            field = pa.field(field.name, column.type, field.nullable, _plain_metadata(field))
        fields.append(field)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


class BlockColumn:
    """A column of a data file stored in blocks: decoded whole, or only the blocks some rows lie in."""

    def __init__(self, column: pa.ChunkedArray, field: pa.Field, keep: bool = True) -> None:
        self.type = logical_type(field)
        self.name = field.name
        self.token = decoded.token() if keep else 0
        """This column's key in :data:`hybrid.storage.decoded.DECODED`, where its reads by row keep the
        blocks they decode; 0 (`keep` False: a column read once, e.g. a ranged read's batch) keeps none."""
        self._offset_type = _TYPES[_NAMES[str(self.type)]][2]
        self._chunks = list(column.chunks)
        self._starts: list[np.ndarray] = []  # per chunk: the rows where its blocks start
        self._data = [memoryview(c.buffers()[2] or b"") for c in self._chunks]  # per chunk: the blocks' bytes
        self._offsets: list[np.ndarray] = []  # per chunk: the physical column's value offsets
        ends = []
        for chunk in self._chunks:
            offsets = np.frombuffer(chunk.buffers()[1], self._offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
            starts = np.flatnonzero(np.diff(offsets))
            if len(chunk) and (not len(starts) or starts[0] != 0):
                raise CorruptionError(f"column {self.name!r}: a record batch of blocks does not start with one")
            self._offsets.append(offsets)
            self._starts.append(starts)
            ends.append(len(chunk))
        self._ends = np.cumsum(np.asarray(ends, dtype=np.int64))
        begins = self._ends - np.asarray(ends, dtype=np.int64)
        # every block of the column: its first row (in the whole column), record batch and place in it
        self._first = np.concatenate([b + s for b, s in zip(begins.tolist(), self._starts)] or [np.zeros(0, np.int64)])
        self._chunk_of = [c for c, s in enumerate(self._starts) for _ in range(len(s))]
        self._local = [b for s in self._starts for b in range(len(s))]

    def decode(self, start: int = 0, stop: int | None = None) -> pa.ChunkedArray:
        """Rows `start` to `stop` (default: every row), one chunk per record batch they span; only the
        blocks holding them are decompressed."""
        total = int(self._ends[-1]) if len(self._ends) else 0
        stop = total if stop is None else min(stop, total)
        chunks = []
        for i, chunk in enumerate(self._chunks):
            begin, end = int(self._ends[i]) - len(chunk), int(self._ends[i])
            if end <= start or begin >= stop:
                continue
            lo, hi = max(start, begin) - begin, min(stop, end) - begin  # rows of this record batch wanted
            starts = self._starts[i]
            first = int(np.searchsorted(starts, lo, side="right")) - 1
            last = int(np.searchsorted(starts, hi - 1, side="right")) - 1
            parts = [self._block(i, b) for b in range(first, last + 1)]
            top = int(starts[last + 1]) if last + 1 < len(starts) else len(chunk)
            got = _join(parts, self.type, top - int(starts[first]))
            chunks.append(got.slice(lo - int(starts[first]), hi - lo))
        return pa.chunked_array(chunks, type=self.type)

    def take(self, offsets: np.ndarray) -> pa.Array:
        """The rows at physical `offsets` (in that order), decompressing each block they touch once."""
        offsets = np.asarray(offsets, dtype=np.int64)
        total = int(self._ends[-1]) if len(self._ends) else 0
        if len(offsets) and (offsets.min() < 0 or offsets.max() >= total):
            raise IndexError(f"row offsets out of range 0..{total}")
        blocks = np.searchsorted(self._first, offsets, side="right") - 1
        within = (offsets - self._first[blocks]).tolist()
        seen: dict[int, tuple[np.ndarray | None, np.ndarray, memoryview]] = {}
        valid = np.ones(len(offsets), dtype=bool)
        lengths = np.zeros(len(offsets), dtype=np.int64)
        pieces = []
        for k, (g, at) in enumerate(zip(blocks.tolist(), within)):
            got = seen.get(g)
            if got is None:
                got = seen[g] = self._kept(g)
            mask, sizes, data = got
            if mask is not None and not mask[at]:
                valid[k] = False
                continue
            lo = int(sizes[:at].sum())
            lengths[k] = size = int(sizes[at])
            pieces.append(data[lo : lo + size])
        return _array(self.type, valid, lengths, b"".join(pieces))

    def _kept(self, g: int) -> tuple[np.ndarray | None, np.ndarray, memoryview]:
        """Block `g` of the column (counted over all record batches), decoded once while kept in
        :data:`hybrid.storage.decoded.DECODED`."""
        if not self.token:
            return self._block(self._chunk_of[g], self._local[g])
        cache = decoded.DECODED
        key = (self.token, g)
        got = cache.get(key)
        if got is None:
            got = self._block(self._chunk_of[g], self._local[g])
            mask, sizes, data = got
            cache.put(key, got, len(data) + sizes.nbytes + (0 if mask is None else mask.nbytes) + 200)
        return got

    def _block(self, chunk: int, block: int) -> tuple[np.ndarray | None, np.ndarray, memoryview]:
        """Block `block` of record batch `chunk`: (validity or None, value lengths, values)."""
        starts, offsets = self._starts[chunk], self._offsets[chunk]
        first = int(starts[block])
        rows = (int(starts[block + 1]) if block + 1 < len(starts) else len(offsets) - 1) - first
        raw = self._data[chunk][int(offsets[first]) : int(offsets[first + 1])]
        return decode_block(raw, rows, self._offset_type, self.name)


def file_payloads(path: Path) -> Iterator[tuple[int, bytes]]:
    """(offset in the file, decompressed bytes) of every block in the data file at `path`; nothing for a
    file that is not a plain Arrow IPC file or holds no column in blocks (what an erasure's proof scans
    besides the file's own bytes)."""
    if path.suffix != ".arrow":
        return
    try:
        source = pa.memory_map(str(path))
        whole = source.read_buffer()
        reader = pa.ipc.open_file(whole)
    except (pa.ArrowInvalid, OSError):
        return  # encrypted, or not IPC
    positions = [i for i, f in enumerate(reader.schema) if encoded(f)]
    for b in range(reader.num_record_batches if positions else 0):
        batch = reader.get_batch(b)
        for i in positions:
            column = BlockColumn(pa.chunked_array([batch.column(i)]), reader.schema.field(i), keep=False)
            data = batch.column(i).buffers()[2]
            for k in range(len(column._starts[0])):
                first = int(column._starts[0][k])
                at = data.address + int(column._offsets[0][first]) - whole.address
                yield at, bytes(column._block(0, k)[2])


def decode_block(
    raw: memoryview | bytes, rows: int, offset_type: type = np.int32, name: str = "?"
) -> tuple[np.ndarray | None, np.ndarray, memoryview]:
    """Parse one block of `rows` rows: (validity or None, value lengths, values). Raises CorruptionError
    when the block is damaged or does not hold `rows` rows."""
    if len(raw) < _HEADER.size:
        raise CorruptionError(f"column {name!r}: a block of {len(raw)} bytes is truncated", problem="damaged")
    flags, count = _HEADER.unpack_from(raw)
    if count != rows or flags > 1:
        raise CorruptionError(f"column {name!r}: a block holds {count} rows where {rows} start", problem="damaged")
    try:
        body = memoryview(_decompressor().decompress(raw[_HEADER.size :]))
    except zstandard.ZstdError as exc:
        raise CorruptionError(f"column {name!r}: a compressed block is damaged ({exc})", problem="damaged") from None
    at = 0
    mask = None
    if flags & 1:
        nbytes = (rows + 7) // 8
        mask = np.unpackbits(np.frombuffer(body, np.uint8, nbytes, 0), count=rows, bitorder="little").astype(bool)
        at = nbytes
    unsigned = _UNSIGNED[offset_type]
    width = np.dtype(unsigned).itemsize
    if len(body) < at + rows * width:
        raise CorruptionError(f"column {name!r}: a block's lengths are cut short", problem="damaged")
    sizes: np.ndarray = np.frombuffer(body, unsigned, rows, at)
    data = body[at + rows * width :]
    if int(sizes.sum(dtype=np.uint64)) != len(data):
        raise CorruptionError(f"column {name!r}: a block's lengths do not match its bytes", problem="damaged")
    return mask, sizes, data


def encode_block(values: pa.Array) -> bytes:
    """One block: `values` (a slice of a string or binary array) as header + zstd frame."""
    offset_type = _TYPES[_NAMES[str(values.type)]][2]
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], offset_type)[values.offset : values.offset + len(values) + 1]
    lengths: np.ndarray = np.diff(offsets).astype(_UNSIGNED[offset_type])
    body: list[bytes | memoryview] = []
    flags = 0
    if values.null_count:
        flags = 1
        valid = values.is_valid().to_numpy(zero_copy_only=False)
        body.append(np.packbits(valid, bitorder="little").tobytes())
    body.append(lengths.tobytes())
    body.append(memoryview(buffers[2])[int(offsets[0]) : int(offsets[-1])] if buffers[2] is not None else b"")
    return _HEADER.pack(flags, len(values)) + _compressor().compress(b"".join(body))


def _encode(column: pa.Array, field: pa.Field) -> pa.Array:
    """A column of values as blocks of ~`BLOCK_BYTES` (its values' type is the field's logical one)."""
    offset_type = _TYPES[_NAMES[str(logical_type(field))]][2]
    n = len(column)
    buffers = column.buffers()
    offsets = np.frombuffer(buffers[1], offset_type)[column.offset : column.offset + n + 1].astype(np.int64)
    # a block ends at the first row that takes it to BLOCK_BYTES or more (so a long value is a block alone)
    cuts = [0]
    while cuts[-1] < n:
        start = cuts[-1]
        end = int(np.searchsorted(offsets, offsets[start] + BLOCK_BYTES, side="left"))
        cuts.append(min(n, max(end, start + 1)))
    lengths = np.zeros(n, dtype=np.int64)
    blocks = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        block = encode_block(column.slice(a, b - a))
        lengths[a] = len(block)
        blocks.append(block)
    ends = np.zeros(n + 1, dtype=offset_type)
    np.cumsum(lengths, out=ends[1:])
    return pa.Array.from_buffers(field.type, n, [None, pa.py_buffer(ends), pa.py_buffer(b"".join(blocks))])


def _join(parts: Sequence[tuple[np.ndarray | None, np.ndarray, memoryview]], type_: pa.DataType, rows: int) -> pa.Array:
    """Decoded blocks, in order, as one array of `rows` rows."""
    valid = None
    if any(m is not None for m, _, _ in parts):
        valid = np.concatenate([np.ones(len(e), bool) if m is None else m for m, e, _ in parts])
    lengths = np.concatenate([e for _, e, _ in parts]) if parts else np.zeros(0, np.int64)
    assert len(lengths) == rows
    return _array(type_, valid, lengths, b"".join(d for _, _, d in parts))


def _array(type_: pa.DataType, valid: np.ndarray | None, lengths: np.ndarray, data: bytes) -> pa.Array:
    offset_type = _TYPES[_NAMES[str(type_)]][2]
    n = len(lengths)
    offsets = np.zeros(n + 1, dtype=offset_type)
    np.cumsum(lengths, out=offsets[1:])
    validity = None
    if valid is not None and not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    return pa.Array.from_buffers(type_, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)])


def _value_bytes(column: pa.Array) -> int:
    """Bytes of a string or binary array's values."""
    offset_type = _TYPES[_NAMES[str(column.type)]][2]
    offsets = np.frombuffer(column.buffers()[1], offset_type)
    return int(offsets[column.offset + len(column)] - offsets[column.offset])


def _plain_metadata(field: pa.Field) -> dict[bytes, bytes] | None:
    meta = {k: v for k, v in (field.metadata or {}).items() if k not in (CODEC_KEY, TYPE_KEY)}
    return meta or None
