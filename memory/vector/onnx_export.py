"""The one-off making of an ONNX embedding model, apart from the encoder that runs it
(:mod:`memory.vector.onnx_encoder`).

On first use the sentence-transformers model (the packaged MiniLM by default) is
exported once with ``torch.onnx`` (the transformer, its pooling and normalisation in one
graph), its attention and layer norms are fused with ONNX Runtime's transformer
optimiser, and the result is checked against PyTorch on probe sentences (cosine >=
``MIN_COSINE`` or the export is refused). It is cached under
``<cache_dir>/<model>-<key>/`` where the key hashes the model folder, so later starts
load it without PyTorch. Nothing is downloaded.

The int8 copy (``INT8_FILE``, beside the float export) takes int8 weights in every
matrix multiplication, the fused attention's query, key and value projections included,
one scale per output channel, with the activations quantised per run (ONNX Runtime's
dynamic quantisation; fast on CPUs with VNNI). It is made from the float export once,
and refused unless its vectors stay within cosine ``INT8_MIN_COSINE`` of the float
model's on the probe sentences. Per-tensor scales (one per matrix) move vectors much
further, so they are not used.

Each is made by one process at a time: others wait on a lock file, then reuse it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memory.errors import EmbedderError
from memory.vector.embedder import load_sentence_transformer, resolve_model, torch_encoder
from memory.vector.onnx_encoder import Export, OnnxEncoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the export changes, so cached exports are redone
MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.97  # per probe sentence, to the float export's vector
INT8_FILE = "model-int8-2.onnx"  # the number changes when the quantisation does
LOCK_TIMEOUT_S = 600.0
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PROBES = (
    "",
    "ok",
    (
        "My sister told me about her trip to Kyoto last spring and the temples there were "
        "more beautiful than she expected."
    ),
    "Remember that Anna's locker code is 88412!",
    "¿Dónde está la estación? Café, naïve, 東京, emoji 😀.",
    "word " * 400,  # longer than the model's window: truncated the same way
)


def model_key(folder: Path) -> str:
    """A short hash of the model folder (names, sizes, small files' contents) and of the
    export format: a changed model or export code gets a new export."""
    digest = hashlib.sha256(f"format {EXPORT_FORMAT}".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder)}:{size}".encode())
        if size < 256 * 1024:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def export_folder(model: str, cache_dir: Path) -> Path:
    source = Path(resolve_model(model))
    if not source.is_dir():
        raise EmbedderError(f"cannot export {model!r} to ONNX: no model folder at {source}")
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
    return cache_dir / f"{slug}-{model_key(source)}"


def ensure_export(model: str, cache_dir: Path) -> Export:
    """The cached export of ``model`` under ``cache_dir``, made first if missing (one
    process at a time: others wait on a lock file and then reuse it)."""
    folder = export_folder(model, cache_dir)
    if (folder / "meta.json").exists():
        return Export.read(folder)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(folder.with_name(folder.name + ".lock")):
        if (folder / "meta.json").exists():  # another process made it meanwhile
            return Export.read(folder)
        began = time.perf_counter()
        build = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache_dir))
        try:
            export_model(model, build)
            os.replace(build, folder)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        exported = Export.read(folder)
        log.info(
            "exported %s to ONNX in %.1f s (fused=%s, cosine to torch >= %.6f): %s",
            model,
            time.perf_counter() - began,
            exported.fused,
            exported.min_cosine,
            folder,
        )
        return exported


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbedderError(f"timed out waiting for the ONNX export lock {path}")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_int8(spec: Export) -> Path:
    """The int8 copy of ``spec``'s export, made (one process at a time) if missing;
    raises EmbedderError when quantising fails or moves vectors too far."""
    target = spec.folder / INT8_FILE
    if target.is_file():
        return target
    with _locked(spec.folder.with_name(spec.folder.name + ".int8.lock")):
        if target.is_file():
            return target
        began = time.perf_counter()
        partial = spec.folder / f".{INT8_FILE}.{os.getpid()}"
        try:
            cosine = quantize_int8(spec, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        for stale in spec.folder.glob("model-int8*.onnx"):  # an earlier version's copy
            if stale.name != INT8_FILE:
                stale.unlink(missing_ok=True)
        log.info(
            "made the int8 copy of %s in %.1f s (cosine to float >= %.4f)",
            spec.folder.name,
            time.perf_counter() - began,
            cosine,
        )
    return target


def quantize_int8(spec: Export, target: Path) -> float:
    """Write ``spec``'s model with int8 matrix-multiply weights (per output channel) to
    ``target``; return the lowest cosine to the float model on the probe sentences."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise EmbedderError(f"int8 needs onnxruntime's quantisation tools: {exc}") from exc
    try:
        with warnings.catch_warnings(), _quiet("root"):
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(spec.model_path),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=False,
                # Attention: the fused attention's projections (QAttention)
                op_types_to_quantize=["MatMul", "Attention"],
                # the fused graph's contrib ops defeat shape inference; they are float
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    except Exception as exc:  # any failure leaves the float model
        raise EmbedderError(f"int8 quantisation failed: {type(exc).__name__}: {exc}") from exc
    texts = list(_PROBES)
    expected = OnnxEncoder(spec, threads=1)(texts)
    got = OnnxEncoder(spec, path=target, threads=1, chunk=1)(texts)
    cosine = float(np.min(np.sum(got * expected, axis=1)))
    if cosine < INT8_MIN_COSINE:
        raise EmbedderError(
            f"the int8 copy moves vectors to cosine {cosine:.4f} of the float model's"
            f" (needs >= {INT8_MIN_COSINE})"
        )
    return cosine


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Hold a chatty logger (the quantiser's advice goes to the root logger) at ERROR."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_model(model: str, folder: Path) -> None:
    """Export ``model`` into ``folder`` (model.onnx, meta.json); raises EmbedderError if
    the exported graph does not reproduce PyTorch's vectors."""
    import torch

    tokenizer = Path(resolve_model(model)) / "tokenizer.json"
    if not tokenizer.is_file():
        raise EmbedderError(f"cannot export {model!r} to ONNX: it has no tokenizer.json")
    shutil.copyfile(tokenizer, folder / "tokenizer.json")
    st = load_sentence_transformer_eager(model)
    probe = st.tokenizer(
        ["a short probe", "a somewhat longer probe sentence for the export"],
        padding=True,
        truncation=True,
        return_tensors="pt",
    )
    inputs = tuple(name for name in _INPUTS if name in probe)
    wrapper = _pipeline(st, inputs).eval()
    raw = folder / "raw.onnx"
    axes = {name: {0: "batch", 1: "tokens"} for name in inputs}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shapes fixed at export
        torch.onnx.export(
            wrapper,
            tuple(probe[name] for name in inputs),
            str(raw),
            input_names=list(inputs),
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    expected = torch_encoder(st)(list(_PROBES))
    max_length = int(st.max_seq_length or 512)
    pad_id = int(st.tokenizer.pad_token_id or 0)
    pad_token = str(st.tokenizer.pad_token or "[PAD]")
    candidates: list[tuple[Path, bool]] = []
    fused = _fuse(raw, folder / "fused.onnx", st)
    if fused is not None:
        candidates.append((fused, True))
    candidates.append((raw, False))
    for path, is_fused in candidates:
        spec = Export(folder, inputs, max_length, pad_id, pad_token, expected.shape[1], is_fused, 0)
        got = OnnxEncoder(spec, path=path, threads=1)(list(_PROBES))
        cosine = float(np.min(np.sum(got * expected, axis=1)))
        if cosine >= MIN_COSINE:
            path.rename(folder / "model.onnx")
            meta = {
                "model": model,
                "inputs": list(inputs),
                "max_length": max_length,
                "pad_id": pad_id,
                "pad_token": pad_token,
                "dim": int(expected.shape[1]),
                "fused": is_fused,
                "min_cosine": cosine,
                "format": EXPORT_FORMAT,
            }
            (folder / "meta.json").write_text(json.dumps(meta, indent=2))
            for leftover in folder.glob("*.onnx"):
                if leftover.name != "model.onnx":
                    leftover.unlink()
            return
        log.warning("ONNX export of %s (fused=%s): cosine to torch %.6f", model, is_fused, cosine)
    raise EmbedderError(f"the ONNX export of {model!r} does not reproduce the model's vectors")


def load_sentence_transformer_eager(model: str) -> SentenceTransformer:
    """The model with plain ("eager") attention: it exports to the pattern ONNX Runtime
    fuses; the default scaled-dot-product attention traces to a graph it cannot fuse."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(
            resolve_model(model), device="cpu", model_kwargs={"attn_implementation": "eager"}
        )
    except (OSError, ValueError, TypeError):
        return load_sentence_transformer(model)


def _fuse(raw: Path, target: Path, st: SentenceTransformer) -> Path | None:
    """ONNX Runtime's transformer fusions (attention, layer norms, GELU) for BERT-like
    models, or None when they do not apply."""
    config = getattr(getattr(st[0], "auto_model", None), "config", None)
    if config is None or getattr(config, "model_type", "") != "bert":
        return None
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fused = optimize_model(
                str(raw),
                model_type="bert",
                num_heads=int(config.num_attention_heads),
                hidden_size=int(config.hidden_size),
                opt_level=0,
            )
        fused.save_model_to_file(str(target))
    except Exception as exc:  # noqa: BLE001 - the unfused graph still works
        log.warning("ONNX fusion skipped: %s: %s", type(exc).__name__, exc)
        return None
    return target


def _pipeline_module() -> type[Any]:
    import torch

    class Pipeline(torch.nn.Module):
        """The sentence-transformers modules (transformer, pooling, normalise) as one
        forward taking the tokeniser's tensors positionally."""

        def __init__(self, st: SentenceTransformer, inputs: tuple[str, ...]) -> None:
            super().__init__()
            self.st = st
            self.inputs = inputs

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            features = dict(zip(self.inputs, tensors, strict=True))
            out: torch.Tensor = self.st(features)["sentence_embedding"]
            return out

    return Pipeline


def _pipeline(st: SentenceTransformer, inputs: tuple[str, ...]) -> Any:
    return _pipeline_module()(st, inputs)
