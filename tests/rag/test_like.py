"""More like this: `.like(rowids, unlike=...)` on a real table with a bound embedder and a text index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.errors import RowNotFoundError
from hybrid.query.like import distinctive

TEXTS = [
    "Vacuum reclaims storage held by dead tuples in a table.",
    "Autovacuum workers run vacuum when enough tuples are dead.",
    "A btree index speeds up equality and range lookups.",
    "Index scans read the index then fetch heap tuples.",
    "Replication slots keep WAL until subscribers confirm it.",
    "Logical replication sends row changes to subscribers.",
    "Checkpoints flush dirty pages and bound crash recovery time.",
    "The planner estimates row counts from table statistics.",
]


@pytest.fixture
def docs(tmp_path: Path) -> hybrid.Table:
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table(
        "docs",
        [{"id": i, "text": x} for i, x in enumerate(TEXTS)],
        embedding={"vector": ("text", HashingEmbedder(dim=64))},
    )
    t.create_fts_index("text")
    return t


def rowid(t: hybrid.Table, i: int) -> int:
    return int(t.to_arrow(["id"], where=f"id = {i}", with_rowid=True)["_rowid"][0].as_py())


def test_examples_never_come_back_and_a_duplicate_ranks_first(docs: hybrid.Table) -> None:
    docs.add([{"id": 100, "text": TEXTS[4]}])  # a copy of the example, text and vector
    example = rowid(docs, 4)
    for query_type in ("auto", "hybrid", "fts", "vector"):
        hits = docs.search(query_type=query_type).like([example]).limit(5).to_list()  # type: ignore[arg-type]
        assert example not in {h["_rowid"] for h in hits}, query_type
        assert hits[0]["id"] == 100, query_type
    assert docs.search().like([example]).limit(3).to_list()[1]["id"] == 5  # the other replication text next


def test_several_examples_and_unlike(docs: hybrid.Table) -> None:
    liked = [rowid(docs, 0), rowid(docs, 1)]
    hits = docs.search().like(liked, unlike=[rowid(docs, 3)]).limit(8).to_list()
    ids = [h["id"] for h in hits]
    assert not {0, 1, 3} & set(ids) and len(ids) == 5
    plan = docs.search().like(liked, unlike=[rowid(docs, 3)]).explain()
    assert "like rows" in plan and "vacuum" in plan.lower() and "the examples are left out" in plan


def test_it_combines_with_filters_grouping_and_highlights(docs: hybrid.Table) -> None:
    hits = docs.search().like([rowid(docs, 0)]).where("id <> 1").highlight().limit(3).to_list()
    assert all(h["id"] not in (0, 1) for h in hits)
    assert any("<em>tuples</em>" in h["_highlight"] or "<em>table</em>" in h["_highlight"] for h in hits)
    grouped = docs.search().like([rowid(docs, 0)]).group_by("id").limit(4).to_list()
    assert len(grouped) == 4 and 0 not in {h["id"] for h in grouped}


def test_distinctive_terms_weigh_rare_words_over_common_ones() -> None:
    counts = {"vacuum": 2, "table": 2, "dead": 1}
    assert distinctive(counts, {"vacuum": 2, "table": 50, "dead": 3}, 100, 2) == ["vacuum", "dead"]
    assert distinctive({"gone": 3}, {}, 100, 5) == []  # a term no document holds is no query


def test_bad_like_input_says_what_was_wrong(docs: hybrid.Table) -> None:
    q = docs.search()
    with pytest.raises(ValueError, match="at least one example"):
        q.like([])
    with pytest.raises(ValueError, match="both liked and unliked"):
        q.like([1], unlike=[1])
    with pytest.raises(ValueError, match="non-negative integer"):
        q.like(["a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_terms must be an integer >= 1"):
        q.like([1], max_terms=0)
    docs.delete("id = 7")
    with pytest.raises(RowNotFoundError):
        q.like([int(np.uint64(rowid(docs, 6)) + 1)]).to_list()  # the deleted row
