"""ChromaEmbeddingFunction: ReasonEmbed as a registered chromadb 1.x embedding function.

Chroma persists an embedding function's ``name()`` and ``get_config()`` in each collection's configuration and
rebuilds it with ``build_from_config`` whenever a process reads that configuration. Registering the class (done when
this module is imported) lets a collection reopened in a new process embed ``query_texts`` without the user passing
the function again::

    import chromadb
    import reasonembed_rag.integrations.chroma  # registers "reasonembed"

    collection = chromadb.PersistentClient("index").get_collection("biology")
    collection.query(query_texts=["Why do cells age?"], n_results=10)

The configuration records the model name, the task or instruction, and the settings that shape the vectors and
where they are computed (pooling, max length, query format, device), so a reopened collection rebuilds the same
encoder; the model itself is loaded on first use, because Chroma rebuilds the function every time it reads the
configuration. Replacing a collection's function with one for another model, or other vector settings, is refused
(:meth:`ChromaEmbeddingFunction.validate_config_update`). Everything else (batching, formatting, normalising) is the
encoder's job; collections, upserts and search settings live in :mod:`reasonembed_rag.store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from ._shared import (
    RECORDED_SETTINGS,
    changed_vector_settings,
    check_encode_kwargs,
    check_model_kwargs,
    recorded_settings,
    resolve_model_name,
    share_encoder,
    shared_encoder,
    usable_device,
)

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
        model_name: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        encode_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Describe the function; the model is loaded (once per process) when it first embeds.

        Args:
            model: Registry alias, Hub id or model folder. Optional when ``encoder`` is given.
            task: A BRIGHT task (or one the model knows) whose instruction is added to queries.
            instruction: An explicit query instruction instead of ``task``.
            encoder: An already loaded encoder to use instead of loading ``model``.
            model_name: Alias of ``model`` (langchain-huggingface's name for it).
            model_kwargs: Options for :meth:`ReasonEmbedEncoder.from_pretrained` (``device``, ``dtype``,
                ``max_length``, ...); ``pooling``, ``max_length``, ``query_format`` and ``device`` are recorded in the
                collection's configuration.
            encode_kwargs: Options for every encode call (``batch_size``, ``show_progress``).
        """
        self.model = resolve_model_name(model, model_name, encoder, adapter="ChromaEmbeddingFunction")
        self.model_kwargs = check_model_kwargs(model_kwargs, encoder=encoder)
        self.encode_kwargs = check_encode_kwargs(encode_kwargs)
        if task is not None and instruction is not None:
            raise ValueError("Pass either task=... or instruction=..., not both.")
        if encoder is not None:
            encoder.resolve_instruction(task=task, instruction=instruction)
            share_encoder(encoder)
        self.task = task
        self.instruction = instruction
        self._encoder = encoder

    @classmethod
    def from_encoder(
        cls, encoder: ReasonEmbedEncoder, *, task: str | None = None, instruction: str | None = None, **kwargs: Any
    ) -> ChromaEmbeddingFunction:
        """A function over an already loaded encoder (no second copy of the model)."""
        return cls(task=task, instruction=instruction, encoder=encoder, **kwargs)

    def with_task(self, task: str | None = None, *, instruction: str | None = None) -> ChromaEmbeddingFunction:
        """A copy for another task or instruction that shares this function's model."""
        encode_kwargs = self.encode_kwargs
        if self._encoder is not None:
            return self.from_encoder(self._encoder, task=task, instruction=instruction, encode_kwargs=encode_kwargs)
        return type(self)(
            self.model, task=task, instruction=instruction, model_kwargs=self.model_kwargs, encode_kwargs=encode_kwargs
        )

    @property
    def encoder(self) -> ReasonEmbedEncoder:
        """The encoder, loaded on first use."""
        if self._encoder is None:
            encoder = shared_encoder(self.model, self.model_kwargs)
            encoder.resolve_instruction(task=self.task, instruction=self.instruction)
            self._encoder = encoder
        return self._encoder

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - chromadb's protocol names it `input`
        """Embed documents (never with an instruction)."""
        options = {"show_progress": False, **self.encode_kwargs}
        return list(self.encoder.encode_documents(list(input), **options))

    def embed_query(self, input: Documents) -> Embeddings:  # noqa: A002
        """Embed query texts with this function's task instruction."""
        options = {"show_progress": False, **self.encode_kwargs}
        vectors = self.encoder.encode_queries(list(input), task=self.task, instruction=self.instruction, **options)
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
        """What Chroma persists: the model, the query instruction and the recorded loading settings (the loaded
        encoder's own, else the ones asked for, ``None`` meaning the model's default); never the weights."""
        if self._encoder is not None:
            settings = recorded_settings(self._encoder)
        else:
            settings = self.model_kwargs
        recorded = {name: settings.get(name) for name in RECORDED_SETTINGS}
        return {"model": self.model, "task": self.task, "instruction": self.instruction, **recorded}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        """Rebuild from a persisted configuration without loading the model yet.

        The recorded settings become loading options; a recorded device this machine lacks falls back to the
        default device. Configurations written before settings were recorded rebuild with the model's defaults.
        """
        ChromaEmbeddingFunction.validate_config(config)
        options = {name: config.get(name) for name in RECORDED_SETTINGS}
        options["device"] = usable_device(options["device"])
        return ChromaEmbeddingFunction(
            config["model"],
            task=config.get("task"),
            instruction=config.get("instruction"),
            model_kwargs={name: value for name, value in options.items() if value is not None},
        )

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Refuse a configuration without a model name."""
        if not isinstance(config.get("model"), str) or not config["model"]:
            raise ValueError(f"A reasonembed embedding function config needs a 'model' name, got {config!r}.")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        """Refuse to replace a collection's function with one for another model or other vector settings: the
        stored vectors would no longer match the queries. The task, instruction and device may change.

        Chroma calls this from ``collection.modify(configuration={"embedding_function": ...})``; chromadb 1.5.9 calls
        it only after the server has stored the new configuration, so the refusal reaches the caller and keeps the
        collection object unchanged, but a collection opened afterwards reads the new function.

        Raises:
            ValueError: The model, pooling, max length or query format differs (settings recorded as ``None``,
                meaning the model's default, are not compared).
        """
        changed = changed_vector_settings(old_config, new_config)
        if changed:
            raise ValueError(
                f"This collection's vectors were made with {old_config.get('model')!r}; refusing to change its "
                f"embedding function ({'; '.join(changed)}). Index the documents into a new collection instead."
            )

    def __repr__(self) -> str:
        return f"ChromaEmbeddingFunction(model={self.model!r}, task={self.task!r}, instruction={self.instruction!r})"
