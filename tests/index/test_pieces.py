"""Version 4's word-piece field, on request (``pieces=4``): words that share a part are found by each
other (compounds, derived forms, names in another case), weighted below a whole-word match; indexes
built without it, or by version 3, keep one field."""

from __future__ import annotations

import pytest

import hybrid
from hybrid.index.analyzer import CURRENT_VERSION, PIECE_SIZE, Analyzer

FILLER = [f"Zeile Nummer {i} über nichts Besonderes" for i in range(12)]


def _table(
    db: hybrid.Database, texts: list[str], language: str, name: str = "t", pieces: int | None = PIECE_SIZE
) -> hybrid.Table:
    t = db.create_table(name, [{"id": i, "text": s} for i, s in enumerate([*texts, *FILLER])])
    t.create_fts_index("text", language=language, pieces=pieces)
    return t


def _hits(t: hybrid.Table, query: str) -> list[int]:
    return [h["id"] for h in t.search(query, query_type="fts").limit(5).to_list()]


# (document, query): no shared stem, a shared part of at least PIECE_SIZE letters
PAIRS = [
    ("de", "Die Funkübertragung begann früh.", "Funkwellen"),
    ("ru", "Это был варшавский договор.", "Варшава"),
    ("de", "Die Erfindungen Teslas waren berühmt.", "Tesla"),
    ("es", "La electrificación llegó tarde.", "eléctrica"),
]


@pytest.mark.parametrize(("language", "document", "query"), PAIRS)
def test_a_shared_word_part_finds_the_document(db: hybrid.Database, language: str, document: str, query: str) -> None:
    t = _table(db, [document], language)
    assert _hits(t, query)[:1] == [0]
    # the word field alone (version 3) has no term in common: the pieces are what find it
    old = Analyzer(language, version=3)
    assert not set(old.terms(query)) & set(old.terms(document))


def test_a_whole_word_match_outranks_a_piece_match(db: hybrid.Database) -> None:
    t = _table(db, ["Die Funkübertragung begann früh.", "Die Funkwellen kamen spät."], "de")
    assert _hits(t, "Funkwellen")[:2] == [1, 0]


def test_pieces_follow_the_documented_rule() -> None:
    assert Analyzer("de").piece_size == 0  # off unless asked for
    de = Analyzer("de", pieces=PIECE_SIZE)
    assert de.version == CURRENT_VERSION and de.piece_size == PIECE_SIZE
    assert de.pieces_of(de.prepare("der Hund")) == ["hund"]  # stop word dropped, short word its own piece
    assert de.pieces_of(de.prepare("Häuser")) == ["häus", "äuse", "user"]  # as written: before stemming
    assert de.pieces_of(de.prepare("Modell ZK3100 von 1856")) == ["mode", "odel", "dell"]  # numbers, codes: whole
    assert Analyzer("zh", pieces=4).piece_size == 0 and Analyzer("th", pieces=4).piece_size == 0  # no spaces
    assert Analyzer("de", version=3).piece_size == 0 and Analyzer("de", pieces=0).piece_size == 0
    assert Analyzer("en", pieces=5).pieces_of("wavelength") == ["wavel", "avele", "velen", "eleng", "lengt", "ength"]
    weights = de.query_pieces("Funkwellen Hund")
    assert weights["hund"] == 1.0 and abs(sum(weights.values()) - 2.0) < 1e-9  # each word's pieces share 1
    with pytest.raises(ValueError, match="pieces"):
        Analyzer("de", pieces=-1)


@pytest.mark.parametrize("language", ["en", "de"])
def test_an_index_has_no_piece_field_unless_asked(db: hybrid.Database, language: str) -> None:
    t = _table(db, ["Die Funkübertragung begann früh."], language, pieces=None)
    assert _hits(t, "Funkwellen") == []  # whole words only, as version 3


def test_an_english_index_has_no_piece_field(db: hybrid.Database) -> None:
    t = _table(db, ["The radio transmission started early."], "en", pieces=None)
    assert _hits(t, "transmissions")[:1] == [0]  # the stemmer, as before
    assert _hits(t, "transmit") == []  # no pieces: "tran", "rans", ... are not searched


def test_reopened_and_appended_tables_keep_the_pieces(db: hybrid.Database) -> None:
    t = _table(db, ["Die Funkübertragung begann früh."], "de")
    stats = next(s for s in t.index_stats() if s["kind"] == "fts")
    assert stats["analyzer"]["version"] == CURRENT_VERSION
    t.add([{"id": 100, "text": "Der Funkturm steht noch."}])  # not yet in the index: the tail finds it too
    assert set(_hits(t, "Funkwellen")[:2]) == {0, 100}
    reopened = hybrid.connect(db.path).open_table("t")
    assert set(_hits(reopened, "Funkwellen")[:2]) == {0, 100}
    # an index built by version 3 (stored analyzer without pieces) reads back without them
    old = Analyzer.from_dict({**stats["analyzer"], "version": 3, "pieces": None})
    assert old.piece_size == 0


def test_appended_rows_score_as_a_rebuilt_index_scores_them(db: hybrid.Database) -> None:
    """A row not yet in the index is scored on the index's statistics, its pieces field included."""
    texts = ["Die Funkübertragung begann früh.", "Der Funkturm steht noch.", "Die Wellen kamen spät."]
    t = _table(db, texts[:1], "de", "tail")
    t.add([{"id": 100 + i, "text": s} for i, s in enumerate(texts[1:])])
    plan = t.search("Funkwellen", query_type="fts").explain()
    assert "index's statistics" in plan, plan
    fresh = {h["id"]: h["_score"] for h in t.search("Funkwellen", query_type="fts").limit(5).to_list()}
    t.optimize()
    rebuilt = {h["id"]: h["_score"] for h in t.search("Funkwellen", query_type="fts").limit(5).to_list()}
    assert fresh.keys() == rebuilt.keys() == {0, 100, 101}  # 101 only through its pieces (Wellen)
    for i in (100, 101):  # (row 0 was scored on the old index's statistics, which now count the new rows)
        assert abs(fresh[i] - rebuilt[i]) <= 0.1 * rebuilt[i], (i, fresh[i], rebuilt[i])
