"""Thin adapters from :class:`~reasonembed_rag.ReasonEmbedEncoder` to each framework's embedding interface.

One module per framework, each importing only its own framework, and only when its class is first used:

- :class:`LlamaIndexEmbedding` (``llama_index.core`` ``BaseEmbedding``) in :mod:`.llama_index`
- :class:`LangChainEmbeddings` (``langchain_core`` ``Embeddings``) in :mod:`.langchain`
- :class:`ChromaEmbeddingFunction` (a registered ``chromadb`` ``EmbeddingFunction``) in :mod:`.chroma`
- :class:`LlamaIndexRerank` (a ``BaseNodePostprocessor``) and :class:`LangChainRerank` (a ``BaseDocumentCompressor``
  for ``ContextualCompressionRetriever``): the rerankers of :mod:`reasonembed_rag.rerank`
- :class:`MTEBEncoder` (mteb 2.x's encoder protocol) in :mod:`.mteb`

The adapters hold no logic of their own: formatting, batching and normalising belong to the encoder; collections
and search settings to :mod:`reasonembed_rag.store`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chroma import ChromaEmbeddingFunction
    from .langchain import LangChainEmbeddings, LangChainRerank
    from .llama_index import LlamaIndexEmbedding, LlamaIndexRerank
    from .mteb import MTEBEncoder

_LAZY = {
    "ChromaEmbeddingFunction": ".chroma",
    "LangChainEmbeddings": ".langchain",
    "LangChainRerank": ".langchain",
    "LlamaIndexEmbedding": ".llama_index",
    "LlamaIndexRerank": ".llama_index",
    "MTEBEncoder": ".mteb",
}

__all__ = [
    "ChromaEmbeddingFunction",
    "LangChainEmbeddings",
    "LangChainRerank",
    "LlamaIndexEmbedding",
    "LlamaIndexRerank",
    "MTEBEncoder",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
