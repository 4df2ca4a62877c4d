"""Run retrieval tasks through a chosen path and score them the official way.

Paths (``via``):

* ``direct``: the encoder and exact inner-product search over the document vectors (the reference);
* ``llamaindex``: the LlamaIndex retriever over the Chroma collection, queries embedded by our LlamaIndex embedding;
* ``langchain``: the LangChain retriever over the same collection, queries embedded by our LangChain embeddings.

Documents are embedded once into a Chroma collection per (task corpus, model) through :class:`ChromaStore`; every path
and every later run reuses those vectors, so a second run embeds no document. ``model="bm25"`` is the lexical
baseline (bm25s), which needs no collection.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data import RetrievalTask
from .metrics import KEEP_TOP, evaluate_run

VIAS = ("direct", "llamaindex", "langchain")
BM25 = "bm25"
_EXACT_CHUNK = 50_000


@dataclass
class TaskResult:
    task: str
    model: str
    via: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    queries: int
    seconds: float
    documents_embedded: int = 0
    run: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            **self.metrics,
            "queries": self.queries,
            "seconds": round(self.seconds, 3),
            "documents_embedded": self.documents_embedded,
        }


def collection_name(task: RetrievalTask, model: Any) -> str:
    """A Chroma collection name tied to this exact corpus and model (a changed corpus gets a new collection).

    ``model`` is an encoder (its name plus a fingerprint of its local weight files, so a model trained again under
    the same name or folder gets a new collection instead of the old vectors) or just a model name.
    """
    from ..models import weights_fingerprint

    model_name = model if isinstance(model, str) else model.name
    identity = model_name if isinstance(model, str) else f"{model_name}@{weights_fingerprint(model.source)}"
    digest = hashlib.sha256()
    for doc_id, content in sorted(task.documents.items()):
        digest.update(doc_id.encode())
        digest.update(b"\0")
        digest.update(content.encode())
        digest.update(b"\1")
    model = re.sub(r"[^a-zA-Z0-9._-]+", "-", model_name.rsplit("/", 2)[-1] if "/" in model_name else model_name)
    model_key = hashlib.sha256(identity.encode()).hexdigest()[:6]
    task_part = re.sub(r"[^a-zA-Z0-9._-]+", "-", task.name)
    return f"{task_part[:60]}-{digest.hexdigest()[:10]}-{model.strip('-._')[:60]}-{model_key}"


def depth(task: RetrievalTask, corpus_size: int, keep: int = KEEP_TOP) -> int:
    """Hits to ask for so that ``keep`` remain after the most-excluded query drops its excluded ids."""
    most_excluded = max((len(q.excluded_ids) for q in task.queries), default=0)
    return max(1, min(corpus_size, keep + most_excluded))


def _score(
    task: RetrievalTask,
    model: str,
    via: str,
    run: dict[str, dict[str, float]],
    keep: int,
    started: float,
    embedded: int,
) -> TaskResult:
    excluded = {q.id: q.excluded_ids for q in task.queries}
    mean, per_query = evaluate_run(run, task.qrels, excluded, keep=keep)
    return TaskResult(
        task.name, model, via, mean, per_query, len(task.queries), time.perf_counter() - started, embedded, run
    )


def evaluate_bm25(task: RetrievalTask, *, keep: int = KEEP_TOP) -> TaskResult:
    """BM25 (bm25s, Lucene variant, English stopwords) over the task's corpus."""
    import bm25s

    started = time.perf_counter()
    ids = list(task.documents)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([task.documents[i] for i in ids], stopwords="en", show_progress=False), show_progress=False
    )
    k = depth(task, len(ids), keep)
    tokens = bm25s.tokenize([q.text for q in task.queries], stopwords="en", show_progress=False)
    positions, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    run = {
        q.id: {ids[int(p)]: float(s) for p, s in zip(positions[row], scores[row], strict=True) if s > 0}
        for row, q in enumerate(task.queries)
    }
    return _score(task, BM25, "direct", run, keep, started, 0)


