"""Thin adapters from :class:`~reasonembed_rag.ReasonEmbedEncoder` to each framework's embedding interface.

One module per framework, each importing only its own framework, and only when its class is first used:

- :class:`LlamaIndexEmbedding` (``llama_index.core`` ``BaseEmbedding``) in :mod:`.llama_index`
- :class:`LangChainEmbeddings` (``langchain_core`` ``Embeddings``) in :mod:`.langchain`
- :class:`ChromaEmbeddingFunction` (a registered ``chromadb`` ``EmbeddingFunction``) in :mod:`.chroma`

The adapters hold no logic of their own: formatting, batching and normalising belong to the encoder; collections
and search settings to :mod:`reasonembed_rag.store`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chroma import ChromaEmbeddingFunction
    from .langchain import LangChainEmbeddings
    from .llama_index import LlamaIndexEmbedding

_LAZY = {
    "ChromaEmbeddingFunction": ".chroma",
    "LangChainEmbeddings": ".langchain",
    "LlamaIndexEmbedding": ".llama_index",
}

__all__ = ["ChromaEmbeddingFunction", "LangChainEmbeddings", "LlamaIndexEmbedding"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
