"""The ONNX Runtime embedder with the real MiniLM: PyTorch's vectors, an export made
once and reused, batching, the text cache, and the fallback to PyTorch."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import load as load_onnx

from memory import (
    EmbedderError,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    make_embedder,
)
from memory.vector import onnx_embedder, onnx_export
from memory.vector.onnx_embedder import Precision
from memory.vector.onnx_encoder import Export, OnnxEncoder

pytestmark = pytest.mark.slow

TEXTS = [
    "",
    "ok",
    "How is your dog doing?",
    (
        "My sister told me about her trip to Kyoto last spring and the temples there were "
        "more beautiful than she expected."
    ),
    "Remember that Anna's locker code is 88412!",
    "¿Dónde está la estación? Café, naïve, 東京, emoji 😀.",
    "I have been learning the violin for three years " * 30,  # past the 256-token window
    *(f"I visited city number {i} with my friend and we ate {'very ' * i}well" for i in range(40)),
]


@pytest.fixture(scope="module")
async def onnx(model_cache: Path) -> AsyncIterator[OnnxEmbedder]:
    async with OnnxEmbedder(cache_dir=model_cache, fallback=False) as embedder:
        yield embedder


@pytest.fixture(scope="module")
async def torch_minilm() -> AsyncIterator[SentenceTransformerEmbedder]:
    async with SentenceTransformerEmbedder() as embedder:
        yield embedder


async def test_onnx_gives_the_vectors_pytorch_gives(
    onnx: OnnxEmbedder, torch_minilm: SentenceTransformerEmbedder
) -> None:
    got = await onnx.embed(TEXTS)
    expected = await torch_minilm.embed(TEXTS)
    assert onnx.backend == "onnx" and onnx.dim == 384 and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(got * expected, axis=1)
    assert float(cosines.min()) >= 0.9999
    # one at a time (no padding) agrees with the batch (padded to its longest text)
    alone = np.stack([await onnx.embed_one(t) for t in TEXTS[2:6]])
    assert float(np.sum(alone * got[2:6], axis=1).min()) >= 0.9999


async def test_the_export_is_made_once_and_reused(
    onnx: OnnxEmbedder, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert onnx.export is not None and onnx.export.model_path.is_file()
    assert onnx.export.min_cosine >= 0.9999

    def no_export(model: str, folder: Path) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "export_model", no_export)
    async with OnnxEmbedder(cache_dir=model_cache, fallback=False) as again:
        assert again.backend == "onnx" and again.export == onnx.export
        assert np.allclose(await again.embed_one("ok"), await onnx.embed_one("ok"), atol=1e-6)


async def test_concurrent_callers_share_encode_calls(onnx: OnnxEmbedder) -> None:
    texts = [f"Concurrent caller {i} asks about the weather in town {i * 7}" for i in range(50)]
    alone = await onnx.embed_one(texts[0])
    calls_before = onnx.stats.calls

    together = await asyncio.gather(*(onnx.embed_one(t) for t in texts[1:]))

    assert onnx.stats.calls - calls_before < len(texts) / 5
    assert onnx.stats.largest > 1
    assert np.allclose(await onnx.embed_one(texts[0]), alone, atol=1e-6)
    assert len({v.tobytes() for v in together}) == len(texts) - 1


async def test_a_text_seen_recently_comes_from_the_cache(onnx: OnnxEmbedder) -> None:
    text = "A line the server has just embedded for the user's message"
    first = await onnx.embed_one(text)
    calls, hits = onnx.stats.calls, onnx.stats.cache_hits
    again = await onnx.embed([text, text])
    assert onnx.stats.calls == calls and onnx.stats.cache_hits == hits + 2
    assert np.array_equal(again[0], first) and np.array_equal(again[1], first)
    again[0][:] = 0  # the caller's copy; the cache keeps its own
    assert np.array_equal(await onnx.embed_one(text), first)


async def test_without_onnx_runtime_auto_falls_back_to_pytorch_and_onnx_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, torch_minilm: SentenceTransformerEmbedder
) -> None:
    def unavailable(model: str, cache_dir: Path) -> Export:
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(onnx_embedder, "ensure_export", unavailable)
    async with make_embedder(backend="auto", cache_dir=tmp_path) as embedder:
        assert embedder.backend == "torch"
        vector = await embedder.embed_one("How is your dog doing?")
        assert np.allclose(
            vector, await torch_minilm.embed_one("How is your dog doing?"), atol=1e-5
        )
    with pytest.raises(EmbedderError, match="onnxruntime"):
        async with make_embedder(backend="onnx", cache_dir=tmp_path):
            pass
    assert isinstance(
        make_embedder(backend="torch", cache_dir=tmp_path), SentenceTransformerEmbedder
    )


async def test_int8_stays_close_to_the_float_model_and_is_made_once(
    onnx: OnnxEmbedder, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The int8 copy is made from the float export once, beside it, and its vectors stay
    near the float model's (recall at every k is measured by bench/recall_bench.py)."""
    async with OnnxEmbedder(cache_dir=model_cache, fallback=False, precision="int8") as q:
        assert q.precision == "int8" and q.export is not None
        assert q.runs_alone  # so a search does not wait for others to batch with
        assert (q.export.folder / onnx_export.INT8_FILE).is_file()
        ops = {
            n.op_type for n in load_onnx(str(q.export.folder / onnx_export.INT8_FILE)).graph.node
        }
        assert "MatMul" not in ops, "a matrix multiplication was left in float"
        if q.export.fused:
            assert "QAttention" in ops and "Attention" not in ops
        got = await q.embed(TEXTS)
        expected = await onnx.embed(TEXTS)
        cosines = np.sum(got * expected, axis=1)
        assert float(cosines.min()) >= onnx_export.INT8_MIN_COSINE
        assert float(cosines.mean()) >= 0.985
        assert not np.allclose(got, expected, atol=1e-4), "the int8 copy is not running"
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        # a text's vector does not depend on what it is embedded with
        alone = np.stack([await q.embed_one(t) for t in TEXTS[2:8]])
        assert np.allclose(alone, got[2:8], atol=1e-6)

    def no_quantizing(spec: Export, target: Path) -> float:
        raise AssertionError("quantised again")

    monkeypatch.setattr(onnx_export, "quantize_int8", no_quantizing)
    async with OnnxEmbedder(cache_dir=model_cache, fallback=False, precision="int8") as again:
        assert again.precision == "int8"
        assert np.allclose(await again.embed(TEXTS[:4]), got[:4], atol=1e-6)


