"""Rows of a data file on an object store, read with ranged requests.

An Arrow IPC file ends with a footer listing where each record batch starts; a batch holds one
message header and, for each column, a few contiguous buffers. So ``take`` of k rows needs: the
footer (one suffix request, which also tells the object's size), the header of each batch (once
per file), then for each batch holding a wanted row only the buffers of the wanted columns
(pyarrow reads just those when the reader is given ``included_fields``). Reads are served from a
small read-ahead window, so neighbouring small buffers share a request.
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from hybrid.storage import blocks

if TYPE_CHECKING:
    from hybrid.storage.remote import Remote

TAIL = 64 * 1024
"""Bytes read from the end of a file when it is opened (its footer, usually whole)."""
READAHEAD = 64 * 1024
"""Smallest ranged request: reads of neighbouring small buffers share one."""


class RangedFile(io.RawIOBase):
    """A read-only, seekable view of one object, fetched by ranged requests."""

    def __init__(self, remote: Remote, key: str) -> None:
        super().__init__()
        self._remote = remote
        self._key = key
        self._pos = 0
        self.size, self.tail = remote.get_suffix(key, TAIL)
        self._tail_start = self.size - len(self.tail)
        self._window = (self._tail_start, self.tail)
        self._lock = threading.Lock()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        with self._lock:
            start = self._pos
            end = self.size if size is None or size < 0 else min(self.size, start + size)
            if end <= start:
                return b""
            base, window = self._window
            if start >= self._tail_start:  # the footer and what precedes it: read at open
                base, window = self._tail_start, self.tail
            elif not (base <= start and end <= base + len(window)):
                fetch_end = min(self.size, max(end, start + READAHEAD))
                window = self._remote.get_range(self._key, start, fetch_end)
                base = start
                self._window = (base, window)
            self._pos = end
            return window[start - base : end - base]

    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset` (one request unless already held; no read-ahead)."""
        with self._lock:
            base, window = self._window
            if offset >= self._tail_start:
                base, window = self._tail_start, self.tail
            if base <= offset and offset + length <= base + len(window):
                return window[offset - base : offset - base + length]
        return self._remote.get_range(self._key, offset, min(self.size, offset + length))

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)


class RangedTable:
    """The record batches of one remote IPC file: lengths read once, columns read per request."""

    def __init__(self, remote: Remote, key: str) -> None:
        self.file = RangedFile(remote, key)
        self._source = pa.PythonFile(self.file, mode="r")
        reader = pa.ipc.open_file(self._source)
        self.schema = reader.schema
        self.num_batches = reader.num_record_batches
        lengths = []
        for offset, meta_length in _blocks(self.file):  # one small read per batch header, once per file
            lengths.append(_batch_rows(self.file.read_at(offset, meta_length)))
        self.ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
        self._readers: dict[tuple[int, ...], pa.ipc.RecordBatchFileReader] = {}
        self._lock = threading.Lock()

    def take(self, columns: Sequence[int], offsets: np.ndarray) -> list[pa.ChunkedArray]:
        """Columns (by position in the file) at physical row `offsets`, in that order."""
        offsets = np.asarray(offsets, dtype=np.int64)
        which = np.searchsorted(self.ends, offsets, side="right")
        starts = self.ends - np.diff(self.ends, prepend=0)
        order = sorted(set(columns))
        with self._lock:  # one file position per reader
            reader = self._readers.get(tuple(order))
            if reader is None:
                options = pa.ipc.IpcReadOptions(included_fields=order)
                reader = self._readers[tuple(order)] = pa.ipc.open_file(self._source, options=options)
            parts: dict[int, pa.RecordBatch] = {int(b): reader.get_batch(int(b)) for b in np.unique(which)}
        out = []
        for col in columns:
            pos, field = order.index(col), self.schema.field(col)
            pieces = [_take(parts[int(b)].column(pos), field, offsets[which == b] - starts[b]) for b in parts]
            gathered = pa.concat_arrays(pieces) if pieces else pa.array([], type=blocks.logical_type(field))
            out.append(pa.chunked_array([gathered.take(pa.array(_inverse(which)))]))
        return out


def _take(column: pa.Array, field: pa.Field, offsets: np.ndarray) -> pa.Array:
    """Rows of one record batch's column (decoding only the blocks they lie in when stored in blocks)."""
    if blocks.encoded(field):
        return blocks.BlockColumn(pa.chunked_array([column]), field, keep=False).take(offsets)
    return column.take(pa.array(offsets))


def _inverse(which: np.ndarray) -> np.ndarray:
    """Positions putting rows gathered batch by batch (ascending batch, stable) back in request order."""
    order = np.argsort(which, kind="stable")
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.arange(len(order))
    return inverse


# -- the few fields of Arrow's flatbuffers read here (format/File.fbs, format/Message.fbs) -----------


def _field(buf: bytes, table: int, index: int) -> int | None:
    """Absolute position of field `index` of the flatbuffer table at `table`, None if absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vsize = struct.unpack_from("<H", buf, vtable)[0]
    if 4 + 2 * index >= vsize:
        return None
    offset = struct.unpack_from("<H", buf, vtable + 4 + 2 * index)[0]
    return table + offset if offset else None


def _deref(buf: bytes, pos: int) -> int:
    return pos + struct.unpack_from("<I", buf, pos)[0]


def _blocks(file: RangedFile) -> list[tuple[int, int]]:
    """(offset, metadata length) of every record batch, from the footer at the end of the file."""
    if file.size < 10 or file.tail[-6:] != b"ARROW1":
        raise ValueError("not an Arrow IPC file")
    footer_len = struct.unpack_from("<i", file.tail, len(file.tail) - 10)[0]
    start = file.size - 10 - footer_len
    if start < file._tail_start:  # a footer larger than the tail read at open
        file.seek(start)
        buf = file.read(footer_len)
    else:
        buf = file.tail[start - file._tail_start : start - file._tail_start + footer_len]
    root = _deref(buf, 0)
    field = _field(buf, root, 3)  # Footer.recordBatches: [Block]
    if field is None:
        return []
    vector = _deref(buf, field)
    count = struct.unpack_from("<I", buf, vector)[0]
    out = []
    for i in range(count):  # struct Block { offset: long; metaDataLength: int; bodyLength: long }
        offset, meta_length = struct.unpack_from("<qi", buf, vector + 4 + 24 * i)
        out.append((offset, meta_length))
    return out


def _batch_rows(meta: bytes) -> int:
    """The row count in the header message of one record batch (Message.header: RecordBatch.length)."""
    skip = 8 if meta[:4] == b"\xff\xff\xff\xff" else 4  # continuation marker, then the metadata size
    buf = meta[skip:]
    message = _deref(buf, 0)
    header = _field(buf, message, 2)
    if header is None:
        raise ValueError("record batch message without a header")
    batch = _deref(buf, header)
    length = _field(buf, batch, 0)
    return 0 if length is None else int(struct.unpack_from("<q", buf, length)[0])
