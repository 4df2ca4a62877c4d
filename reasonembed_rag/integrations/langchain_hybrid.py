"""LangChainHybridRetriever: a LangChain ``BaseRetriever`` fusing a vector store's hits with BM25 hits.

A thin adapter over :func:`reasonembed_rag.fusion.fuse`; :meth:`reasonembed_rag.store.ChromaStore.langchain_retriever`
with ``hybrid=`` builds it over a collection and its persisted BM25 index.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ..fusion import Hybrid, fuse

__all__ = ["LangChainHybridRetriever"]

SCORE_KEY = "fused_score"
"""Metadata key of each returned document's fused score."""


class LangChainHybridRetriever(BaseRetriever):
    """The ``k`` best documents of a vector store fused with a BM25 index, best first.

    Each document's ``metadata["fused_score"]`` holds its fused score.

    Attributes:
        vector_store: A ``langchain_chroma.Chroma`` over a cosine collection (its ``similarity_search_with_score``
            distances become the cosine similarities the ``direct`` path fuses).
        bm25: A :class:`~reasonembed_rag.retrieval.BM25Index` over the same documents (its ``documents`` give the
            text of documents only BM25 found).
        hybrid: A :class:`~reasonembed_rag.fusion.Hybrid`.
        k: Documents returned.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    vector_store: Any
    bm25: Any
    hybrid: Hybrid
    k: int = 10

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.vector_store.similarity_search_with_score(query, k=self.hybrid.depth)
        found = {str(doc.id): doc for doc, _ in hits}
        # Chroma's cosine distance back to the cosine similarity the direct path fuses.
        dense = [(str(doc.id), 1.0 - float(distance)) for doc, distance in hits]
        lexical = self.bm25.search([query], self.hybrid.depth)[0]
        results = []
        for doc_id, score in fuse(dense, lexical, hybrid=self.hybrid)[: self.k]:
            known = found.get(doc_id)
            content = known.page_content if known is not None else self.bm25.documents[doc_id]
            metadata = {**(known.metadata if known is not None else {}), SCORE_KEY: score}
            results.append(Document(id=doc_id, page_content=content, metadata=metadata))
        return results
