"""LlamaIndexExpandingRetriever: a LlamaIndex ``BaseRetriever`` that expands each query, then asks another retriever.

A thin adapter over :class:`reasonembed_rag.expansion.QueryExpander`; ``ChromaStore.llama_index_retriever`` (in
:mod:`reasonembed_rag.store`) with ``expand=`` wraps its dense or hybrid retriever in it.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..expansion import QueryExpander

__all__ = ["LlamaIndexExpandingRetriever"]


class LlamaIndexExpandingRetriever(BaseRetriever):
    """Searches ``retriever`` with the query followed by the expander's reasoning sketch.

    Args:
        retriever: Any LlamaIndex retriever (dense, or :class:`LlamaIndexHybridRetriever`, whose BM25 side then
            searches with the expanded text too).
        expander: Writes (or reads from its cache) each query's sketch.
        instruction: The task instruction for the expander's prompt (default: the expander's own).
    """

    def __init__(
        self, retriever: Any, expander: QueryExpander, *, instruction: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.retriever = retriever
        self.expander = expander
        self.instruction = instruction

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        expanded = self.expander.expand_query(query_bundle.query_str, instruction=self.instruction)
        return self.retriever.retrieve(QueryBundle(query_str=expanded))
