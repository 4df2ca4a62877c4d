"""The retrievers the agents are compared with, over one task's corpus, for either framework.

* ``bm25``: a :class:`~reasonembed_rag.retrieval.BM25Index` (the same BM25 as the evaluation), wrapped as a
  LlamaIndex or LangChain retriever by the agent modules.
* any other name: a dense model (registry alias, Hub id or folder) whose vectors live in a Chroma collection tied to
  the corpus and the model (the collection the evaluation uses, so nothing is embedded twice); queries are embedded
  by our LlamaIndex / LangChain embeddings with the task instruction.
* ``<dense>+bm25`` (e.g. ``reasonembed-minilm-l6+bm25``): that dense model fused with BM25 over the same collection
  (hybrid retrieval, :class:`~reasonembed_rag.fusion.Hybrid`'s defaults: min-max, 0.25 BM25), through the stores'
  own hybrid retrievers, so the agents see exactly what ``reasonembed-rag bright --hybrid bm25`` scores.

:func:`open_retrievers` loads and indexes what it can and reports the rest (a model not trained yet, a Hub model
offline) instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reasonembed_rag.evaluation.data import RetrievalTask
from reasonembed_rag.evaluation.runner import collection_name
from reasonembed_rag.fusion import Hybrid
from reasonembed_rag.models import ModelNotAvailableError, weights_fingerprint
from reasonembed_rag.retrieval import BM25, BM25Index, load_retriever

__all__ = ["HYBRID_SUFFIX", "RetrieverSource", "open_retrievers", "split_hybrid"]

HYBRID_SUFFIX = "+bm25"
"""A retriever name ending in this is the dense model before it fused with BM25."""


@dataclass
class RetrieverSource:
    """One retriever of the comparison, ready to be handed to either framework."""

    name: str
    """As the user named it (``bm25``, ``minilm-l6``, a folder, ...)."""
    identity: str
    """What decides its results (the encoder's name and weights, or ``bm25s``); part of the answer cache key."""
    instruction: str | None = None
    """The task instruction our embeddings put in front of queries (dense only)."""
    store: Any = None
    """The :class:`~reasonembed_rag.store.ChromaStore` holding the corpus (dense only)."""
    bm25: BM25Index | None = None
    hybrid: Hybrid | None = None
    """Fuse the dense hits with BM25 (dense only)."""
    index_seconds: float = 0.0

    def for_framework(self, framework: str, *, depth: int) -> Any:
        """The framework's retriever returning ``depth`` documents: a LlamaIndex or LangChain ``BaseRetriever``."""
        if framework == "llamaindex":
            if self.bm25 is not None:
                from .llama_index_agent import BM25LlamaIndexRetriever

                return BM25LlamaIndexRetriever(self.bm25, k=depth)
            return self.store.llama_index_retriever(k=depth, instruction=self.instruction, hybrid=self.hybrid)
        if framework == "langchain":
            if self.bm25 is not None:
                from .langchain_agent import BM25LangChainRetriever

                return BM25LangChainRetriever(index=self.bm25, k=depth)
            return self.store.langchain_retriever(k=depth, instruction=self.instruction, hybrid=self.hybrid)
        raise ValueError(f"Unknown framework {framework!r}; use llamaindex or langchain.")


def open_retrievers(
    task: RetrievalTask,
    names: Sequence[str],
    *,
    chroma: Any = None,
    encoders: Mapping[str, Any] | None = None,
    hybrid: Hybrid | None = None,
    show_progress: bool | None = None,
) -> tuple[dict[str, RetrieverSource], dict[str, str]]:
    """Load and index each named retriever over ``task``'s corpus.

    Args:
        task: The corpus and the query instruction.
        names: ``bm25``, dense model names, and dense names ending in ``+bm25`` (hybrid).
        chroma: Chroma folder, ``http://host:port`` or client; ``None`` for the default folder.
        encoders: Already loaded encoders by name; others are loaded once per process (shared with the adapters).
        hybrid: The fusion of the ``+bm25`` names (default :class:`~reasonembed_rag.fusion.Hybrid`'s: min-max, 0.25).
        show_progress: Progress bars while embedding documents.

    Returns:
        ``({name: source}, {name: why it was skipped})``.
    """
    from reasonembed_rag.integrations._shared import shared_encoder
    from reasonembed_rag.store import ChromaStore

    sources: dict[str, RetrieverSource] = {}
    skipped: dict[str, str] = {}
    for name in dict.fromkeys(names):
        started = time.perf_counter()
        model_name, fusion = split_hybrid(name, hybrid)
        try:
            model = load_retriever(model_name, load=lambda alias: (encoders or {}).get(alias) or shared_encoder(alias))
        except (ModelNotAvailableError, OSError) as error:
            skipped[name] = str(error)
            continue
        if isinstance(model, BM25):
            if fusion is not None:
                raise ValueError(f"{name!r} fuses BM25 with itself; name a dense model: MODEL{HYBRID_SUFFIX}.")
            sources[name] = RetrieverSource(name, "bm25s", bm25=model.index(task.documents))
        else:
            store = ChromaStore(collection_name(task, model), model, chroma=chroma, instruction=task.instruction)
            store.add_documents(task.documents.items(), show_progress=show_progress, total=len(task.documents))
            identity = f"{model.name}@{weights_fingerprint(getattr(model, 'source', None))}"
            if fusion is not None:
                identity += fusion.label
            sources[name] = RetrieverSource(name, identity, instruction=task.instruction, store=store, hybrid=fusion)
        sources[name].index_seconds = round(time.perf_counter() - started, 2)
    return sources, skipped


def split_hybrid(name: str, hybrid: Hybrid | None = None) -> tuple[str, Hybrid | None]:
    """``"m+bm25"`` -> ``("m", hybrid or Hybrid())``; any other name -> ``(name, None)``."""
    if name.endswith(HYBRID_SUFFIX) and len(name) > len(HYBRID_SUFFIX):
        return name[: -len(HYBRID_SUFFIX)], hybrid or Hybrid()
    return name, None
