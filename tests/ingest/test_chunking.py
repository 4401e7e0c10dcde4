"""Chunk sizes, overlap, heading paths, section boundaries and stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid.ingest import Chunker, Document, Section, chunk_id, count_tokens, split_sentences

SENTENCES = [f"Sentence number {i} talks about topic {i % 3}." for i in range(40)]


def doc(*sections: Section, source: str = "a.md") -> Document:
    return Document(source, Path(source), "markdown", "Title", sections)


def test_short_paragraphs_are_packed_and_sections_never_merge() -> None:
    d = doc(Section(("A",), ("one.", "two.")), Section(("A", "B"), ("three.",)), Section((), ("four.",)))
    chunks = Chunker(size=100, overlap=10).chunks(d)
    assert [(c.heading, c.text, c.chunk) for c in chunks] == [
        ("A", "one.\n\ntwo.", 0),
        ("A > B", "three.", 1),
        ("", "four.", 2),
    ]
    assert all(c.source == "a.md" and c.title == "Title" and c.page is None for c in chunks)


@pytest.mark.parametrize(
    ("unit", "size", "overlap"),
    [
        ("chars", 60, 0),
        ("chars", 120, 30),
        ("chars", 300, 100),
        ("tokens", 12, 0),
        ("tokens", 24, 6),
        ("tokens", 60, 20),
    ],
)
def test_every_chunk_fits_and_all_text_is_kept(unit: str, size: int, overlap: int) -> None:
    chunker = Chunker(size=size, overlap=overlap, unit=unit)  # type: ignore[arg-type]
    blocks = (" ".join(SENTENCES[:15]), "short one.", " ".join(SENTENCES[15:]))
    texts = chunker.split(blocks)
    assert len(texts) > 2
    assert all(chunker.measure(t) <= chunker.size for t in texts)
    joined = " ".join(texts)
    assert all(s in joined for s in SENTENCES)  # nothing lost, sentences never cut at these sizes


def test_overlap_repeats_the_end_of_the_previous_chunk() -> None:
    texts = Chunker(size=120, overlap=50).split((" ".join(SENTENCES),))
    assert len(texts) > 10
    for previous, current in zip(texts, texts[1:]):
        # each sentence is about 40 characters: the last one of a chunk opens the next
        assert split_sentences(current)[0] == split_sentences(previous)[-1]
    words = Chunker(size=100, overlap=12).split((" ".join(f"w{i}" for i in range(100)),))
    for previous, current in zip(words, words[1:]):  # no sentence fits: whole words up to the overlap
        tail = current[: current.index(" ", 9)]
        assert previous.endswith(tail) and len(tail) <= 12


def test_no_overlap_means_disjoint_chunks() -> None:
    texts = Chunker(size=100, overlap=0).split((" ".join(SENTENCES),))
    assert " ".join(texts) == " ".join(SENTENCES)


def test_paragraphs_split_before_sentences_and_lines_for_code() -> None:
    code = "\n".join(f"line_{i} = compute({i})" for i in range(20))
    texts = Chunker(size=100, overlap=0).split((code,))
    assert all(len(t) <= 100 for t in texts)
    assert "\n".join(texts) == code  # cut only at line breaks


def test_a_huge_word_is_cut_anywhere() -> None:
    texts = Chunker(size=50, overlap=10).split(("x" * 175,))
    assert [len(t) for t in texts] == [50, 50, 50, 25]
    tokens = Chunker(size=20, overlap=0, unit="tokens")
    texts = tokens.split(("-".join(["ab"] * 30),))
    assert all(tokens.measure(t) <= 20 for t in texts) and "".join(texts) == "-".join(["ab"] * 30)


def test_chunk_index_runs_across_sections_and_ids_are_stable() -> None:
    d = doc(Section(("A",), (" ".join(SENTENCES[:10]),), page=1), Section(("B",), ("tail.",), page=2))
    first = Chunker(size=150, overlap=20).chunks(d)
    again = Chunker(size=150, overlap=20).chunks(d)
    assert [c.chunk for c in first] == list(range(len(first)))
    assert [c.id for c in first] == [c.id for c in again]
    assert len({c.id for c in first}) == len(first)
    assert first[-1].page == 2 and first[-1].heading == "B"
    # the id depends on the source, the position and the content
    c = first[0]
    assert c.id == chunk_id(c.source, c.chunk, c.page, c.heading, c.text, c.context)
    assert chunk_id(c.source, c.chunk, c.page, c.heading, c.text) != c.id  # embedded bare: another id
    assert chunk_id("other.md", c.chunk, c.page, c.heading, c.text) != c.id
    assert chunk_id(c.source, c.chunk + 1, c.page, c.heading, c.text) != c.id
    assert chunk_id(c.source, c.chunk, c.page, c.heading, c.text + "!") != c.id


def test_metadata_travels_with_each_chunk() -> None:
    d = doc(Section(("Rec",), ("alpha.", "beta."), metadata={"id": 3, "lang": "en"}))
    (chunk,) = Chunker(size=100, overlap=0).chunks(d)
    assert chunk.metadata == {"id": 3, "lang": "en"} and chunk.heading == "Rec"


def test_sentences_and_tokens() -> None:
    assert split_sentences("Mr. Smith went home. He slept! Did he? 3 times.") == [
        "Mr.",
        "Smith went home.",
        "He slept!",
        "Did he?",
        "3 times.",
    ]
    assert split_sentences("version 1.2.3 is out. ok") == ["version 1.2.3 is out. ok"]
    assert split_sentences("第一句。第二句！第三句") == ["第一句。", "第二句！", "第三句"]
    assert count_tokens("CREATE INDEX CONCURRENTLY idx ON t (a);") == 10
    assert count_tokens("中文分词") == 4


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 4}, {"size": 100, "overlap": 100}, {"size": 100, "overlap": -1}, {"unit": "words"}, {"size": 1.5}],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Chunker(**kwargs)  # type: ignore[arg-type]
