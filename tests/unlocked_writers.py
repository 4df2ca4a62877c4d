"""Reproduce what two processes writing one embedded Chroma folder without a lock do (run as a script).

``python unlocked_writers.py FOLDER COLLECTION N``: this process opens the collection and adds N records, then runs a
second process that adds N records of its own, then adds N more from its now stale in-memory view. Chroma then counts
3N records but one writer's vectors are missing from the persisted vector index, exactly as with two concurrent
``reasonembed-rag index`` runs before the folder lock: the second writer's records (half with text, "second-" ids, and
half bare vectors, "bare-" ids) are counted but missing from the vector index. Vectors are random.
"""

from __future__ import annotations

import subprocess
import sys

import chromadb
import numpy as np


def _vectors(rng: np.random.Generator, n: int, dimension: int) -> np.ndarray:
    vectors = rng.standard_normal((n, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main(folder: str, name: str, n: int, role: str) -> None:
    collection = chromadb.PersistentClient(path=folder).get_collection(name, embedding_function=None)
    dimension = int((collection.metadata or {})["reasonembed_dimension"])
    rng = np.random.default_rng(0 if role == "first" else 1)
    if role == "second":
        vectors = _vectors(rng, n, dimension)
        half = n // 2
        # One call: records with text and bare vectors, which Chroma accepts together with None documents.
        collection.add(
            ids=[f"second-{i}" if i < half else f"bare-{i}" for i in range(n)],
            embeddings=vectors,
            documents=[f"second writer document {i}" if i < half else None for i in range(n)],  # type: ignore[misc]
        )
        return
    collection.add(
        ids=[f"first-{i}" for i in range(n)],
        embeddings=_vectors(rng, n, dimension),
        documents=[f"first writer document {i}" for i in range(n)],
    )
    collection.query(query_embeddings=_vectors(rng, 1, dimension), n_results=1)  # loads the index into memory
    subprocess.run([sys.executable, __file__, folder, name, str(n), "second"], check=True)
    collection.add(
        ids=[f"first-late-{i}" for i in range(n)],
        embeddings=_vectors(rng, n, dimension),
        documents=[f"first writer late document {i}" for i in range(n)],
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "first")