async def test_making_the_int8_copy_removes_an_earlier_versions_copy(
    onnx: OnnxEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert onnx.export is not None
    made = onnx.export.folder / onnx_export.INT8_FILE
    if not made.is_file():  # this module's int8 test makes it; alone, make it here
        onnx_export.ensure_int8(onnx.export)
    folder = tmp_path / onnx.export.folder.name
    folder.mkdir()
    for name in ("model.onnx", "meta.json", "tokenizer.json"):
        (folder / name).symlink_to(onnx.export.folder / name)
    (folder / "model-int8.onnx").write_bytes(b"an earlier quantisation")
    monkeypatch.setattr(onnx_export, "export_folder", lambda model, cache_dir: folder)

    def copied(spec: Export, target: Path) -> float:
        shutil.copyfile(made, target)
        return 0.99

    monkeypatch.setattr(onnx_export, "quantize_int8", copied)
    async with OnnxEmbedder(cache_dir=tmp_path, fallback=False, precision="int8") as e:
        assert e.precision == "int8"
    assert (folder / onnx_export.INT8_FILE).is_file()
    assert not (folder / "model-int8.onnx").exists()


async def test_an_int8_copy_that_moves_vectors_too_far_leaves_the_float_model(
    onnx: OnnxEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert onnx.export is not None
    folder = tmp_path / onnx.export.folder.name
    folder.mkdir()
    for name in ("model.onnx", "meta.json", "tokenizer.json"):
        (folder / name).symlink_to(onnx.export.folder / name)
    monkeypatch.setattr(onnx_export, "export_folder", lambda model, cache_dir: folder)
    monkeypatch.setattr(onnx_export, "INT8_MIN_COSINE", 1.01)  # nothing is that close
    with caplog.at_level("WARNING", logger="memory.vector.onnx_embedder"):
        async with OnnxEmbedder(cache_dir=tmp_path, fallback=False, precision="int8") as e:
            assert e.precision == "fp32"
            assert np.allclose(await e.embed(TEXTS[:4]), await onnx.embed(TEXTS[:4]), atol=1e-6)
    assert "running in float" in caplog.text and "cosine" in caplog.text
    assert not (folder / onnx_export.INT8_FILE).exists()


@pytest.mark.parametrize("precision", ["int8", "fp32"])
async def test_threads_run_a_calls_texts_side_by_side_with_the_same_vectors(
    model_cache: Path, precision: Precision
) -> None:
    """With two threads the texts of one call are shared between them; every text gets
    the vector it gets on one thread (and, in int8, alone)."""
    texts = [f"Line {i} of an import about the garden and {'roses ' * (i % 9)}" for i in range(70)]
    async with OnnxEmbedder(cache_dir=model_cache, fallback=False, precision=precision) as one:
        expected = await one.embed(texts)
        alone = np.stack([await one.embed_one(t) for t in texts[:5]])
    async with OnnxEmbedder(
        cache_dir=model_cache, fallback=False, precision=precision, threads=2
    ) as two:
        assert two.precision == precision
        encoder = two._held
        assert isinstance(encoder, OnnxEncoder) and encoder._helpers is not None
        shared: list[Any] = []
        submit = encoder._helpers.submit

        def counted(fn: Any, *args: Any) -> Any:
            shared.append(fn)
            return submit(fn, *args)

        encoder._helpers.submit = counted  # type: ignore[method-assign,assignment]
        got = await two.embed(texts)
        assert shared, "the second thread was not used"
    assert np.allclose(got, expected, atol=1e-6)
    if precision == "int8":
        assert np.allclose(got[:5], alone, atol=1e-6)
