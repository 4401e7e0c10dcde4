"""Scripts of letters and of languages (hybrid/index/script.py), and the foreign-question rule built on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.index.language import FOREIGN_CONFIDENCE, _identifier, is_foreign
from hybrid.index.script import LANGUAGE_SCRIPTS, foreign_script, letter_script, letter_scripts

SAMPLES = {
    "en": "English",
    "vi": "Tiếng Việt",
    "de": "Größe",
    "zh": "中文汉字",
    "ja": "ひらがなカタカナ漢字",
    "ko": "한국어",
    "ru": "русский",
    "el": "ελληνικά",
    "ar": "العربية",
    "he": "עברית",
    "hi": "हिन्दी",
    "bn": "বাংলা",
    "ta": "தமிழ்",
    "th": "ภาษาไทย",
    "ka": "ქართული",
    "hy": "հայերեն",
    "am": "አማርኛ",
}
QUESTION = "Who won Super Bowl XLIX?"
"""An English question py3langid is far from sure about (names, few words)."""


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_every_letter_of_a_word_is_in_a_script_its_language_uses(language: str) -> None:
    scripts = letter_scripts(SAMPLES[language])
    assert scripts and scripts <= LANGUAGE_SCRIPTS[language]


def test_only_letters_have_a_script() -> None:
    assert [letter_script(c) for c in "7 ,?"] == [None] * 4
    assert letter_script("\u093f") is None  # a Devanagari vowel sign is a mark, not a letter
    assert letter_script("Ａ") == "LATIN" and letter_script("々") == "HAN"  # full width; iteration mark


@pytest.mark.parametrize("language", ["zh", "ja", "ko", "ru", "el", "ar", "he", "hi", "bn", "ta", "th", "ka"])
def test_a_question_without_a_letter_of_the_language_is_foreign(language: str) -> None:
    assert foreign_script(QUESTION, language) is True
    # a question of the language that names something in Latin letters is not
    assert foreign_script(SAMPLES[language] + " Super Bowl XLIX?", language) is False


def test_where_the_script_cannot_say() -> None:
    assert foreign_script(QUESTION, "de") is False  # same alphabet: the detector decides
    assert foreign_script("2015?", "ru") is None  # no letters
    assert foreign_script(QUESTION, "xx") is None  # a language without a script rule
    assert foreign_script("русский", "en") is True  # the other way round too


def test_is_foreign_trusts_the_script_where_the_detector_is_unsure() -> None:
    code, probability = _identifier().classify(QUESTION)
    assert code == "en" and probability < FOREIGN_CONFIDENCE  # the detector alone would not say
    assert is_foreign(QUESTION, "zh") and is_foreign(QUESTION, "ru") and is_foreign(QUESTION, "hi")
    assert not is_foreign(QUESTION, "de")  # same script, detector unsure: not foreign
    assert not is_foreign("谁赢得了第49届超级碗 Super Bowl XLIX?", "zh")
    assert not is_foreign(QUESTION, "multi")


def test_an_english_question_over_chinese_rows_leaves_the_answer_to_the_vectors(tmp_path: Path) -> None:
    """Chinese rows; an English question shares only a name with them, and the detector is unsure of
    its language. Full text ranks the row that repeats the name first; by its letters the question is
    foreign, so the text branch's say shrinks to the share of its terms the index knows and the
    vector branch's answer wins."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=16).astype(np.float32)
    vectors = base + 0.3 * rng.normal(size=(40, 16)).astype(np.float32)
    answer = 7
    query = vectors[answer] + 0.3 * rng.normal(size=16).astype(np.float32)
    rows = [{"id": i, "text": f"这是关于美式橄榄球比赛的第{i}段说明。", "vector": vectors[i]} for i in range(40)]
    rows[answer]["text"] = "新英格兰爱国者队在亚利桑那州赢得了这场冠军赛。"
    rows[3]["text"] = "Super Bowl XLIX，Super Bowl XLIX，又是 Super Bowl XLIX 的广告。"
    t = hybrid.connect(tmp_path).create_table("zh", rows)
    t.create_fts_index("text", language="zh")
    assert t.search(QUESTION, query_type="fts").limit(1).to_arrow().column("id").to_pylist() == [3]
    assert t.search(query, vector_column="vector").limit(1).to_arrow().column("id").to_pylist() == [answer]
    fused = t.search(QUESTION).vector(query, column="vector").limit(1)
    assert fused.to_arrow().column("id").to_pylist() == [answer]
    assert "of the query's terms" in fused.explain()
