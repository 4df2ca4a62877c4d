"""Run retrieval tasks through a chosen path and score them the official way.

Paths (``via``):

* ``direct``: the encoder and exact inner-product search over the document vectors (the reference);
* ``llamaindex``: the LlamaIndex retriever over the Chroma collection, queries embedded by our LlamaIndex embedding;
* ``langchain``: the LangChain retriever over the same collection, queries embedded by our LangChain embeddings.

Documents are embedded once into a Chroma collection per (task corpus, model) through :class:`ChromaStore`; every path
and every later run reuses those vectors, so a second run embeds no document. The lexical baseline
(:class:`~reasonembed_rag.retrieval.BM25`, ``model="bm25"``) searches the corpus in memory and needs no collection.
With ``expand`` (a :class:`~reasonembed_rag.expansion.QueryExpander`) every path searches each query followed by an
LLM's reasoning sketch: the framework paths through their expanding retrievers, the others with the expanded texts.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..expansion import QueryExpander
from ..fusion import Hybrid, collection_bm25, fuse
from ..retrieval import BM25, exact_top_k, load_retriever
from .data import RetrievalTask
from .metrics import KEEP_TOP, evaluate_run, metric_names

VIAS = ("direct", "llamaindex", "langchain")
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
    # Quantised weights and a document length of its own change the document vectors: those get their own cache.
    for option in ("quantize", "document_max_length"):
        if getattr(model, option, None) is not None:
            identity += f"|{option}={getattr(model, option)}"
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
    k_values: Sequence[int] = (),
) -> TaskResult:
    excluded = {q.id: q.excluded_ids for q in task.queries}
    mean, per_query = evaluate_run(run, task.qrels, excluded, keep=keep, k_values=k_values)
    return TaskResult(
        task.name, model, via, mean, per_query, len(task.queries), time.perf_counter() - started, embedded, run
    )


def score_run(
    task: RetrievalTask,
    run: dict[str, dict[str, float]],
    *,
    model: str,
    via: str,
    keep: int = KEEP_TOP,
    k_values: Sequence[int] = (),
) -> TaskResult:
    """Score a run made elsewhere (e.g. read from a TREC run file) exactly as an embedded run is scored: the task's
    excluded ids dropped, ``keep`` hits kept, the same metrics."""
    return _score(task, model, via, run, keep, time.perf_counter(), 0, k_values)


def _texts(task: RetrievalTask, expand: QueryExpander | None) -> list[str]:
    """The task's query texts, each followed by its reasoning sketch when ``expand`` is given."""
    texts = [q.text for q in task.queries]
    return texts if expand is None else expand.expand(texts, instruction=task.instruction)


def _label(expand: QueryExpander | None) -> str:
    """How results name an expanded pipeline (``+expand``), so its runs are told apart from plain ones."""
    return "" if expand is None else "+expand"


def evaluate_bm25(
    task: RetrievalTask, *, keep: int = KEEP_TOP, k_values: Sequence[int] = (), expand: QueryExpander | None = None
) -> TaskResult:
    """BM25 (:class:`~reasonembed_rag.retrieval.BM25Index`) over the task's corpus; always the ``direct`` path.
    With ``expand``, each query is searched followed by its reasoning sketch."""
    started = time.perf_counter()
    index = BM25().index(task.documents)
    ranked = index.search(_texts(task, expand), depth(task, len(task.documents), keep))
    run = {q.id: dict(hits) for q, hits in zip(task.queries, ranked, strict=True)}
    return _score(task, BM25.name + _label(expand), "direct", run, keep, started, 0, k_values)


def _exact_search(store: Any, query_vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
    """Exact top-k by inner product over every vector in the collection, read in chunks."""
    best_scores = np.full((len(query_vectors), 0), -np.inf, dtype=np.float32)
    best_ids = np.empty((len(query_vectors), 0), dtype=object)
    for chunk in store.records(batch_size=_EXACT_CHUNK, documents=False, metadatas=False):
        scores = query_vectors @ chunk.embeddings.T
        ids = np.asarray(chunk.ids, dtype=object)
        # The best so far come first, so ties keep the collection's order, as one sort over everything would.
        positions, best_scores = exact_top_k(np.concatenate([best_scores, scores], axis=1), k)
        best_ids = np.take_along_axis(
            np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1), positions, axis=1
        )
    return [
        list(zip(best_ids[row].tolist(), best_scores[row].tolist(), strict=True)) for row in range(len(query_vectors))
    ]


