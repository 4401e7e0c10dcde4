"""Per-query branch weights from the steepness of each branch's list (hybrid/query/confidence.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.query.confidence import GAP_RANK, confidences, steepness


def test_steepness_compares_the_first_result_with_the_tenth() -> None:
    bm25 = np.array([20.0, 18, 15, 14, 12, 11, 10, 9, 8, 5, 4, 1])
    assert steepness(bm25, "fts") == pytest.approx(1 - 5 / 20)  # the 10th, not the last
    dist = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.8, 0.9])
    assert steepness(dist, "vector") == pytest.approx(1 - 0.1 / 0.8)
    assert GAP_RANK == 10


def test_a_shorter_list_uses_its_last_result() -> None:
    assert steepness(np.array([4.0, 3.0, 1.0]), "fts") == pytest.approx(0.75)
    assert steepness(np.array([0.5, 1.0]), "vector") == pytest.approx(0.5)


def test_flat_and_steep_lists_at_the_ends_of_the_scale() -> None:
    assert steepness(np.full(20, 3.5), "fts") == 0.0
    assert steepness(np.full(20, 0.4), "vector") == 0.0
    # an exact match (distance 0) is as steep as it gets
    assert steepness(np.array([0.0, 0.3, 0.4]), "vector") == 1.0


def test_lists_that_cannot_say_get_none() -> None:
    assert steepness(np.array([7.0]), "fts") is None
    assert steepness(np.empty(0), "vector") is None
    # inner-product distances (1 - dot) go below zero for long vectors: no natural zero to compare with
    assert steepness(np.array([-0.5, 0.2, 0.3]), "vector") is None
    assert steepness(np.array([0.0, 0.0]), "vector") is None


def test_confidences_fall_back_to_equal_when_nothing_separates() -> None:
    flat = np.full(10, 2.0)
    assert confidences([(flat, "fts"), (np.full(10, 0.3), "vector")]) == [1.0, 1.0]
    assert confidences([(np.array([9.0]), "fts"), (np.array([0.1, 0.4]), "vector")]) == [1.0, 0.75]
    assert confidences([(flat, "fts"), (np.array([0.1, 0.4]), "vector")]) == [0.0, 0.75]


def _table(tmp_path: Path) -> tuple[hybrid.Table, np.ndarray]:
    """Vectors nearly alike (a flat vector list for any query near them); one row with a rare word."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=16).astype(np.float32)
    vectors = base + 0.01 * rng.normal(size=(60, 16)).astype(np.float32)
    vectors[17] = base + 0.05 * rng.normal(size=16).astype(np.float32)  # the text's answer: last by vector
    rows = [{"id": i, "text": "common words shared by all rows", "vector": vectors[i]} for i in range(60)]
    rows[17]["text"] += " zebra"
    t = hybrid.connect(tmp_path).create_table("t", rows)
    t.create_fts_index("text")
    return t, base


def test_a_flat_branch_has_little_say_in_the_default_fusion(tmp_path: Path) -> None:
    t, base = _table(tmp_path)
    assert t.search("zebra common").limit(1).to_arrow().column("id").to_pylist() == [17]
    vector_ids = t.search(base, vector_column="vector").limit(60).to_arrow().column("id").to_pylist()
    assert vector_ids[0] != 17 and vector_ids.index(17) > 50  # the vector branch ranks it last but a few
    fused = t.search("zebra common").vector(base, column="vector").limit(3)
    # the vector list is flat (its 10th result nearly as close as its first), the text list steep
    assert fused.to_arrow().column("id").to_pylist()[0] == 17
    assert "steepness for this query" in fused.explain()
    # with equal weights the 0.7 vector share decides instead: the flat branch's first result wins
    assert fused.weights("equal").to_arrow().column("id").to_pylist()[0] == vector_ids[0]
    assert "steepness" not in fused.weights("equal").explain()


