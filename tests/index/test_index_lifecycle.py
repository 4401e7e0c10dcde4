"""Chinese full text, and index folders following versions, optimize and cleanup."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import hybrid
from tests.conftest import make_rows

ZH = [
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
    "上海是中国最大的城市之一，以金融和航运闻名。",
    "长城是古代中国为抵御外敌而修建的军事工程。",
    "熊猫主要生活在四川的山区，以竹子为食。",
    "The Great Wall is visible in many photographs of northern China.",
]


@pytest.mark.parametrize("tokenizer", ["jieba", "cjk"])
def test_chinese_full_text(db: hybrid.Database, tokenizer: str) -> None:
    t = db.create_table("zh", [{"id": i, "text": s} for i, s in enumerate(ZH)])
    t.create_fts_index("text", tokenizer=tokenizer)  # type: ignore[arg-type]
    assert t.search("中国的首都是哪里？").limit(1).to_list()[0]["id"] == 0
    assert t.search("熊猫吃什么").limit(1).to_list()[0]["id"] == 3
    assert t.search("长城").limit(1).to_list()[0]["id"] == 2
    assert t.search("Great Wall").limit(1).to_list()[0]["id"] == 4  # mixed-language rows still work


def test_default_tokenizer_finds_words_inside_a_han_run(db: hybrid.Database) -> None:
    # tantivy alone keeps a run of Han characters as one token; the default analysis cuts it into
    # characters and bigrams, so a word inside a sentence is found without choosing a tokenizer
    t = db.create_table("zh", [{"id": i, "text": s} for i, s in enumerate(ZH)])
    t.create_fts_index("text")
    assert t.search("首都").limit(1).to_list()[0]["id"] == 0


def test_index_folders_follow_optimize_and_cleanup(db: hybrid.Database) -> None:
    t = db.create_table("docs", make_rows(range(200)))
    t.create_fts_index("text")
    t.create_vector_index("vector")
    first = {e["path"] for e in t.snapshot().manifest.indexes}
    t.add(make_rows(range(200, 260)))
    t.delete("id < 20")
    stats = {s["kind"]: s for s in t.index_stats()}
    assert stats["fts"]["unindexed_rows"] == 60 and stats["fts"]["dead_rows"] == 20
    assert stats["vector"]["unindexed_rows"] == 60 and stats["vector"]["dead_rows"] == 20
    before = t.search("document number 250").limit(3).to_list()
    assert len(t.optimize()) == 2
    assert all(s["unindexed_rows"] == 0 and s["dead_rows"] == 0 for s in t.index_stats())
    after = t.search("document number 250").limit(3).to_list()
    assert before[0]["id"] == after[0]["id"] == 250
    second = {e["path"] for e in t.snapshot().manifest.indexes}
    assert first.isdisjoint(second)
    old = t.checkout(3)  # indexes of the first build, searched as of version 3
    assert old.search("document number 199").limit(1).to_list()[0]["id"] == 199
    t.cleanup(older_than=dt.timedelta(0))
    on_disk = {f"indexes/{p.name}" for p in (t.path / "indexes").iterdir()}
    assert on_disk == second
    v = np.asarray(make_rows([42])[0]["vector"], dtype=np.float32)
    assert t.search(v).limit(1).to_list()[0]["id"] == 42


def test_dropped_column_drops_its_index(db: hybrid.Database) -> None:
    t = db.create_table("docs", make_rows(range(50)))
    t.create_fts_index("text")
    t.drop_columns("text")
    assert t.index_stats() == []
    with pytest.raises(hybrid.HybridError, match="no full-text index"):
        t.search("document").to_list()
    t.rename_column("lang", "language")
    t.create_vector_index("vector")
    t.rename_column("vector", "embedding")
    assert t.index_stats()[0]["columns"] == ["embedding"]
    assert len(t.search([0.5] * 4, vector_column="embedding").limit(3).to_list()) == 3