def _framework_search(
    store: Any,
    via: str,
    task: RetrievalTask,
    k: int,
    hybrid: Hybrid | None = None,
    expand: QueryExpander | None = None,
) -> Callable[[str], list[tuple[str, float]]]:
    if via == "llamaindex":
        retriever = store.llama_index_retriever(k=k, instruction=task.instruction, hybrid=hybrid, expand=expand)

        def search(text: str) -> list[tuple[str, float]]:
            return [(hit.node.node_id, float(hit.score or 0.0)) for hit in retriever.retrieve(text)]

        return search
    retriever = store.langchain_retriever(k=k, instruction=task.instruction, hybrid=hybrid, expand=expand)

    def search_langchain(text: str) -> list[tuple[str, float]]:
        documents = retriever.invoke(text)
        if hybrid is not None:  # the hybrid retriever keeps the fused score; ties then score as on the direct path
            return [(str(doc.id), float(doc.metadata["fused_score"])) for doc in documents]
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
    k_values: Sequence[int] = (),
    hybrid: Hybrid | str | None = None,
    expand: QueryExpander | None = None,
) -> TaskResult:
    """Index the task's corpus (once) and run its queries through ``via``.

    ``collection`` overrides the collection searched (default: the one cached for this corpus and model); the
    robustness suite points it at a poisoned copy. ``k_values`` adds metrics at those cutoffs
    (:func:`~reasonembed_rag.evaluation.metrics.evaluate_run`). ``hybrid`` (``"bm25"`` or a
    :class:`~reasonembed_rag.fusion.Hybrid`) fuses the dense hits with BM25 hits (:func:`~reasonembed_rag.fusion.fuse`,
    the same on every path) over the collection's persisted BM25 index; the run then holds every fused document (at
    most twice the fusion depth). ``expand`` searches each query followed by its reasoning sketch, on the
    framework paths through the retrievers' own ``expand=`` option (its sketches are all asked for first, in one
    concurrent batch, so the retrievers read them from the cache).
    """
    from ..store import ChromaStore

    if via not in VIAS:
        raise ValueError(f"Unknown via {via!r}. Accepted values: {', '.join(VIAS)}.")
    started = time.perf_counter()
    name = collection or collection_name(task, encoder)
    store = ChromaStore(name, encoder, chroma=chroma, instruction=task.instruction)
    report = store.add_documents(task.documents.items(), show_progress=show_progress, total=len(task.documents))
    settings = Hybrid.coerce(hybrid)
    k = depth(task, store.count(), keep) if settings is None else 2 * settings.depth
    texts = _texts(task, expand)
    if via == "direct":
        vectors = encoder.encode_queries(texts, instruction=task.instruction, show_progress=show_progress)
        if settings is None:
            ranked = _exact_search(store, vectors, k)
        else:
            lexical = collection_bm25(store).search(texts, settings.depth)
            dense = _exact_search(store, vectors, settings.depth)
            ranked = [fuse(d, lx, hybrid=settings) for d, lx in zip(dense, lexical, strict=True)]
    else:
        search = _framework_search(store, via, task, k, settings, expand)
        from tqdm.auto import tqdm

        plain = [q.text for q in task.queries]  # the retriever expands each one itself (from the cache filled above)
        ranked = [search(text) for text in tqdm(plain, desc=f"{task.name} via {via}", disable=not show_progress)]
    run = {q.id: dict(hits) for q, hits in zip(task.queries, ranked, strict=True)}
    name = (encoder.name if settings is None else encoder.name + settings.label) + _label(expand)
    return _score(task, name, via, run, keep, started, report.added, k_values)


def evaluate_task(task: RetrievalTask, model: Any, **options: Any) -> TaskResult:
    """One task with a loaded model: :class:`~reasonembed_rag.retrieval.BM25` (:func:`evaluate_bm25`: always
    ``direct``, no collection, only ``keep`` and ``k_values`` apply) or an encoder (:func:`evaluate_dense`, whose
    keyword arguments ``options`` are)."""
    if isinstance(model, BM25):
        if options.get("hybrid") is not None:
            raise ValueError("Hybrid retrieval fuses a dense model's hits with BM25's; give an encoder, not bm25.")
        return evaluate_bm25(
            task,
            keep=options.get("keep", KEEP_TOP),
            k_values=options.get("k_values", ()),
            expand=options.get("expand"),
        )
    return evaluate_dense(task, model, **options)


def evaluate(
    tasks: Sequence[RetrievalTask],
    model: str | Any,
    *,
    via: str = "direct",
    chroma: Any = None,
    keep: int = KEEP_TOP,
    show_progress: bool | None = None,
    k_values: Sequence[int] = (),
    hybrid: Hybrid | str | None = None,
    expand: QueryExpander | None = None,
) -> list[TaskResult]:
    """Evaluate several tasks with one model: an encoder, a :class:`~reasonembed_rag.retrieval.BM25`, or a name
    (``"bm25"`` or an alias to load, see :func:`~reasonembed_rag.retrieval.load_retriever`). ``k_values`` adds
    metrics at those cutoffs; ``hybrid`` fuses an encoder's hits with BM25 (:func:`evaluate_dense`); ``expand``
    appends an LLM's reasoning sketch to every query, on every path."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 hit per query, got {keep}: with none kept every score is 0.")
    model = load_retriever(model)
    options: dict[str, Any] = {"hybrid": hybrid} if hybrid is not None else {}
    if expand is not None:
        options["expand"] = expand
    return [
        evaluate_task(
            task, model, via=via, chroma=chroma, keep=keep, show_progress=show_progress, k_values=k_values, **options
        )
        for task in tasks
    ]


def results_json(results: Sequence[TaskResult], *, model: str, via: str) -> dict[str, Any]:
    """The CONTRACT results.json: per task and mean, fractions in 0-1 (every metric the results share)."""
    tasks = {r.task: r.summary() for r in results}
    names = [n for n in (results[0].metrics if results else metric_names()) if all(n in r.metrics for r in results)]
    mean = {n: (sum(r.metrics[n] for r in results) / len(results) if results else 0.0) for n in names}
    return {"model": model, "via": via, "tasks": tasks, "mean": mean}
