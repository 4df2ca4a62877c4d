"""Store and framework overhead against raw Chroma, in one process, on the same precomputed vectors.

Indexing: documents/s through :meth:`ChromaStore.add_documents` (chunking, the existing-id check, progress
bookkeeping) against raw ``collection.add`` in maximum-size batches, both on fresh collections with the same HNSW
settings and the same vectors (the store's encoder only looks them up, so embedding costs nothing on either side).
Target: overhead at most 10%. Re-indexing the same corpus through the store (all ids skipped) is timed too.

Queries: median latency of one query through ``store.search``, the LlamaIndex retriever and the LangChain retriever,
against raw ``collection.query`` returning the same fields (documents, metadatas, distances); the paths take turns
on each query. Query vectors are looked up too, so the ratios measure the store and framework layers alone;
``--model minilm-l6`` embeds queries with a real model on every path instead (end-to-end latency). Target: at most
1.5x.

Usage:
    python benchmarks/index_speed.py --docs 10000 --dim 384 --queries 100 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reasonembed_rag.store import HNSW_SETTINGS, ChromaStore, get_client


class LookupEncoder:
    """The encoder contract over precomputed vectors, so that only the store and Chroma are timed."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray, queries: Sequence[str], query_vectors: np.ndarray):
        self.name = "benchmark-lookup"
        self.dimension = int(vectors.shape[1])
        self.query_format = "{query}"
        self._documents = dict(zip(texts, vectors, strict=True))
        self._queries = dict(zip(queries, query_vectors, strict=True))

    def resolve_instruction(self, task: str | None = None, instruction: str | None = None) -> str | None:
        return instruction

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool | None = None) -> np.ndarray:
        return np.stack([self._documents[text] for text in texts])

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        return np.stack([self._queries[text] for text in texts])


def unit_vectors(rng: np.random.Generator, count: int, dimension: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def interleaved_latencies(paths: dict[str, Callable[[str], Any]], queries: Sequence[str]) -> dict[str, float]:
    """Median seconds per query of each path; paths take turns on every query, so load from other processes hits
    them alike."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    names = list(paths)
    for name in names:
        paths[name](queries[0])
    for turn, query in enumerate(queries):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            started = time.perf_counter()
            paths[name](query)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10000, help="documents to index (default: 10000)")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension (default: 384, MiniLM's)")
    parser.add_argument("--queries", type=int, default=100, help="queries timed per path (default: 100)")
    parser.add_argument("--repeats", type=int, default=3, help="indexing runs per path, alternating (default: 3)")
    parser.add_argument("--k", default="10,1000", help="comma-separated result depths (default: 10,1000)")
    parser.add_argument("--model", default=None, help="embed queries with this model on every path (end to end)")
    parser.add_argument("--path", default=None, help="Chroma folder (default: a temporary one)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    texts = [f"document {i}: " + " ".join(f"w{j}" for j in rng.integers(0, 5000, 40)) for i in range(args.docs)]
    ids = [f"doc-{i}" for i in range(args.docs)]
    vectors = unit_vectors(rng, args.docs, args.dim)
    queries = [f"query {i}" for i in range(args.queries)]
    encoder: Any = LookupEncoder(texts, vectors, queries, unit_vectors(rng, args.queries, args.dim))
    if args.model:
        from reasonembed_rag import ReasonEmbedEncoder

        encoder = ReasonEmbedEncoder.from_pretrained(args.model)
        if encoder.dimension != args.dim:
            raise SystemExit(
                f"--model {args.model} makes {encoder.dimension}-d vectors: pass --dim {encoder.dimension}."
            )
        encoder.encode_documents = LookupEncoder(texts, vectors, queries, vectors[: len(queries)]).encode_documents

    path = args.path or tempfile.mkdtemp(prefix="reasonembed-bench-")
    client = get_client(path)
    batch = client.get_max_batch_size()
    print(f"{args.docs} documents x {args.dim}-d, HNSW {HNSW_SETTINGS}, Chroma batch limit {batch}, folder {path}")

    raw_times, store_times, store = [], [], None
    for repeat in range(args.repeats):

        def run_raw(repeat: int = repeat) -> None:
            collection = client.create_collection(
                f"raw-{repeat}", configuration={"hnsw": dict(HNSW_SETTINGS)}, embedding_function=None
            )
            started = time.perf_counter()
            for start in range(0, args.docs, batch):
                stop = start + batch
                collection.add(ids=ids[start:stop], embeddings=vectors[start:stop], documents=texts[start:stop])
            raw_times.append(time.perf_counter() - started)

        def run_store(repeat: int = repeat) -> ChromaStore:
            created = ChromaStore(f"store-{repeat}", encoder, chroma=client)
            started = time.perf_counter()
            created.add_documents(zip(ids, texts, strict=True), show_progress=False)
            store_times.append(time.perf_counter() - started)
            return created

        if repeat % 2 == 0:
            run_raw()
            store = run_store()
        else:
            store = run_store()
            run_raw()
    assert store is not None
    started = time.perf_counter()
    again = store.add_documents(zip(ids, texts, strict=True), show_progress=False)
    reindex = time.perf_counter() - started
    assert again.added == 0

    raw_rate = args.docs / statistics.median(raw_times)
    store_rate = args.docs / statistics.median(store_times)
    print("\nIndexing (median of runs; Chroma's HNSW build dominates, so load from other processes shows here)")
    print(f"  raw collection.add    {raw_rate:10.0f} docs/s   runs {[f'{t:.1f}s' for t in raw_times]}")
    print(f"  ChromaStore           {store_rate:10.0f} docs/s   runs {[f'{t:.1f}s' for t in store_times]}")
    print(f"  overhead              {raw_rate / store_rate - 1:+10.1%}        (target <= +10%)")
    print(f"  overhead, best runs   {min(store_times) / min(raw_times) - 1:+10.1%}")
    print(f"  re-index, all skipped {args.docs / reindex:10.0f} docs/s   ({reindex:.2f}s, nothing embedded)")
    print(f"  store's own work      {reindex / min(raw_times):+10.1%}        (the id check alone, vs the raw add)")

    collection = client.get_collection(store.name, embedding_function=None)  # the raw baseline, same data
    include: Any = ["documents", "metadatas", "distances"]
    for k in (int(value) for value in args.k.split(",")):
        llama_index = store.llama_index_retriever(k=k)
        langchain = store.langchain_retriever(k=k)
        paths: dict[str, Callable[[str], Any]] = {
            "raw collection.query": lambda q, k=k: collection.query(
                query_embeddings=encoder.encode_queries([q]), n_results=k, include=include
            ),
            "ChromaStore.search": lambda q, k=k: store.search(q, k=k, include_content=True),
            "LlamaIndex retriever": llama_index.retrieve,
            "LangChain retriever": langchain.invoke,
        }
        latencies = interleaved_latencies(paths, queries)
        baseline = latencies["raw collection.query"]
        print(f"\nQuery latency, k={k} (median of {len(queries)} queries)")
        for name, latency in latencies.items():
            print(f"  {name:22} {latency * 1000:8.2f} ms   {latency / baseline:5.2f}x   (target <= 1.5x)")


if __name__ == "__main__":
    main()
