"""The retrievers the agents are compared with, over one task's corpus, for either framework.

* ``bm25``: a :class:`~reasonembed_rag.retrieval.BM25Index` (the same BM25 as the evaluation), wrapped as a
  LlamaIndex or LangChain retriever by the agent modules.
* any other name: a dense model (registry alias, Hub id or folder) whose vectors live in a Chroma collection tied to
  the corpus and the model (the collection the evaluation uses, so nothing is embedded twice); queries are embedded
  by our LlamaIndex / LangChain embeddings with the task instruction.

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
from reasonembed_rag.models import ModelNotAvailableError, weights_fingerprint
from reasonembed_rag.retrieval import BM25, BM25Index, load_retriever

__all__ = ["RetrieverSource", "open_retrievers"]


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
    index_seconds: float = 0.0

    def for_framework(self, framework: str, *, depth: int) -> Any:
        """The framework's retriever returning ``depth`` documents: a LlamaIndex or LangChain ``BaseRetriever``."""
        if framework == "llamaindex":
            if self.bm25 is not None:
                from .llama_index_agent import BM25LlamaIndexRetriever

                return BM25LlamaIndexRetriever(self.bm25, k=depth)
            return self.store.llama_index_retriever(k=depth, instruction=self.instruction)
        if framework == "langchain":
            if self.bm25 is not None:
                from .langchain_agent import BM25LangChainRetriever

                return BM25LangChainRetriever(index=self.bm25, k=depth)
            return self.store.langchain_retriever(k=depth, instruction=self.instruction)
        raise ValueError(f"Unknown framework {framework!r}; use llamaindex or langchain.")


def open_retrievers(
    task: RetrievalTask,
    names: Sequence[str],
    *,
    chroma: Any = None,
    encoders: Mapping[str, Any] | None = None,
    show_progress: bool | None = None,
) -> tuple[dict[str, RetrieverSource], dict[str, str]]:
    """Load and index each named retriever over ``task``'s corpus.

    Args:
        task: The corpus and the query instruction.
        names: ``bm25`` and dense model names.
        chroma: Chroma folder, ``http://host:port`` or client; ``None`` for the default folder.
        encoders: Already loaded encoders by name; others are loaded once per process (shared with the adapters).
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
        try:
            model = load_retriever(name, load=lambda alias: (encoders or {}).get(alias) or shared_encoder(alias))
        except (ModelNotAvailableError, OSError) as error:
            skipped[name] = str(error)
            continue
        if isinstance(model, BM25):
            sources[name] = RetrieverSource(name, "bm25s", bm25=model.index(task.documents))
        else:
            store = ChromaStore(collection_name(task, model), model, chroma=chroma, instruction=task.instruction)
            store.add_documents(task.documents.items(), show_progress=show_progress, total=len(task.documents))
            identity = f"{model.name}@{weights_fingerprint(getattr(model, 'source', None))}"
            sources[name] = RetrieverSource(name, identity, instruction=task.instruction, store=store)
        sources[name].index_seconds = round(time.perf_counter() - started, 2)
    return sources, skipped