def test_vocabulary_factor_is_the_known_share_squared() -> None:
    from hybrid.query.confidence import VOCABULARY_POWER, vocabulary

    assert VOCABULARY_POWER == 2.0
    assert vocabulary(None) == 1.0 and vocabulary(1.0) == 1.0 and vocabulary(0.0) == 0.0
    assert vocabulary(0.5) == pytest.approx(0.25)
    # a query confidently in another language: no say unless every term is known
    assert vocabulary(0.9, foreign=True) == 0.0 and vocabulary(1.0, foreign=True) == 1.0
    assert vocabulary(None, foreign=True) == 1.0


def test_a_query_in_another_language_leaves_the_answer_to_the_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """German rows; an English question shares only a name with them. Full text ranks the row that
    repeats the name first; the question's other words are unknown to the index, so the text
    branch's say shrinks and the vector branch's answer wins (without that factor it would not)."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=16).astype(np.float32)
    vectors = base + 0.3 * rng.normal(size=(40, 16)).astype(np.float32)
    answer = 7
    query = vectors[answer] + 0.3 * rng.normal(size=16).astype(np.float32)
    rows = [
        {"id": i, "text": f"Die Normandie liegt im Norden Frankreichs, Abschnitt {i}.", "vector": vectors[i]}
        for i in range(40)
    ]
    rows[answer]["text"] = "Im Jahr 911 erhielten die Nordmänner Gebiete an der Seine."
    rows[3]["text"] = "Normandie Normandie Normandie: die Normandie, immer wieder die Normandie."
    t = hybrid.connect(tmp_path).create_table("de", rows)
    t.create_fts_index("text", language="de")
    question = "In what year did the Normans receive land along the Normandie river"
    assert t.search(question, query_type="fts").limit(1).to_arrow().column("id").to_pylist() == [3]
    assert t.search(query, vector_column="vector").limit(1).to_arrow().column("id").to_pylist() == [answer]
    fused = t.search(question).vector(query, column="vector").limit(1)
    assert fused.to_arrow().column("id").to_pylist() == [answer]
    assert "of the query's terms" in fused.explain()
    # the same query, were it not recognised as foreign, follows the name instead
    import hybrid.query.executor as executor

    monkeypatch.setattr(executor, "foreign_reason", lambda *_: None)
    assert fused.to_arrow().column("id").to_pylist() == [3]


def _russian_table(tmp_path: Path) -> tuple[hybrid.Table, np.ndarray, int]:
    """Russian rows; row 3 repeats a Latin name, the answer (row 7) is Russian only."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=16).astype(np.float32)
    vectors = base + 0.3 * rng.normal(size=(40, 16)).astype(np.float32)
    answer = 7
    query = vectors[answer] + 0.3 * rng.normal(size=16).astype(np.float32)
    rows = [
        {"id": i, "text": f"Опыты с электричеством проводились в лаборатории, раздел {i}.", "vector": vectors[i]}
        for i in range(40)
    ]
    rows[answer]["text"] = "Изобретатель показал беспроводную передачу энергии в Колорадо в 1899 году."
    rows[3]["text"] = "Tesla coil experiment: Tesla coil, Tesla coil experiment, coil experiment again."
    t = hybrid.connect(tmp_path).create_table("ru", rows)
    t.create_fts_index("text", language="ru")
    return t, query, answer


def test_a_question_in_another_script_leaves_the_answer_to_the_vectors(tmp_path: Path) -> None:
    """An English question over Russian rows: three of its four terms are Latin borrowings the index
    holds (known share 0.75, a factor 0.56 by the share alone, enough for BM25's steep list to win).
    None of its letters is Cyrillic, so every known term is a borrowing and the text branch has no
    say unless the whole query is one; the vector branch's answer comes first."""
    t, query, answer = _russian_table(tmp_path)
    question = "Tesla coil experiment history"
    assert t.search(question, query_type="fts").limit(1).to_arrow().column("id").to_pylist() == [3]
    fused = t.search(question).vector(query, column="vector").limit(1)
    assert fused.to_arrow().column("id").to_pylist() == [answer]
    assert "none of the query's letters in the index language's script" in fused.explain()
    assert "x 0.00" in fused.explain()


