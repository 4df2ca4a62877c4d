"""ChromaEmbeddingFunction: ReasonEmbed as a registered chromadb 1.x embedding function.

Chroma persists an embedding function's ``name()`` and ``get_config()`` in each collection's configuration and
rebuilds it with ``build_from_config`` whenever a process reads that configuration. Registering the class (done when
this module is imported) lets a collection reopened in a new process embed ``query_texts`` without the user passing
the function again::

    import chromadb
    import reasonembed_rag.integrations.chroma  # registers "reasonembed"

    collection = chromadb.PersistentClient("index").get_collection("biology")
    collection.query(query_texts=["Why do cells age?"], n_results=10)

Only the model name and the task or instruction are persisted; the model itself is loaded on first use, because
Chroma rebuilds the function every time it reads the configuration. Everything else (batching, formatting,
normalising) is the encoder's job; collections, upserts and search settings live in :mod:`reasonembed_rag.store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from ._shared import share_encoder, shared_encoder

if TYPE_CHECKING:
    from reasonembed_rag.encoder import ReasonEmbedEncoder

__all__ = ["ChromaEmbeddingFunction"]


@register_embedding_function
class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Embeds Chroma documents as documents and Chroma query texts as queries with the task instruction.

    Example:
        ```python
        import chromadb
        from reasonembed_rag import ChromaEmbeddingFunction

        function = ChromaEmbeddingFunction(model="minilm-l6", task="biology")
        collection = chromadb.PersistentClient("index").create_collection(
            "biology", embedding_function=function, configuration={"hnsw": {"space": "cosine"}}
        )
        collection.add(ids=["d1"], documents=["Telomeres shorten with every division."])
        collection.query(query_texts=["Why do cells age?"], n_results=1)["ids"]  # [['d1']]
        ```
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        task: str | None = None,
        instruction: str | None = None,
        encoder: ReasonEmbedEncoder | None = None,
    ) -> None:
        """Describe the function; the model is loaded (once per process) when it first embeds.

        Args:
            model: Registry alias, Hub id or model folder. Optional when ``encoder`` is given.
            task: A BRIGHT task (or one the model knows) whose instruction is added to queries.
            instruction: An explicit query instruction instead of ``task``.
            encoder: An already loaded encoder to use instead of loading ``model``.
        """
        if encoder is not None:
            if model is not None and model != encoder.name:
                raise ValueError(f"model={model!r} disagrees with the encoder's name {encoder.name!r}; pass one.")
            model = encoder.name
            encoder.resolve_instruction(task=task, instruction=instruction)
            share_encoder(encoder)
        if not model:
            raise ValueError("ChromaEmbeddingFunction needs model= (an alias such as 'minilm-l6') or encoder=.")
        if task is not None and instruction is not None:
            raise ValueError("Pass either task=... or instruction=..., not both.")
        self.model = model
        self.task = task
        self.instruction = instruction
        self._encoder = encoder

    @classmethod
    def from_encoder(
        cls, encoder: ReasonEmbedEncoder, *, task: str | None = None, instruction: str | None = None
    ) -> ChromaEmbeddingFunction:
        """A function over an already loaded encoder (no second copy of the model)."""
        return cls(task=task, instruction=instruction, encoder=encoder)

    def with_task(self, task: str | None = None, *, instruction: str | None = None) -> ChromaEmbeddingFunction:
        """A copy for another task or instruction that shares this function's model."""
        return type(self)(self.model, task=task, instruction=instruction, encoder=self._encoder)

    @property
    def encoder(self) -> ReasonEmbedEncoder:
        """The encoder, loaded on first use."""
        if self._encoder is None:
            encoder = shared_encoder(self.model)
            encoder.resolve_instruction(task=self.task, instruction=self.instruction)
            self._encoder = encoder
        return self._encoder

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - chromadb's protocol names it `input`
        """Embed documents (never with an instruction)."""
        return list(self.encoder.encode_documents(list(input), show_progress=False))

    def embed_query(self, input: Documents) -> Embeddings:  # noqa: A002
        """Embed query texts with this function's task instruction."""
        vectors = self.encoder.encode_queries(
            list(input), task=self.task, instruction=self.instruction, show_progress=False
        )
        return list(vectors)

    @staticmethod
    def name() -> str:
        """The name Chroma records in collection configurations."""
        return "reasonembed"

    def default_space(self) -> Space:
        """Vectors are L2-normalised, so cosine is the natural space."""
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        """Normalised vectors rank identically under all three of Chroma's spaces."""
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        """What Chroma persists: the model and the query instruction, never the weights."""
        return {"model": self.model, "task": self.task, "instruction": self.instruction}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        """Rebuild from a persisted configuration without loading the model yet."""
        ChromaEmbeddingFunction.validate_config(config)
        return ChromaEmbeddingFunction(config["model"], task=config.get("task"), instruction=config.get("instruction"))

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Refuse a configuration without a model name."""
        if not isinstance(config.get("model"), str) or not config["model"]:
            raise ValueError(f"A reasonembed embedding function config needs a 'model' name, got {config!r}.")

    def __repr__(self) -> str:
        return f"ChromaEmbeddingFunction(model={self.model!r}, task={self.task!r}, instruction={self.instruction!r})"
