"""reasonembed-rag: ReasonEmbed reasoning-intensive embeddings for real RAG systems.

The core (:class:`ReasonEmbedEncoder`) needs only torch, transformers and numpy. The framework adapters
(:class:`LlamaIndexEmbedding`, :class:`LangChainEmbeddings`, :class:`ChromaEmbeddingFunction`) are resolved lazily,
so importing this package never imports llama_index, langchain or chromadb.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .encoder import EncoderConfig, ReasonEmbedEncoder
from .instructions import BRIGHT_INSTRUCTIONS, BRIGHT_LONG_INSTRUCTIONS, get_instruction
from .models import REGISTRY, ModelNotAvailableError, ModelSpec

if TYPE_CHECKING:
    from .integrations.chroma import ChromaEmbeddingFunction
    from .integrations.langchain import LangChainEmbeddings
    from .integrations.llama_index import LlamaIndexEmbedding
    from .store import ChromaStore, CollectionMismatchError

__version__ = "0.1.0"

_LAZY = {
    "LlamaIndexEmbedding": ".integrations.llama_index",
    "LangChainEmbeddings": ".integrations.langchain",
    "ChromaEmbeddingFunction": ".integrations.chroma",
    "ChromaStore": ".store",
    "CollectionMismatchError": ".store",
}

__all__ = [
    "BRIGHT_INSTRUCTIONS",
    "BRIGHT_LONG_INSTRUCTIONS",
    "ChromaEmbeddingFunction",
    "ChromaStore",
    "CollectionMismatchError",
    "EncoderConfig",
    "LangChainEmbeddings",
    "LlamaIndexEmbedding",
    "ModelNotAvailableError",
    "ModelSpec",
    "REGISTRY",
    "ReasonEmbedEncoder",
    "get_instruction",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
