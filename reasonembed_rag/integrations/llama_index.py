"""LlamaIndexEmbedding: ReasonEmbed as a LlamaIndex ``BaseEmbedding``.

Queries get the task instruction in the model's query format; texts (documents, nodes) never do. Use it as
``Settings.embed_model``, in ``VectorStoreIndex`` or in an ``IngestionPipeline``. This module only translates
between LlamaIndex's interface and :class:`~reasonembed_rag.ReasonEmbedEncoder`; the Chroma-backed index and
retriever helpers live in :mod:`reasonembed_rag.store`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from pydantic import Field, PrivateAttr

from ._shared import check_encode_kwargs, check_model_kwargs, resolve_model_name, shared_encoder

if TYPE_CHECKING:
    from reasonembed_rag.encoder import ReasonEmbedEncoder

__all__ = ["LlamaIndexEmbedding", "LlamaIndexRerank"]

DEFAULT_EMBED_BATCH_SIZE = 128
"""Texts handed to the encoder per call. The encoder sorts each call by length and packs padded-token budgets,
so bigger calls waste less padding than LlamaIndex's default of 10."""


class LlamaIndexEmbedding(BaseEmbedding):
    """ReasonEmbed embeddings for LlamaIndex.

    Example:
        ```python
        from llama_index.core import Settings, VectorStoreIndex
        from reasonembed_rag import LlamaIndexEmbedding

        Settings.embed_model = LlamaIndexEmbedding(model="minilm-l6", task="biology")
        index = VectorStoreIndex.from_documents(documents)
        economics = Settings.embed_model.with_task("economics")  # same loaded model, other instruction
        ```
    """

    task: str | None = Field(default=None, description="Task whose instruction is added to queries.")
    instruction: str | None = Field(default=None, description="Explicit query instruction instead of a task.")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Options for ReasonEmbedEncoder.from_pretrained (device, dtype, ...)."
    )
    encode_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Options for every encode call (batch_size, show_progress)."
    )

    _encoder: Any = PrivateAttr()

    def __init__(
        self,
        model: str | None = None,
        *,
        task: str | None = None,
        instruction: str | None = None,
        encoder: ReasonEmbedEncoder | None = None,
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        model_kwargs: dict[str, Any] | None = None,
        encode_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Load (or share) the model and check the task and options.

        Args:
            model: Registry alias, Hub id or model folder (``model_name=`` is an alias). Optional when ``encoder``
                is given.
            task: A BRIGHT task (or one the model knows) whose instruction is added to queries.
            instruction: An explicit query instruction instead of ``task``.
            encoder: An already loaded encoder to share instead of loading ``model``.
            embed_batch_size: Texts per encoder call when LlamaIndex embeds nodes.
            model_kwargs: Options for :meth:`ReasonEmbedEncoder.from_pretrained` (``device``, ``dtype``,
                ``max_length``, ...), as langchain-huggingface's ``model_kwargs``.
            encode_kwargs: Options for every encode call (``batch_size``, ``show_progress``).
            **kwargs: Other :class:`BaseEmbedding` fields (``callback_manager``, ``num_workers``, ...).
        """
        name = resolve_model_name(model, kwargs.pop("model_name", None), encoder, adapter="LlamaIndexEmbedding")
        loading = check_model_kwargs(model_kwargs, encoder=encoder)
        encoding = check_encode_kwargs(encode_kwargs)
        if encoder is None:
            encoder = shared_encoder(name, loading)
        encoder.resolve_instruction(task=task, instruction=instruction)
        fields: dict[str, Any] = {
            "task": task,
            "instruction": instruction,
            "model_kwargs": loading,
            "encode_kwargs": encoding,
        }
        super().__init__(model_name=name, embed_batch_size=embed_batch_size, **fields, **kwargs)
        self._encoder = encoder

    @classmethod
    def from_encoder(
        cls,
        encoder: ReasonEmbedEncoder,
        *,
        task: str | None = None,
        instruction: str | None = None,
        **kwargs: Any,
    ) -> LlamaIndexEmbedding:
        """An embedding over an already loaded encoder (no second copy of the model)."""
        return cls(task=task, instruction=instruction, encoder=encoder, **kwargs)

    def with_task(self, task: str | None = None, *, instruction: str | None = None) -> LlamaIndexEmbedding:
        """A copy for another task or instruction that shares this embedding's model."""
        self._encoder.resolve_instruction(task=task, instruction=instruction)
        return self.model_copy(update={"task": task, "instruction": instruction})

    @property
    def encoder(self) -> ReasonEmbedEncoder:
        """The encoder doing the work."""
        return self._encoder

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex records when it serialises this embedding."""
        return "LlamaIndexEmbedding"

    def get_query_embedding(self, query: str) -> Embedding:
        """Embed one query with the task instruction.

        LlamaIndex keys ``embeddings_cache`` by the text alone, so a cached query vector would be returned for another
        task's query or for the same text embedded as a document: queries bypass the cache (texts still use it).
        """
        if self.embeddings_cache is None:
            return super().get_query_embedding(query)
        return self.model_copy(update={"embeddings_cache": None}).get_query_embedding(query)

    async def aget_query_embedding(self, query: str) -> Embedding:
        """Async :meth:`get_query_embedding` (queries bypass ``embeddings_cache`` here too)."""
        if self.embeddings_cache is None:
            return await super().aget_query_embedding(query)
        return await self.model_copy(update={"embeddings_cache": None}).aget_query_embedding(query)

    def _get_query_embedding(self, query: str) -> Embedding:
        vectors = self._encoder.encode_queries(
            [query], task=self.task, instruction=self.instruction, **{"show_progress": False, **self.encode_kwargs}
        )
        return vectors[0].tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._encoder.encode_documents(texts, **{"show_progress": False, **self.encode_kwargs}).tolist()

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


class LlamaIndexRerank(BaseNodePostprocessor):
    """A reranker (:mod:`reasonembed_rag.rerank`) as a LlamaIndex node postprocessor: the ``top_n`` nodes by rerank
    score, which becomes the node's score (ties keep the retriever's order).

    Example:
        ```python
        engine = index.as_query_engine(
            similarity_top_k=50, node_postprocessors=[LlamaIndexRerank(reranker="path/to/cross-encoder", top_n=5)]
        )
        ```
    """

    reranker: Any = Field(description="a reasonembed_rag.rerank.Reranker or a cross-encoder folder", exclude=True)
    top_n: int = Field(default=3, description="nodes kept")

    def model_post_init(self, context: Any, /) -> None:
        from reasonembed_rag.rerank import load_reranker

        self.reranker = load_reranker(self.reranker)

    @classmethod
    def class_name(cls) -> str:
        return "LlamaIndexRerank"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        from reasonembed_rag.rerank import rerank_texts

        if query_bundle is None:
            raise ValueError("LlamaIndexRerank needs the query: pass query_bundle or query_str to postprocess_nodes.")
        texts = [hit.node.get_content(metadata_mode=MetadataMode.NONE) for hit in nodes]
        ranked = rerank_texts(self.reranker, query_bundle.query_str, texts)[: self.top_n]
        return [NodeWithScore(node=nodes[i].node, score=score) for i, score in ranked]
