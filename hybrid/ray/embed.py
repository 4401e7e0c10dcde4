"""Embedding at scale: a table's bound embedders run on a pool of Ray actors (GPU actors when the
cluster has GPUs), each loading its model once."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
import ray
import ray.data

from hybrid.embedders import binding
from hybrid.embedders.binding import Binding

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 256
"""Rows per batch handed to an embedding actor."""


class _Embedder:
    """One actor of the pool: resolves the embedders once, then fills vector columns batch by batch."""

    def __init__(self, bindings: tuple[Binding, ...]) -> None:
        self.bindings = bindings
        for b in bindings:  # load the models now, not inside the first batch
            _ = b.embedder.dim

    def __call__(self, batch: pa.Table) -> pa.Table:
        filled = [binding.fill(rb, self.bindings) for rb in batch.to_batches()]
        if not filled:
            return batch
        return pa.Table.from_batches(filled)


def cluster_gpus() -> float:
    """GPUs the Ray cluster has (0 without any, or before ``ray.init``)."""
    return float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0


def embed(
    dataset: ray.data.Dataset,
    bindings: tuple[Binding, ...] | Any,
    *,
    workers: int = 1,
    batch_size: int = DEFAULT_BATCH,
    num_gpus: float | None = None,
) -> ray.data.Dataset:
    """`dataset` with every bound vector column filled from its text column by a pool of `workers` actors.

    `bindings` is a table (its bound embedders are used) or a tuple of bindings. Each actor asks for
    one GPU when the cluster has GPUs (``num_gpus`` overrides), else one CPU. Rows that bring their
    own vector keep it. Ray Data shows the progress of the stage.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not isinstance(bindings, tuple):
        bindings = binding.read(bindings.snapshot().manifest.metadata)
    if not bindings:
        return dataset
    gpus = (1.0 if cluster_gpus() >= 1 else 0.0) if num_gpus is None else float(num_gpus)
    logger.info("embedding with %d actor(s), %s GPU each", workers, gpus)
    return dataset.map_batches(
        _Embedder,
        fn_constructor_args=(bindings,),
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=workers,
        num_gpus=gpus,
        num_cpus=0 if gpus else 1,
    )
