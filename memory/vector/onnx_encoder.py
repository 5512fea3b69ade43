"""The encoder that runs an exported embedding model (:mod:`memory.vector.onnx_export`)
through ONNX Runtime on every embedding call: tokenising with the model's own
``tokenizer.json`` (the ``tokenizers`` package), running the graph in length-sorted
chunks and normalising the vectors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memory.types import Matrix

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
    run in chunks of ``chunk`` padded to their longest text, normalise, unsort."""

    def __init__(
        self, spec: Export, *, path: Path | None = None, threads: int = 1, chunk: int = CHUNK
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # idle threads sleep instead of spinning: the cores are shared with the server
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(path or spec.model_path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(spec.folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(spec.max_length)
        self._spec = spec
        self._chunk = chunk

    def __call__(self, texts: list[str]) -> Matrix:
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self._spec.dim), dtype=np.float32)
        for start in range(0, len(order), self._chunk):
            rows = order[start : start + self._chunk]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.full((len(rows), width), self._spec.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[j, :n] = encodings[i].ids
                mask[j, :n] = 1
                types[j, :n] = encodings[i].type_ids
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            (vectors,) = self._session.run(None, {k: feeds[k] for k in self._spec.inputs})
            out[rows] = vectors
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.maximum(norms, 1e-12), dtype=np.float32)
