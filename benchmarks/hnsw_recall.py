"""Recall of Chroma's HNSW search against exact cosine search, for the store's settings or others.

Random unit vectors are the hardest case for HNSW (real text embeddings have a far lower intrinsic dimension), so a
setting that is exact here is exact on real corpora of the same size. The figures in docs/measurements.md, which
justify ``reasonembed_rag.store.HNSW_SETTINGS``, come from this script.

Usage:
    python benchmarks/hnsw_recall.py --docs 10000 --dim 384                    # the store's settings
    python benchmarks/hnsw_recall.py --docs 10000 --dim 384 --chroma-defaults  # Chroma's defaults, for comparison
    python benchmarks/hnsw_recall.py --docs 50000 --ef-search 2000

Changing ``ef_search`` of an existing collection with ``collection.modify`` only takes effect in a new process
(Chroma keeps the loaded index), so each setting is measured on its own build here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import chromadb
import numpy as np

from reasonembed_rag.retrieval import exact_top_k
from reasonembed_rag.store import HNSW_SETTINGS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10000, help="corpus size (default: 10000)")
    parser.add_argument("--dim", type=int, default=384, help="vector dimension (default: 384)")
    parser.add_argument("--queries", type=int, default=100, help="queries (default: 100)")
    parser.add_argument("--k", default="10,100,1000", help="comma-separated depths (default: 10,100,1000)")
    parser.add_argument("--ef-construction", type=int, default=HNSW_SETTINGS["ef_construction"])
    parser.add_argument("--ef-search", type=int, default=HNSW_SETTINGS["ef_search"])
    parser.add_argument("--max-neighbors", type=int, default=HNSW_SETTINGS["max_neighbors"])
    parser.add_argument("--chroma-defaults", action="store_true", help="use Chroma's default HNSW settings instead")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    documents = rng.standard_normal((args.docs, args.dim)).astype(np.float32)
    documents /= np.linalg.norm(documents, axis=1, keepdims=True)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    hnsw: dict = {"space": "cosine"}
    if not args.chroma_defaults:
        hnsw |= {
            "ef_construction": args.ef_construction,
            "ef_search": args.ef_search,
            "max_neighbors": args.max_neighbors,
        }
    client = chromadb.PersistentClient(path=tempfile.mkdtemp(prefix="hnsw-recall-"))
    collection = client.create_collection("recall", configuration={"hnsw": hnsw}, embedding_function=None)
    ids = [str(i) for i in range(args.docs)]
    batch = client.get_max_batch_size()
    started = time.perf_counter()
    for start in range(0, args.docs, batch):
        collection.add(ids=ids[start : start + batch], embeddings=documents[start : start + batch])
    build = time.perf_counter() - started
    print(f"{args.docs} x {args.dim}-d, {collection.configuration_json['hnsw']}: built in {build:.1f} s")

    scores = queries @ documents.T
    exact = {k: exact_top_k(scores, k)[0] for k in (int(value) for value in args.k.split(","))}
    measure(collection, queries, exact)


def measure(collection: Any, queries: np.ndarray, exact: dict[int, np.ndarray]) -> None:
    for k, truth in exact.items():
        started = time.perf_counter()
        found = collection.query(query_embeddings=queries, n_results=k, include=["distances"])["ids"]
        per_query = (time.perf_counter() - started) / len(queries)
        recall = np.mean([len({int(i) for i in row} & set(best)) / k for row, best in zip(found, truth, strict=True)])
        print(f"  recall@{k:<5} {recall:.4f}   {per_query * 1000:6.1f} ms/query")


if __name__ == "__main__":
    main()