def test_a_borrowed_name_searched_alone_keeps_its_say(tmp_path: Path) -> None:
    """The same rows asked for the Latin name alone: every term is known, so the text branch counts
    in full (a product name or identifier in another script is what such a query is for)."""
    t, query, _ = _russian_table(tmp_path)
    fused = t.search("Tesla coil experiment").vector(query, column="vector").limit(1)
    assert fused.to_arrow().column("id").to_pylist() == [3]
    assert "x 1.00" in fused.explain()


def _name_table(
    tmp_path: Path, language: str, filler: str, answer_text: str, decoy: str
) -> tuple[hybrid.Table, np.ndarray]:
    """Rows of `language`; row 3 (`decoy`) holds the query's words, the vector answer is row 7."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=16).astype(np.float32)
    vectors = base + 0.3 * rng.normal(size=(40, 16)).astype(np.float32)
    query = vectors[7] + 0.3 * rng.normal(size=16).astype(np.float32)
    rows = [{"id": i, "text": f"{filler} {i}.", "vector": vectors[i]} for i in range(40)]
    rows[7]["text"], rows[3]["text"] = answer_text, decoy
    t = hybrid.connect(tmp_path).create_table(language, rows)
    t.create_fts_index("text", language=language)
    return t, query


def test_a_confidently_foreign_question_in_the_same_script_leaves_the_answer_to_the_vectors(tmp_path: Path) -> None:
    """An English question over German rows, one of which is an English note that holds most of the
    question's words (known share 0.8: by the share alone a factor 0.64, enough for BM25's steep list
    to win). py3langid reads the question as English, so like a question in another script it gets no
    text weight unless every term is known, and the vector branch's answer comes first."""
    t, query = _name_table(
        tmp_path,
        "de",
        "Die Normandie liegt im Norden Frankreichs, Abschnitt",
        "Im Jahr 1899 zeigte der Erfinder drahtlose Energieübertragung in Colorado.",
        "Tesla coil experiment history: the history of the Tesla coil experiment, the Tesla coil again.",
    )
    question = "What was the history of the Tesla coil experiment?"
    assert t.search(question, query_type="fts").limit(1).to_arrow().column("id").to_pylist() == [3]
    fused = t.search(question).vector(query, column="vector").limit(1)
    assert fused.to_arrow().column("id").to_pylist() == [7]
    explained = fused.explain()
    assert "py3langid reads it as 'en'" in explained and "x 0.00" in explained
    assert "no say unless it knows every term" in explained


@pytest.mark.parametrize(
    ("language", "filler", "decoy", "question"),
    [
        (
            "de",
            "Die Normandie liegt im Norden Frankreichs, Abschnitt",
            "Druckerproblem mit dem Gerät ZK-31 im Büro: das Gerät ZK-31 hat ein Druckerproblem.",
            "Warum hat das Gerät ZK-31 im Büro ein Druckerproblem?",
        ),
        (
            "en",
            "The printers on the third floor were serviced in section",
            "Printer ZK-31 jams in the office: the ZK-31 printer jam report.",
            "Why does the printer ZK-31 jam in the office?",
        ),
    ],
)
def test_a_question_in_the_index_language_keeps_its_text_weight(
    tmp_path: Path, language: str, filler: str, decoy: str, question: str
) -> None:
    """A question in the index's own language with a rare identifier and a word the index lacks keeps
    the text branch's full say (were it taken for foreign, its unknown word would silence the text
    branch and the vector answer, row 7, would win)."""
    t, query = _name_table(tmp_path, language, filler, "An unrelated row about something else entirely.", decoy)
    assert t.search(question, query_type="fts").limit(1).to_arrow().column("id").to_pylist() == [3]
    fused = t.search(question).vector(query, column="vector").limit(1)
    assert fused.to_arrow().column("id").to_pylist() == [3]
    assert "foreign query" not in fused.explain()


