"""LangChainEmbeddings: ReasonEmbed as a LangChain ``Embeddings``, in the style of the LangChain partner packages.

``embed_query`` adds the task instruction in the model's query format; ``embed_documents`` never does. Vectors are
lists of Python floats, as LangChain's vector stores and standard tests expect. The Chroma vector store and
retriever helpers live in :mod:`reasonembed_rag.store`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ._shared import check_encode_kwargs, check_model_kwargs, resolve_model_name, shared_encoder

if TYPE_CHECKING:
    from reasonembed_rag.encoder import ReasonEmbedEncoder

__all__ = ["LangChainEmbeddings", "LangChainRerank"]


class LangChainEmbeddings(BaseModel, Embeddings):
    """ReasonEmbed embeddings for LangChain.

    Example:
        ```python
        from langchain_chroma import Chroma
        from reasonembed_rag import LangChainEmbeddings

        embeddings = LangChainEmbeddings(model="minilm-l6", task="biology")
        store = Chroma(
            "biology", embedding_function=embeddings, collection_configuration={"hnsw": {"space": "cosine"}}
        )
        store.add_texts(["Telomeres shorten with every division."])
        store.similarity_search("Why do cells age?", k=1)
        ```
    """

    model: str
    """Registry alias (``minilm-l6``), Hugging Face Hub id or local model folder. ``model_name=`` is accepted as an
    alias, as in langchain-huggingface."""
    task: str | None = None
    """A BRIGHT task (or one the model knows) whose instruction is added to queries."""
    instruction: str | None = None
    """An explicit query instruction instead of ``task``."""
    show_progress: bool = False
    """Show a progress bar while embedding documents."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Options for ``ReasonEmbedEncoder.from_pretrained`` (``device``, ``dtype``, ``max_length``, ...)."""
    encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Options for every encode call (``batch_size``, ``show_progress``)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)

    _encoder: Any = PrivateAttr(default=None)

    def __init__(
        self, *, encoder: ReasonEmbedEncoder | None = None, model_name: str | None = None, **data: Any
    ) -> None:
        """Load (or share) the model and check the task and options.

        Args:
            encoder: An already loaded encoder to share instead of loading ``model``.
            model_name: Alias of ``model`` (langchain-huggingface's name for it).
            **data: The fields above.
        """
        data["model"] = resolve_model_name(data.get("model"), model_name, encoder, adapter="LangChainEmbeddings")
        data["model_kwargs"] = check_model_kwargs(data.get("model_kwargs"), encoder=encoder)
        data["encode_kwargs"] = check_encode_kwargs(data.get("encode_kwargs"))
        super().__init__(**data)
        if encoder is None:
            encoder = shared_encoder(self.model, self.model_kwargs)
        encoder.resolve_instruction(task=self.task, instruction=self.instruction)
        self._encoder = encoder

    @classmethod
    def from_encoder(
        cls, encoder: ReasonEmbedEncoder, *, task: str | None = None, instruction: str | None = None, **kwargs: Any
    ) -> LangChainEmbeddings:
        """Embeddings over an already loaded encoder (no second copy of the model)."""
        return cls(encoder=encoder, task=task, instruction=instruction, **kwargs)

    def with_task(self, task: str | None = None, *, instruction: str | None = None) -> LangChainEmbeddings:
        """A copy for another task or instruction that shares this object's model."""
        self._encoder.resolve_instruction(task=task, instruction=instruction)
        return self.model_copy(update={"task": task, "instruction": instruction})

    @property
    def encoder(self) -> ReasonEmbedEncoder:
        """The encoder doing the work."""
        return self._encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (never with an instruction)."""
        options = {"show_progress": self.show_progress, **self.encode_kwargs}
        return self._encoder.encode_documents(texts, **options).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query with the task instruction."""
        options = {"show_progress": False, **self.encode_kwargs}
        vectors = self._encoder.encode_queries([text], task=self.task, instruction=self.instruction, **options)
        return vectors[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents in a worker thread, leaving the event loop free."""
        return await run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one query in a worker thread, leaving the event loop free."""
        return await run_in_executor(None, self.embed_query, text)


class LangChainRerank(BaseDocumentCompressor):
    """A reranker (:mod:`reasonembed_rag.rerank`) as a LangChain document compressor: the ``top_n`` documents by
    rerank score, each with its score in ``metadata["relevance_score"]`` (ties keep the retriever's order).

    Example:
        ```python
        from langchain_classic.retrievers import ContextualCompressionRetriever

        retriever = ContextualCompressionRetriever(
            base_compressor=LangChainRerank(reranker="path/to/cross-encoder", top_n=5),
            base_retriever=store.langchain_retriever(k=50),
        )
        retriever.invoke("Why do cells age?")
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reranker: Any
    """A :class:`~reasonembed_rag.rerank.Reranker` (e.g. :class:`~reasonembed_rag.rerank.LLMReranker`) or a
    cross-encoder folder."""
    top_n: int = 3
    """Documents kept."""

    def model_post_init(self, context: Any, /) -> None:
        from reasonembed_rag.rerank import load_reranker

        self.reranker = load_reranker(self.reranker)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """The best ``top_n`` of ``documents`` for ``query``, best first."""
        from reasonembed_rag.rerank import rerank_texts

        ranked = rerank_texts(self.reranker, query, [doc.page_content for doc in documents])[: self.top_n]
        return [
            Document(
                page_content=documents[i].page_content,
                metadata={**documents[i].metadata, "relevance_score": score},
                id=documents[i].id,
            )
            for i, score in ranked
        ]
