"""The encoder that runs an exported embedding model (:mod:`memory.vector.onnx_export`)
through ONNX Runtime on every embedding call: tokenising with the model's own
``tokenizer.json`` (the ``tokenizers`` package), running the graph in length-sorted
chunks and normalising the vectors.

With ``threads`` above 1 the chunks of one call run side by side, each on one thread
(one session, run from several threads at once). That costs less CPU than splitting
each run's operators over the threads: a small model's operators are too small to share
well (``docs/performance.md``). A call of one chunk runs on one thread."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memory.types import Matrix

if TYPE_CHECKING:
    from tokenizers import Encoding

CHUNK = 32  # texts per ONNX run: sorted by length, so little padding


@dataclass(frozen=True, slots=True)
class Export:
    """An exported model on disk and what running it needs."""

    folder: Path
    inputs: tuple[str, ...]
    max_length: int
    pad_id: int
    pad_token: str
    dim: int
    fused: bool
    min_cosine: float

    @property
    def model_path(self) -> Path:
        return self.folder / "model.onnx"

    @classmethod
    def read(cls, folder: Path) -> Export:
        meta = json.loads((folder / "meta.json").read_text())
        return cls(
            folder=folder,
            inputs=tuple(meta["inputs"]),
            max_length=int(meta["max_length"]),
            pad_id=int(meta["pad_id"]),
            pad_token=str(meta["pad_token"]),
            dim=int(meta["dim"]),
            fused=bool(meta["fused"]),
            min_cosine=float(meta["min_cosine"]),
        )


class OnnxEncoder:
    """The blocking encode function over an :class:`Export`: tokenise, sort by length,
    run in chunks of ``chunk`` padded to their longest text (``threads`` chunks at a
    time), normalise, unsort."""

    def __init__(
        self, spec: Export, *, path: Path | None = None, threads: int = 1, chunk: int = CHUNK
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1  # a run on its caller's thread; see the module
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(path or spec.model_path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(spec.folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(spec.max_length)
        self._spec = spec
        self._chunk = chunk
        self._threads = threads
        self._helpers = (
            ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="onnx-encode")
            if threads > 1
            else None
        )

    def __call__(self, texts: list[str]) -> Matrix:
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self._spec.dim), dtype=np.float32)
        chunks = [order[s : s + self._chunk] for s in range(0, len(order), self._chunk)]

        def run(share: list[list[int]]) -> None:
            for rows in share:
                out[rows] = self._run([encodings[i] for i in rows])

        if self._helpers is None or len(chunks) < 2:
            run(chunks)
        else:
            # every n-th chunk to each thread: the chunks are sorted by length, so the
            # shares are about equal; the calling thread runs the first share itself
            n = min(self._threads, len(chunks))
            helping = [self._helpers.submit(run, chunks[k::n]) for k in range(1, n)]
            run(chunks[0::n])
            for done in helping:
                done.result()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.maximum(norms, 1e-12), dtype=np.float32)

    def _run(self, encodings: list[Encoding]) -> Matrix:
        """One run of the graph over texts padded to the longest of them."""
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._spec.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for j, e in enumerate(encodings):
            n = len(e.ids)
            ids[j, :n] = e.ids
            mask[j, :n] = 1
            types[j, :n] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (vectors,) = self._session.run(None, {k: feeds[k] for k in self._spec.inputs})
        return np.asarray(vectors, dtype=np.float32)

    def close(self) -> None:
        """Stop the helper threads (the session is freed with the encoder)."""
        if self._helpers is not None:
            self._helpers.shutdown(wait=True)
