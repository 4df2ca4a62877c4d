"""LlamaIndexHybridRetriever: a LlamaIndex ``BaseRetriever`` fusing a dense retriever's hits with BM25 hits.

A thin adapter over :func:`reasonembed_rag.fusion.fuse`; ``ChromaStore.llama_index_retriever`` (in
:mod:`reasonembed_rag.store`) with ``hybrid=`` builds it over a collection and its persisted BM25 index.
"""

from __future__ import annotations

import math
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ..fusion import Hybrid, fuse
from ..retrieval import BM25Index

__all__ = ["LlamaIndexHybridRetriever"]


class LlamaIndexHybridRetriever(BaseRetriever):
    """The ``k`` best nodes of a dense retriever fused with a BM25 index; node scores are the fused scores.

    Args:
        dense: A retriever over a Chroma collection returning at least ``hybrid.depth`` nodes (its scores are
            LlamaIndex's ``exp(-cosine distance)``, turned back into cosine similarities before fusing, so the
            fusion sees the scores the ``direct`` path sees).
        bm25: BM25 over the same documents (its ``documents`` give the text of nodes only BM25 found).
        hybrid: Fusion settings.
        k: Nodes returned.
    """

    def __init__(self, dense: Any, bm25: BM25Index, *, hybrid: Hybrid, k: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense = dense
        self.bm25 = bm25
        self.hybrid = hybrid
        self.k = k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.dense.retrieve(query_bundle)
        nodes = {hit.node.node_id: hit.node for hit in hits}
        # exp(-distance) back to the cosine (1 - distance); a score of 0 would be beyond the farthest cosine, -1.
        dense = [(hit.node.node_id, 1.0 + math.log(hit.score) if hit.score else -1.0) for hit in hits]
        lexical = self.bm25.search([query_bundle.query_str], self.hybrid.depth)[0]
        return [
            NodeWithScore(node=nodes.get(doc) or TextNode(id_=doc, text=self.bm25.documents[doc]), score=score)
            for doc, score in fuse(dense, lexical, hybrid=self.hybrid)[: self.k]
        ]
