"""The embedding model through ONNX Runtime: the same vectors as PyTorch, at less CPU.

On first use the model is exported to ONNX once and cached (:mod:`memory.vector.onnx_export`:
the export, its int8 copy and the checks that both reproduce the model's vectors); every
embedding call then runs the export through :class:`~memory.vector.onnx_encoder.OnnxEncoder`.

``precision="int8"`` (the default of :func:`make_embedder`) runs the int8 copy, one text
per run so that a text's vector never depends on what it was batched with. What int8
costs in recall is measured with ``bench/recall_bench.py`` (``docs/memory.md``); vectors
of the two precisions are close enough that a store built with one is searched with the
other.

:func:`make_embedder` picks the backend: ``"auto"`` (ONNX, falling back to PyTorch with
a warning when ONNX Runtime is missing or the export fails), ``"onnx"`` (no fallback) or
``"torch"``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from memory.errors import EmbedderError
from memory.vector.embedder import (
    DEFAULT_MODEL,
    BatchedEmbedder,
    EncodeFn,
    SentenceTransformerEmbedder,
    load_sentence_transformer,
    set_torch_threads,
    torch_encoder,
)
from memory.vector.onnx_encoder import CHUNK, Export, OnnxEncoder
from memory.vector.onnx_export import ensure_export, ensure_int8

log = logging.getLogger(__name__)

BackendChoice = Literal["auto", "onnx", "torch"]
Precision = Literal["int8", "fp32"]


class OnnxEmbedder(BatchedEmbedder):
    """The embedding model on ONNX Runtime, exported and cached under ``cache_dir``.

    With ``fallback=True`` a missing ONNX Runtime or a failed export logs a warning and
    loads the model on PyTorch instead (``backend`` says which one runs)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        cache_dir: Path,
        threads: int = 1,
        precision: Precision = "fp32",
        fallback: bool = True,
        max_batch: int = 64,
        max_wait_s: float = 0.003,
        timeout_s: float = 30.0,
        cache_size: int = 2048,
    ) -> None:
        super().__init__(
            model,
            max_batch=max_batch,
            max_wait_s=max_wait_s,
            timeout_s=timeout_s,
            cache_size=cache_size,
        )
        self.backend = "onnx"
        self._cache_dir = cache_dir
        self._threads = threads
        self._fallback = fallback
        self._precision: Precision = precision
        self._held: object | None = None
        self.export: Export | None = None
        self.precision: Precision = precision
        """What runs: ``precision``, or ``"fp32"`` where the int8 copy could not be made."""

    @property
    def label(self) -> str:
        return f"onnx {self.precision}" if self.backend == "onnx" else self.backend

    def _load(self) -> tuple[EncodeFn, int]:
        try:
            self.export = ensure_export(self._model_name, self._cache_dir)
            path = self.export.model_path
            self.precision = "fp32"
            if self._precision == "int8":
                try:
                    path = ensure_int8(self.export)
                    self.precision = "int8"
                except EmbedderError as exc:
                    log.warning("embedder %s: running in float: %s", self._model_name, exc)
            # int8 quantises activations with one scale per run: a text batched with
            # others would get a vector that depends on them (cosine ~0.99 to its own),
            # so each text runs alone, which costs less than batching does in float
            chunk = 1 if self.precision == "int8" else CHUNK
            self.runs_alone = chunk == 1
            encoder = OnnxEncoder(self.export, path=path, threads=self._threads, chunk=chunk)
        except Exception as exc:  # any failure here has the same remedy
            reason = f"{type(exc).__name__}: {exc}"
            if not self._fallback:
                raise EmbedderError(
                    f"cannot run {self._model_name!r} on ONNX Runtime: {reason}"
                ) from exc
            log.warning(
                "embedder %s: ONNX Runtime not usable (%s); running it on PyTorch",
                self._model_name,
                reason,
            )
            self.backend = "torch"
            self.runs_alone = False
            set_torch_threads(self._threads)
            st = load_sentence_transformer(self._model_name)
            self._held = st
            return torch_encoder(st), int(st.get_embedding_dimension() or 0)
        self.backend = "onnx"
        self._held = encoder
        return encoder, self.export.dim

    def _unload(self) -> None:
        held, self._held = self._held, None
        if isinstance(held, OnnxEncoder):
            held.close()


def make_embedder(
    model: str = DEFAULT_MODEL,
    *,
    backend: BackendChoice = "auto",
    cache_dir: Path,
    threads: int = 1,
    precision: Precision = "int8",
    cache_size: int = 2048,
) -> BatchedEmbedder:
    """The embedder for a backend choice (see the module's docstring); ``precision``
    applies to ONNX Runtime (PyTorch runs in float)."""
    if backend == "torch":
        return SentenceTransformerEmbedder(model, torch_threads=threads, cache_size=cache_size)
    return OnnxEmbedder(
        model,
        cache_dir=cache_dir,
        threads=threads,
        precision=precision,
        fallback=backend == "auto",
        cache_size=cache_size,
    )
