"""Long text in compressed blocks (hybrid.storage.blocks): the same values back, whatever their shape.

Every shape of string and binary column (empty, null, unicode, values longer than a block, many
record batches) goes through a real table: written, scanned, taken by row id across block and batch
edges, compacted, erased and read at older versions; a damaged block is a CorruptionError, never
wrong rows; files written with plain columns (as before blocks existed) still read.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hybrid
from hybrid.errors import CorruptionError
from hybrid.storage import blocks, manifest
from hybrid.storage.decoded import DECODED
from hybrid.storage.scan import PatternSet, scan_files

TYPES = [pa.string(), pa.binary(), pa.large_string(), pa.large_binary()]


@contextlib.contextmanager
def block_settings(min_mean: int, block_bytes: int) -> Iterator[None]:
    old = blocks.MIN_MEAN_BYTES, blocks.BLOCK_BYTES
    blocks.MIN_MEAN_BYTES, blocks.BLOCK_BYTES = min_mean, block_bytes
    try:
        yield
    finally:
        blocks.MIN_MEAN_BYTES, blocks.BLOCK_BYTES = old


def data_files(table: hybrid.Table) -> list[Path]:
    return sorted((table.path / "data").glob("*.arrow"))


def stored_fields(path: Path) -> pa.Schema:
    return pa.ipc.open_file(pa.memory_map(str(path))).schema


values = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=40),  # unicode of every plane
    st.text(alphabet="abc é東", min_size=300, max_size=3_000),  # longer than a block
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    batches=st.lists(st.lists(values, max_size=60), min_size=1, max_size=4),
    type_index=st.integers(0, 3),
    block_bytes=st.sampled_from([1, 64, 1_000]),
    picks=st.lists(st.integers(0, 10_000), max_size=40),
)
def test_every_shape_round_trips_through_a_table(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[list[str | None]],
    type_index: int,
    block_bytes: int,
    picks: list[int],
) -> None:
    type_ = TYPES[type_index]
    binary = type_ in (pa.binary(), pa.large_binary())
    rows = [[None if v is None else (v.encode() if binary else v) for v in batch] for batch in batches]
    flat = [v for batch in rows for v in batch]
    db = hybrid.connect(tmp_path_factory.mktemp("blocks"))
    schema = pa.schema([("n", pa.int64()), ("text", type_)])
    with block_settings(0, block_bytes):
        table = db.create_table("t", schema=schema)
        start = 0
        for batch in rows:
            if batch:
                table.add(pa.table({"n": np.arange(start, start + len(batch)), "text": pa.array(batch, type_)}))
            start += len(batch)
    assert table.to_arrow().column("text").to_pylist() == flat
    assert all(blocks.encoded(stored_fields(p).field("text")) for p in data_files(table))
    if flat:
        ids = table.to_arrow(columns=["n"], with_rowid=True).column("_rowid").to_numpy()
        chosen = np.array([ids[p % len(ids)] for p in picks], dtype=np.uint64)
        got = table.take(chosen, ["text", "n"])
        assert got.column("text").to_pylist() == [flat[p % len(flat)] for p in picks]
        assert got.schema.field("text").type == type_


def test_takes_across_block_and_batch_edges_decode_only_the_blocks_touched(tmp_path: Path) -> None:
    texts = [f"row {i} " + "word " * (i % 50) for i in range(200_000)]
    db = hybrid.connect(tmp_path)
    with block_settings(0, 256):
        table = db.create_table("t", pa.table({"text": texts}))  # 4 record batches of 65,536 rows
    [path] = data_files(table)
    assert pa.ipc.open_file(pa.memory_map(str(path))).num_record_batches == 4
    column = table.snapshot().cache.blocks(path.relative_to(table.path).as_posix(), 0, random_access=True)
    assert column is not None
    starts = column._starts[0]
    edges = [0, 1, int(starts[1]) - 1, int(starts[1]), 65_535, 65_536, 65_537, 131_071, 199_999]
    rng = np.random.default_rng(1)
    picks = np.concatenate([edges, rng.integers(0, 200_000, 500), edges[::-1]]).astype(np.uint64)
    assert table.take(picks, ["text"]).column("text").to_pylist() == [texts[i] for i in picks.tolist()]
    decoded: list[tuple[int, int]] = []
    DECODED.clear()  # (the take above kept the blocks it decoded)
    original = column._block
    column._block = lambda c, b: decoded.append((c, b)) or original(c, b)  # type: ignore[method-assign]
    column.take(np.array([5, 6, 5, 65_540], dtype=np.int64))
    assert len(decoded) == len(set(decoded)) == 2  # one block per distinct block touched, once


def test_long_text_is_stored_compressed_and_short_keys_stay_plain(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(2_000)])
    texts = [" ".join(rng.choice(vocab, 300)) for _ in range(2_000)]  # ~1.5 KB each
    keys = [f"user-{i % 97}" for i in range(2_000)]
    db = hybrid.connect(tmp_path)
    table = db.create_table("t", pa.table({"key": keys, "text": texts}))
    [path] = data_files(table)
    fields = stored_fields(path)
    assert blocks.encoded(fields.field("text")) and not blocks.encoded(fields.field("key"))
    raw = sum(len(t) for t in texts)
    assert path.stat().st_size < 0.75 * raw  # compressed
    assert table.to_arrow().to_pydict() == {"key": keys, "text": texts}
    assert table.count_rows("key = 'user-3'") == sum(k == "user-3" for k in keys)


def test_compaction_time_travel_and_erasure_keep_the_values(tmp_path: Path) -> None:
    db = hybrid.connect(tmp_path)
    texts = [f"doc {i}: " + "lorem ipsum dolor " * (5 + i % 20) for i in range(600)]
    table = db.create_table("t", pa.table({"id": np.arange(200), "text": texts[:200]}))
    table.add(pa.table({"id": np.arange(200, 400), "text": texts[200:400]}))
    table.add(pa.table({"id": np.arange(400, 600), "text": texts[400:]}))
    v3 = table.version
    table.delete("id % 3 = 0")
    table.compact()
    assert len(data_files(table)) >= 1
    assert table.checkout(v3).to_arrow().column("text").to_pylist() == texts
    live = [t for i, t in enumerate(texts) if i % 3]
    assert table.to_arrow().column("text").to_pylist() == live
    newest = table.snapshot().manifest.fragments
    assert len(newest) == 1 and all(
        blocks.encoded(stored_fields(table.path / f.path).field("text")) for f in newest[0].files
    )
    report = table.erase("id = 7", verify=True)
    assert report.verification is not None and not report.verification.leaks
    assert table.to_arrow().column("text").to_pylist() == [t for i, t in enumerate(texts) if i % 3 and i != 7]
    secret = texts[7].encode()
    hits, _, _ = scan_files(sorted(p for p in table.path.rglob("*") if p.is_file()), PatternSet([secret]))
    assert not hits  # nowhere, not even inside a compressed block


def test_the_proof_scan_sees_inside_blocks(tmp_path: Path) -> None:
    text = "a needle zq9876543x in compressed text " * 20
    db = hybrid.connect(tmp_path)
    table = db.create_table("t", pa.table({"text": [text] * 50}))
    [path] = data_files(table)
    plain = path.read_bytes().count(b"zq9876543x")
    assert plain < 50  # compressed: a plain byte scan sees at most the first copy in each block
    hits, _, _ = scan_files([path], PatternSet([b"zq9876543x"]))
    assert len(hits) == plain + 20 * 50  # and the scan every copy inside them


def test_a_damaged_block_is_a_corruption_error_never_wrong_rows() -> None:
    texts = pa.array([f"value {i} " * 40 for i in range(100)])
    field = pa.field("text", pa.binary(), metadata={blocks.CODEC_KEY: blocks.CODEC, blocks.TYPE_KEY: b"string"})
    with block_settings(0, 1_000):
        stored = blocks._encode(texts, field)
    column = blocks.BlockColumn(pa.chunked_array([stored]), field)
    assert column.take(np.arange(100)).to_pylist() == texts.to_pylist()
    data = bytearray(stored.buffers()[2].to_pybytes())
    for at in (2, 9, len(data) // 2, len(data) - 1):  # header, frame header, body, frame checksum
        damaged = bytearray(data)
        damaged[at] ^= 0x5A
        bad = pa.Array.from_buffers(stored.type, len(stored), [None, stored.buffers()[1], pa.py_buffer(damaged)])
        broken = blocks.BlockColumn(pa.chunked_array([bad]), field)
        with pytest.raises(CorruptionError):
            broken.decode()


def test_a_damaged_data_file_is_refused(tmp_path: Path) -> None:
    db = hybrid.connect(tmp_path)
    table = db.create_table("t", pa.table({"text": ["some long text " * 30] * 100}))
    [path] = data_files(table)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError):
        hybrid.connect(tmp_path).open_table("t").to_arrow()


def test_plain_files_from_before_blocks_still_read_beside_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"text {i} " * 40 for i in range(300)]
    db = hybrid.connect(tmp_path)
    with block_settings(1 << 62, 8_192), monkeypatch.context() as m:  # what earlier versions wrote:
        m.setattr(manifest, "FORMAT_VERSION", 3)  # plain strings, manifests of format 3
        table = db.create_table("t", pa.table({"id": np.arange(100), "text": texts[:100]}))
    assert json.loads(next((table.path / "_versions").glob("*.json")).read_text())["format_version"] == 3
    [old] = data_files(table)
    assert not blocks.encoded(stored_fields(old).field("text"))
    table.add(pa.table({"id": np.arange(100, 300), "text": texts[100:]}))
    assert any(blocks.encoded(stored_fields(p).field("text")) for p in data_files(table))
    reopened = hybrid.connect(tmp_path).open_table("t")
    assert reopened.to_arrow().column("text").to_pylist() == texts
    picks = np.array([299, 0, 99, 100, 150], dtype=np.uint64)
    assert reopened.take(picks, ["text"]).column("text").to_pylist() == [texts[i] for i in picks.tolist()]
    reopened.compact()
    assert reopened.to_arrow().column("text").to_pylist() == texts


def test_a_scan_decompresses_piece_by_piece_with_the_same_rows(tmp_path: Path) -> None:
    texts = [f"scan row {i} " + "text " * (i % 60) if i % 11 else None for i in range(150_000)]
    db = hybrid.connect(tmp_path)
    with block_settings(0, 2_048):
        table = db.create_table("t", pa.table({"n": np.arange(150_000), "text": texts}))
    table.delete("n % 5 = 0")
    live = [(i, t) for i, t in enumerate(texts) if i % 5]
    for batch_size in (1_000, 65_536, 100_000):
        got = [
            (n, t) for b in table.scan(batch_size=batch_size) for n, t in zip(b["n"].to_pylist(), b["text"].to_pylist())
        ]
        assert got == live
    [path] = data_files(table)
    column = table.snapshot().cache.blocks(path.relative_to(table.path).as_posix(), 1)
    assert column is not None
    for start, stop in ((0, 10), (65_530, 65_540), (131_072, 150_000), (7, 149_999)):
        piece = column.decode(start, stop)
        assert piece.to_pylist() == texts[start:stop]
    decoded: list[tuple[int, int]] = []
    DECODED.clear()  # (the take above kept the blocks it decoded)
    original = column._block
    column._block = lambda c, b: decoded.append((c, b)) or original(c, b)  # type: ignore[method-assign]
    assert column.decode(65_530, 65_540).to_pylist() == texts[65_530:65_540]
    assert {c for c, _ in decoded} == {0, 1} and len(decoded) <= 4  # only the blocks holding those rows


def test_a_write_that_fails_midway_leaves_the_table_and_folder_as_they_were(tmp_path: Path) -> None:
    db = hybrid.connect(tmp_path)
    first = ["the first rows " * 20] * 10
    table = db.create_table("t", pa.table({"text": first}))
    before = sorted(p.relative_to(table.path) for p in (table.path / "data").iterdir())
    schema = pa.schema([("text", pa.string())])

    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch([pa.array(["long text in blocks " * 30] * 70_000)], schema=schema)  # a file started
        raise RuntimeError("the source failed")

    with pytest.raises(RuntimeError, match="the source failed"):
        table.add(pa.RecordBatchReader.from_batches(schema, batches()))
    assert sorted(p.relative_to(table.path) for p in (table.path / "data").iterdir()) == before
    reopened = hybrid.connect(tmp_path).open_table("t")
    assert reopened.version == table.version and reopened.to_arrow().column("text").to_pylist() == first


def test_rows_read_again_are_not_decoded_again_and_an_erasure_forgets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"doc {i}: " + "lorem ipsum dolor " * (5 + i % 20) for i in range(300)]
    table = hybrid.connect(tmp_path).create_table("t", pa.table({"id": np.arange(300), "text": texts}))
    calls: list[int] = []
    real = blocks.decode_block
    monkeypatch.setattr(blocks, "decode_block", lambda raw, rows, *a: calls.append(rows) or real(raw, rows, *a))
    DECODED.clear()
    rows = np.array([7, 8, 150], dtype=np.uint64)
    first = table.take(rows, ["text"]).column("text").to_pylist()
    assert first == [texts[7], texts[8], texts[150]] and calls and DECODED.size > 0
    decoded_once = len(calls)
    assert table.take(rows[::-1], ["text"]).column("text").to_pylist() == first[::-1]
    assert len(calls) == decoded_once  # kept: read without decoding

    table.erase("id = 7")  # erased text is not kept in memory either
    assert DECODED.size == 0
    assert table.to_arrow(["text"], where="id IN (7, 8)").column("text").to_pylist() == [texts[8]]

    monkeypatch.setattr(DECODED, "capacity", 0)  # nothing kept: every read decodes
    before = len(calls)
    table.take(np.array([8], dtype=np.uint64), ["text"])
    table.take(np.array([8], dtype=np.uint64), ["text"])
    assert len(calls) - before == 2 and DECODED.size == 0