def _gaga_table(tmp_path: Path, english_rows: int = 0) -> tuple[hybrid.Table, np.ndarray]:
    """German rows (the first `english_rows` of them English notes instead); row 3 repeats the names of
    the question below, the vector answer is row 7 (German only)."""
    t, query = _name_table(
        tmp_path,
        "de",
        "Die Normandie liegt im Norden Frankreichs, Abschnitt",
        "Im Jahr 2016 trat die Sängerin in der Halbzeitshow des Endspiels auf.",
        "Lady Gaga sing Houston: Lady Gaga opening, Lady Gaga sing again.",
    )
    if english_rows:
        notes = [
            f"What did the committee decide? It did what the minutes of meeting {i} say."
            for i in range(8, 8 + english_rows)
        ]
        for i, note in zip(range(8, 8 + english_rows), notes):
            t.update(where=f"id = {i}", values={"text": note})
        t.create_fts_index("text", language="de", replace=True)
    return t, query


def test_an_english_question_the_detector_is_unsure_of_leaves_the_answer_to_the_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """py3langid gives this short English question only 0.32 for English, so the detector alone does
    not call it foreign, and by its known share (4 of 6 terms) the text branch's steep list wins.
    Its English function words "what" and "did" are in none of the German index's documents (and
    outnumber the German stop words it holds: "in"), so it is foreign: the vector answer wins and
    explain() says why. Without the index's statistics (the rule before) the name's row wins."""
    t, query = _gaga_table(tmp_path)
    question = "What did Lady Gaga sing in Houston?"
    assert t.search(question, query_type="fts").limit(1).to_arrow().column("id").to_pylist() == [3]
    fused = t.search(question).vector(query, column="vector").limit(1)
    assert fused.to_arrow().column("id").to_pylist() == [7]
    explained = fused.explain()
    assert "py3langid's best guess is 'en' (0.32), not 'de'" in explained
    assert "English function words 'what', 'did' are each in under 10% of the index's documents" in explained
    assert "x 0.00" in explained

    import hybrid.query.executor as executor
    from hybrid.index.language import foreign_reason

    monkeypatch.setattr(
        executor, "foreign_reason", lambda text, language, doc_share=None: foreign_reason(text, language)
    )
    assert fused.to_arrow().column("id").to_pylist() == [3]


def test_an_index_that_holds_english_keeps_the_text_branch_for_english_questions(tmp_path: Path) -> None:
    """The same question over a German table a fifth of whose rows are English notes ("what" and "did"
    in 8 of 40 documents): English is in common use in this index, so the question is not foreign to
    it and the text branch keeps its say (the name's row wins, as by the known share alone)."""
    t, query = _gaga_table(tmp_path, english_rows=8)
    fused = t.search("What did Lady Gaga sing in Houston?").vector(query, column="vector").limit(1)
    assert fused.to_arrow().column("id").to_pylist() == [3]
    assert "foreign query" not in fused.explain()


@pytest.mark.parametrize(
    ("question", "why"),
    [
        ("Wer sang mit The Who in Houston?", "as many German stop words (wer, mit, in) as English ones"),
        ("Lady Gaga Houston", "no function words at all"),
    ],
)
def test_english_words_alone_do_not_make_a_question_foreign(tmp_path: Path, question: str, why: str) -> None:
    """A German question naming an English band (py3langid's best guess: Tagalog) and a keyword query
    keep the text branch: neither reads as worded in English ({why})."""
    t, query = _gaga_table(tmp_path)
    fused = t.search(question).vector(query, column="vector").limit(1)
    assert "foreign query" not in fused.explain(), why