def _exact_search(store: Any, query_vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    """Exact top-k by inner product over every vector in the collection, read in chunks."""
    best_scores = np.full((len(query_vectors), 0), -np.inf, dtype=np.float32)
    best_ids = np.empty((len(query_vectors), 0), dtype=object)
    total = store.count()
    for offset in range(0, total, _EXACT_CHUNK):
        chunk = store.collection.get(include=["embeddings"], limit=_EXACT_CHUNK, offset=offset)
        vectors = np.asarray(chunk["embeddings"], dtype=np.float32)
        scores = query_vectors @ vectors.T
        ids = np.asarray(chunk["ids"], dtype=object)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        if best_scores.shape[1] > k:
            top = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
            best_scores = np.take_along_axis(best_scores, top, axis=1)
            best_ids = np.take_along_axis(best_ids, top, axis=1)
    return [
        sorted(zip(best_ids[row].tolist(), best_scores[row].tolist(), strict=True), key=lambda x: -x[1])
        for row in range(len(query_vectors))
    ]


def _framework_search(store: Any, via: str, task: RetrievalTask, k: int) -> Callable[[str], list[tuple[str, float]]]:
    if via == "llamaindex":
        retriever = store.llama_index_retriever(k=k, instruction=task.instruction)

        def search(text: str) -> list[tuple[str, float]]:
            return [(hit.node.node_id, float(hit.score or 0.0)) for hit in retriever.retrieve(text)]

        return search
    retriever = store.langchain_retriever(k=k, instruction=task.instruction)

    def search_langchain(text: str) -> list[tuple[str, float]]:
        documents = retriever.invoke(text)
        # The retriever returns documents best first without scores; the rank is the score.
        return [(str(doc.id), float(len(documents) - rank)) for rank, doc in enumerate(documents)]

    return search_langchain


def evaluate_dense(
    task: RetrievalTask,
    encoder: Any,
    *,
    via: str = "direct",
    chroma: Any = None,
    keep: int = KEEP_TOP,
    show_progress: bool | None = None,
    collection: str | None = None,
) -> TaskResult:
    """Index the task's corpus (once) and run its queries through ``via``.

    ``collection`` overrides the collection searched (default: the one cached for this corpus and model); the
    robustness suite points it at a poisoned copy.
    """
    from ..store import ChromaStore

    if via not in VIAS:
        raise ValueError(f"Unknown via {via!r}. Accepted values: {', '.join(VIAS)}.")
    started = time.perf_counter()
    name = collection or collection_name(task, encoder)
    store = ChromaStore(name, encoder, chroma=chroma, instruction=task.instruction)
    report = store.add_documents(task.documents.items(), show_progress=show_progress, total=len(task.documents))
    k = depth(task, store.count(), keep)
    texts = [q.text for q in task.queries]
    if via == "direct":
        vectors = encoder.encode_queries(texts, instruction=task.instruction, show_progress=show_progress)
        ranked = _exact_search(store, vectors, k)
    else:
        search = _framework_search(store, via, task, k)
        from tqdm.auto import tqdm

        ranked = [search(text) for text in tqdm(texts, desc=f"{task.name} via {via}", disable=not show_progress)]
    run = {q.id: dict(hits) for q, hits in zip(task.queries, ranked, strict=True)}
    return _score(task, encoder.name, via, run, keep, started, report.added)


def evaluate(
    tasks: Sequence[RetrievalTask],
    model: str | Any,
    *,
    via: str = "direct",
    chroma: Any = None,
    keep: int = KEEP_TOP,
    show_progress: bool | None = None,
) -> list[TaskResult]:
    """Evaluate several tasks with one model (an encoder, an alias to load, or ``"bm25"``)."""
    if isinstance(model, str) and model.lower() == BM25:
        return [evaluate_bm25(task, keep=keep) for task in tasks]
    if isinstance(model, str):
        from ..encoder import ReasonEmbedEncoder

        model = ReasonEmbedEncoder.from_pretrained(model)
    return [evaluate_dense(t, model, via=via, chroma=chroma, keep=keep, show_progress=show_progress) for t in tasks]


def results_json(results: Sequence[TaskResult], *, model: str, via: str) -> dict[str, Any]:
    """The CONTRACT results.json: per task and mean, fractions in 0-1."""
    tasks = {r.task: r.summary() for r in results}
    names = ("ndcg@10", "recall@10", "recall@100")
    mean = {n: (sum(r.metrics[n] for r in results) / len(results) if results else 0.0) for n in names}
    return {"model": model, "via": via, "tasks": tasks, "mean": mean}
