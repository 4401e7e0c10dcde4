"""The LanceDB peer comparison's settings: collections, measures, depths, and each system's FTS options."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bench.frame import REPO

COLLECTIONS = "scifact,nfcorpus,cranfield,xquad-r/en,xquad-r/zh"
MEASURES = ["nDCG@10", "R@100", "RR@10"]
K = 100
RRF_K = 60
WARMUP = 5  # untimed queries before each run
HYBRID_FTS: dict[str, Any] = {}  # the library's defaults: language detected from the text
HYBRID_FTS_ZH_JIEBA = {"tokenizer": "jieba", "language": "zh"}  # Chinese diagnostic: jieba words
LANCE_FTS_EN = {
    "base_tokenizer": "simple",
    "language": "English",
    "stem": True,
    "remove_stop_words": True,
    "lower_case": True,
    "ascii_folding": True,
    "max_token_length": 40,
}
# Chinese: no stemming or stop words (hybrid's zh analyzer has neither), lower case + ASCII folding as hybrid
LANCE_FTS_ZH = {"stem": False, "remove_stop_words": False, "lower_case": True, "ascii_folding": True}
LANCE_ZH_TOKENIZERS = {
    "jieba/default": {"base_tokenizer": "jieba/default"},
    "icu": {"base_tokenizer": "icu"},
    "ngram-1-2": {"base_tokenizer": "ngram", "ngram_min_length": 1, "ngram_max_length": 2},
}
HYBRID_RUNS = ("bm25", "dense", "hybrid-rrf", "hybrid-default", "hybrid-rrf-d100")
HYBRID_FUSED = ("hybrid-rrf", "hybrid-default")  # the candidates for "hybrid's best hybrid run"
LANCE_RUNS = ("lance-bm25", "lance-dense", "lance-hybrid-rrf")
COUNTERPART = {"lance-bm25": "bm25", "lance-dense": "dense", "lance-hybrid-rrf": "hybrid-rrf"}


def default_data() -> Path:
    return Path(os.environ.get("HYBRID_DATA", REPO.parent / "shared" / "data"))


def safe_name(name: str) -> str:
    """`name` with anything but letters, digits, _ and - replaced by _ (for table names)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)
