"""Embedding cost: one sentence at a time and batched, PyTorch against ONNX Runtime, in
one sitting, with the vectors compared.

    HF_HUB_OFFLINE=1 python bench/embed_bench.py [--rounds 3] [--threads 1,2]
        [--backends torch,onnx,onnx-int8]

For each backend and thread count: the p50 / p95 wall time of embedding one 20-word
sentence (``--single`` calls after a warm-up), and sentences/s when ``--batch`` of them
are embedded per call (``--batched`` sentences in all). Backends alternate within each
round so the machine's other load falls on both alike. The ONNX export is cached in
``--cache-dir`` (a temporary folder by default, so the first open includes the export).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory import BatchedEmbedder, OnnxEmbedder, SentenceTransformerEmbedder
from memory.vector.embedder import set_torch_threads

SENTENCE = (
    "My sister told me about her trip to Kyoto last spring and the temples there were "
    "more beautiful than she had expected"
)
WORDS = SENTENCE.split()


def sentences(n: int) -> list[str]:
    """Distinct 20-word sentences (a rotation of the words and a number)."""
    out = []
    for i in range(n):
        k = i % len(WORDS)
        out.append(" ".join([*WORDS[k:], *WORDS[:k]][:19] + [str(i)]))
    return out


async def single(embedder: BatchedEmbedder, texts: list[str]) -> tuple[list[float], float]:
    """Wall seconds of each call, and the process's CPU seconds per sentence (steadier
    than wall time on a machine shared with other work)."""
    for text in texts[:20]:
        await embedder.embed([f"warm {text}"])
    samples = []
    cpu = time.process_time()
    for text in texts:
        began = time.perf_counter()
        await embedder.embed([text])  # each text once: the cache never answers
        samples.append(time.perf_counter() - began)
    return samples, (time.process_time() - cpu) / len(texts)


async def batched(embedder: BatchedEmbedder, texts: list[str], batch: int) -> tuple[float, float]:
    """Sentences per wall second, and per CPU second of the process."""
    began, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), batch):
        await embedder.embed(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - began), len(texts) / (time.process_time() - cpu)


async def run(args: argparse.Namespace) -> None:
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix="embed-bench-"))
    threads = [int(t) for t in args.threads.split(",")]
    backends = args.backends.split(",")
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    opened: dict[tuple[str, int], BatchedEmbedder] = {}
    open_s: dict[tuple[str, int], float] = {}
    for backend in backends:
        for n in threads:
            began = time.perf_counter()
            embedder: BatchedEmbedder = (
                OnnxEmbedder(
                    cache_dir=cache_dir,
                    threads=n,
                    fallback=False,
                    max_batch=args.batch,
                    precision="int8" if backend == "onnx-int8" else "fp32",
                )
                if backend.startswith("onnx")
                else SentenceTransformerEmbedder(torch_threads=n, max_batch=args.batch)
            )
            await embedder.__aenter__()
            open_s[backend, n] = time.perf_counter() - began
            opened[backend, n] = embedder
            results[backend, n] = {"single": [], "batched": [], "cpu": [], "batched_cpu": []}
    probe = sentences(64)
    reference = await opened["torch", threads[0]].embed(probe) if "torch" in backends else None
    cosine = {}
    try:
        for r in range(args.rounds):
            for key, embedder in opened.items():
                if key[0] == "torch":
                    set_torch_threads(key[1])  # PyTorch's threads are the process's
                texts = [f"round {r} {t}" for t in sentences(args.single)]
                walls, cpu = await single(embedder, texts)
                results[key]["single"] += walls
                results[key]["cpu"].append(cpu)
                many = [f"batch {r} {t}" for t in sentences(args.batched)]
                rate, cpu_rate = await batched(embedder, many, args.batch)
                results[key]["batched"].append(rate)
                results[key]["batched_cpu"].append(cpu_rate)
        if reference is not None:
            set_torch_threads(threads[0])
            for key, embedder in opened.items():
                got = await embedder.embed([f"{t} " for t in probe])  # not from the cache
                again = await opened["torch", threads[0]].embed([f"{t} " for t in probe])
                cosine[key] = float(np.min(np.sum(got * again, axis=1)))
    finally:
        for embedder in opened.values():
            await embedder.__aexit__(None, None, None)
    load = os.getloadavg()
    print(
        f"\n## Embedding all-MiniLM-L6-v2 ({os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})\n"
    )
    print(f"Command: `python bench/embed_bench.py {' '.join(sys.argv[1:])}`".rstrip() + "\n")
    print(
        f"One 20-word sentence per call ({args.single} x {args.rounds} calls), and "
        f"{args.batched} sentences in calls of {args.batch} ({args.rounds} rounds, median).\n"
    )
    print(
        "| backend | threads | open s | one sentence p50 / p95 ms | CPU ms per sentence "
        "| batched sentences/s | batched sentences per CPU s | min cosine to torch |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for key, res in results.items():
        s = sorted(res["single"])
        p50, p95 = s[len(s) // 2] * 1000, s[int(len(s) * 0.95)] * 1000
        rate = statistics.median(res["batched"])
        cpu_ms = statistics.median(res["cpu"]) * 1000
        cpu_rate = statistics.median(res["batched_cpu"])
        cos = f"{cosine[key]:.6f}" if key in cosine else "–"
        print(
            f"| {key[0]} | {key[1]} | {open_s[key]:.1f} | {p50:.2f} / {p95:.2f} "
            f"| {cpu_ms:.2f} | {rate:.0f} | {cpu_rate:.0f} | {cos} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--backends",
        default="torch,onnx,onnx-int8",
        help="comma-separated: torch, onnx (float), onnx-int8",
    )
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--batched", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--cache-dir", default=None)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
