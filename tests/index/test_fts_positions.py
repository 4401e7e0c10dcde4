"""Full-text indexes without term positions (``create_fts_index(..., positions=False)``): the same
BM25 ranking in a smaller index; phrase queries and proximity refuse with a clear error instead of
matching nothing; the choice survives reopening, appends, deletes and compaction."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import hybrid
from hybrid.errors import QueryError
from hybrid.index.catalog import entries
from hybrid.query.text import Match, Phrase, QueryString

WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape", "honey", "kiwi", "lemon", "mango", "nut"]


def rows(start: int, n: int) -> list[dict]:
    out = []
    for i in range(start, start + n):
        words = [WORDS[(i * 7 + j * j) % len(WORDS)] for j in range(3 + i % 9)]
        out.append({"id": i, "text": " ".join(words) + (" quick brown fox" if i % 5 == 0 else " brown quick fox")})
    return out


def table(path: Path, positions: bool) -> hybrid.Table:
    t = hybrid.connect(path).create_table("t", rows(0, 300))
    t.create_fts_index("text", language="en", positions=positions)  # one field: "auto" reads the fruit as Pidgin
    return t


def fts_bytes(t: hybrid.Table) -> int:
    (entry,) = [e for e in entries(t.snapshot()) if e.kind == "fts"]
    return sum(f.stat().st_size for f in (t.path / entry.path).rglob("*") if f.is_file())


def ranked(t: hybrid.Table, query: object) -> list[tuple[int, float]]:
    res = t.search(query).limit(400).select(["id"]).to_arrow()
    return list(zip(res.column("id").to_pylist(), [round(s, 5) for s in res.column("_score").to_pylist()]))


def test_same_bm25_ranking_in_a_smaller_index(tmp_path: Path) -> None:
    with_pos, without = table(tmp_path / "a", True), table(tmp_path / "b", False)
    for q in ["apple fig", "quick", "brown fox lemon", Match("kiwi nut", fuzziness=1)]:
        got = ranked(without, q)
        assert got and got == ranked(with_pos, q)
    assert fts_bytes(without) < 0.9 * fts_bytes(with_pos)


def test_phrase_queries_need_positions(tmp_path: Path) -> None:
    with_pos, without = table(tmp_path / "a", True), table(tmp_path / "b", False)
    assert {i for i, _ in ranked(with_pos, Phrase("quick brown fox"))} == set(range(0, 300, 5))
    assert len(ranked(with_pos, QueryString('"brown quick"'))) == 240
    for q in [Phrase("quick brown fox"), QueryString('"brown quick" apple'), Match("quick fox", proximity=1.0)]:
        with pytest.raises(QueryError, match="positions=True"):
            without.search(q).to_arrow()
    # a one-word phrase and an unquoted query string need no positions
    assert {i for i, _ in ranked(without, Phrase("quick"))} == {i for i, _ in ranked(with_pos, Phrase("quick"))}
    assert ranked(without, QueryString("apple AND fig")) == ranked(with_pos, QueryString("apple AND fig"))


def test_no_positions_survives_reopen_and_changes(tmp_path: Path) -> None:
    t = table(tmp_path, False)
    t.add(rows(300, 40))  # unindexed rows are searched by an in-memory index of the same kind
    t.delete("id < 10")
    with pytest.raises(QueryError):
        t.search(Phrase("quick brown")).to_arrow()
    t.optimize()  # folds the new rows into the index
    t.compact()
    t.optimize(rebuild=True)
    again = hybrid.connect(tmp_path).open_table("t")
    assert {i for i, _ in ranked(again, "mango")} == {r["id"] for r in rows(10, 330) if "mango" in r["text"].split()}
    with pytest.raises(QueryError, match="without them"):
        again.search(Phrase("quick brown")).to_arrow()
    (stats,) = [s for s in again.index_stats() if s["kind"] == "fts"]
    assert stats.get("positions") is False


def test_positions_must_be_a_bool(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", pa.table({"text": ["a b"]}))
    with pytest.raises(TypeError, match="positions"):
        t.create_fts_index("text", positions="no")  # type: ignore[arg-type]
