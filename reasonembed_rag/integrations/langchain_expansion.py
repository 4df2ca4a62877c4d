"""LangChainExpandingRetriever: a LangChain ``BaseRetriever`` that expands each query, then asks another retriever.

A thin adapter over :class:`reasonembed_rag.expansion.QueryExpander`;
:meth:`reasonembed_rag.store.ChromaStore.langchain_retriever` with ``expand=`` wraps its dense or hybrid retriever
in it.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

__all__ = ["LangChainExpandingRetriever"]


class LangChainExpandingRetriever(BaseRetriever):
    """Searches ``retriever`` with the query followed by the expander's reasoning sketch.

    Attributes:
        retriever: Any LangChain retriever (a vector store's, or :class:`LangChainHybridRetriever`, whose BM25 side
            then searches with the expanded text too).
        expander: A :class:`~reasonembed_rag.expansion.QueryExpander`.
        instruction: The task instruction for the expander's prompt (default: the expander's own).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any
    expander: Any
    instruction: str | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        expanded = self.expander.expand_query(query, instruction=self.instruction)
        documents: list[Document] = self.retriever.invoke(expanded, config={"callbacks": run_manager.get_child()})
        return documents
