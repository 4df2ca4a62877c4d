"""Chroma collections of ReasonEmbed vectors, and framework vector stores and retrievers over them.

What lives here:

- :func:`get_client`: an embedded ``PersistentClient`` (default under ``$REASONEMBED_RAG_HOME/chroma``, else the
  user data dir) or, for ``http://host:port``, a client of a Chroma server.
- :class:`ChromaStore`: one collection bound to the encoder that built it. Collections are created in cosine space
  with :data:`HNSW_SETTINGS`, record the model name, dimension and query format in their metadata, and refuse an
  encoder that does not match. Indexing streams documents in chunks no larger than Chroma's per-call limit, embeds
  only ids the collection does not hold yet (re-indexing a corpus embeds and adds nothing), and shows progress.
  Search returns ids and cosine scores, deep enough (``k`` in the thousands) for evaluation.
- Helpers giving LlamaIndex (``ChromaVectorStore``, ``VectorStoreIndex``, retriever) and LangChain (``Chroma``,
  retriever) objects over the same collection, embedding queries with the store's task instruction.

What does not: embedding itself (the encoder), framework adapters (:mod:`reasonembed_rag.integrations`), metrics
(:mod:`reasonembed_rag.evaluation`). Chroma never embeds anything here: vectors always come from the encoder, and
the collection's persisted embedding function is our own :class:`ChromaEmbeddingFunction`, so Chroma never reaches
for its default ONNX model (which it would download).

Example:
    >>> from reasonembed_rag import ReasonEmbedEncoder
    >>> from reasonembed_rag.store import ChromaStore
    >>> store = ChromaStore("biology", ReasonEmbedEncoder.from_pretrained("minilm-l6"), task="biology")
    >>> store.add_documents([{"id": "d1", "content": "Telomeres shorten with every division."}])
    IndexReport(added=1, already_present=0, duplicates=0)
    >>> store.search("Why do cells age?", k=1)
    [SearchHit(id='d1', score=0.41..., content=None)]
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, overload
from urllib.parse import urlsplit

import chromadb
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.collection_configuration import CreateCollectionConfiguration, CreateHNSWConfiguration
from chromadb.errors import NotFoundError
from tqdm.auto import tqdm

from .fusion import Hybrid, collection_bm25
from .integrations.chroma import ChromaEmbeddingFunction

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection
    from langchain_chroma import Chroma
    from langchain_core.vectorstores import VectorStoreRetriever
    from llama_index.core import VectorStoreIndex
    from llama_index.core.retrievers import VectorIndexRetriever
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from .integrations.langchain import LangChainEmbeddings
    from .integrations.llama_index import LlamaIndexEmbedding

__all__ = [
    "HNSW_SETTINGS",
    "ChromaStore",
    "CollectionMismatchError",
    "Document",
    "Encoder",
    "IndexReport",
    "RecordBatch",
    "SearchHit",
    "check_collection_name",
    "default_chroma_path",
    "get_client",
    "recorded_model",
]

HOME_ENV = "REASONEMBED_RAG_HOME"
"""Environment variable naming this project's data folder; Chroma data goes to its ``chroma`` sub-folder."""

MODEL_KEY = "reasonembed_model"
DIMENSION_KEY = "reasonembed_dimension"
QUERY_FORMAT_KEY = "reasonembed_query_format"

HNSW_SETTINGS: dict[str, Any] = {"space": "cosine", "ef_construction": 400, "ef_search": 4000, "max_neighbors": 48}
"""HNSW settings for new collections, chosen so that top-k equals exact search on evaluation-sized corpora.

Recall against exact search for these and other settings (``benchmarks/hnsw_recall.py``): docs/measurements.md.
Chroma searches with ``max(ef_search, k)`` candidates. A large ``ef_search`` costs query time only;
``ef_construction`` and ``max_neighbors`` cost build time. Pass ``hnsw=`` to :class:`ChromaStore` to trade exactness
for speed on a new collection.
"""

_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
_EMBED_CHUNK = 1024
_QUERY_CHUNK = 256


class Encoder(Protocol):
    """What the store needs from an encoder (:class:`~reasonembed_rag.ReasonEmbedEncoder` provides it)."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def query_format(self) -> str: ...

    def resolve_instruction(self, task: str | None = None, instruction: str | None = None) -> str | None: ...

    def encode_queries(
        self,
        texts: Sequence[str],
        *,
        task: str | None = None,
        instruction: str | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray: ...

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool | None = None) -> np.ndarray: ...


class CollectionMismatchError(ValueError):
    """A collection was built by another model (or another version of it) than the encoder given."""


@dataclass(frozen=True)
class Document:
    """One document to index: its id, its text and optional flat metadata (str, int, float or bool values)."""

    id: str
    content: str
    metadata: Mapping[str, str | int | float | bool] | None = None


@dataclass(frozen=True)
class IndexReport:
    """What an indexing call did.

    Attributes:
        added: Documents embedded and written.
        already_present: Documents skipped because the collection already held their id.
        duplicates: Documents skipped because their id appeared earlier in the same chunk of input.
    """

    added: int = 0
    already_present: int = 0
    duplicates: int = 0

    def __add__(self, other: IndexReport) -> IndexReport:
        return IndexReport(
            self.added + other.added,
            self.already_present + other.already_present,
            self.duplicates + other.duplicates,
        )


@dataclass(frozen=True)
class SearchHit:
    """One retrieved document: its id, cosine similarity to the query, and (when asked for) its text and metadata."""

    id: str
    score: float
    content: str | None = None
    metadata: Mapping[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RecordBatch:
    """Consecutive records of a collection, as :meth:`ChromaStore.records` reads them.

    Attributes:
        ids: The records' ids.
        embeddings: Their vectors, shape ``(len(ids), dimension)`` float32; ``None`` when not asked for.
        documents: Their texts (``None`` for a record stored without one); ``None`` when not asked for.
        metadatas: Their metadata (``None`` for a record without any); ``None`` when not asked for.
    """

    ids: list[str]
    embeddings: np.ndarray | None = field(default=None, repr=False)
    documents: list[str | None] | None = field(default=None, repr=False)
    metadatas: list[Mapping[str, Any] | None] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)


def default_chroma_path() -> Path:
    """Where the embedded Chroma database lives unless told otherwise.

    ``$REASONEMBED_RAG_HOME/chroma`` when that variable is set, else ``$XDG_DATA_HOME/reasonembed-rag/chroma``, else
    ``~/.local/share/reasonembed-rag/chroma``.
    """
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "chroma"
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home).expanduser() / "reasonembed-rag" / "chroma"


def get_client(chroma: str | os.PathLike[str] | ClientAPI | None = None) -> ClientAPI:
    """A Chroma client for a folder (embedded database) or a server URL.

    Args:
        chroma: ``None`` for the default folder (:func:`default_chroma_path`), a folder path for an embedded
            ``PersistentClient``, ``http://host:port`` (or ``https://``) for a Chroma server, or a client, returned
            as is.

    Returns:
        The client. Embedded clients use Chroma's default settings, so a ``chromadb.PersistentClient`` that user code
        opens on the same folder in the same process shares the same database instead of conflicting with it.
    """
    if isinstance(chroma, ClientAPI):
        return chroma
    if chroma is None:
        chroma = default_chroma_path()
    text = os.fspath(chroma)
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        url = urlsplit(text)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"Chroma server address {text!r} must look like http://host:port or https://host:port.")
        if url.path not in ("", "/"):
            raise ValueError(f"Chroma server address {text!r} has a path; give only http://host:port.")
        try:
            port = url.port or (443 if url.scheme == "https" else 8000)
        except ValueError as error:
            raise ValueError(f"Chroma server address {text!r} has an invalid port: {error}.") from error
        return chromadb.HttpClient(host=url.hostname, port=port, ssl=url.scheme == "https")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"Chroma path {text!r} is a file; give a folder (it is created if missing) or a server URL.")
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path))


def check_collection_name(name: str) -> str:
    """Return ``name`` if Chroma accepts it as a collection name, else raise a ValueError saying what is allowed."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"Collection name {name!r} is not valid in Chroma: use 3-512 characters from [a-zA-Z0-9._-], starting and "
            "ending with a letter or digit (for example 'theoremqa_theorems' or 'my-corpus.v2')."
        )
    return name


def recorded_model(collection: str, *, chroma: str | os.PathLike[str] | ClientAPI | None = None) -> str | None:
    """The model name a collection was built with, or ``None`` if it does not exist or records none."""
    client = get_client(chroma)
    try:
        found = client.get_collection(check_collection_name(collection), embedding_function=None)
    except (NotFoundError, ValueError):
        return None
    model = (found.metadata or {}).get(MODEL_KEY)
    return model if isinstance(model, str) else None


def model_metadata(encoder: Encoder) -> dict[str, str | int]:
    """The collection metadata that records which model built a collection."""
    return {MODEL_KEY: encoder.name, DIMENSION_KEY: int(encoder.dimension), QUERY_FORMAT_KEY: encoder.query_format}


class ChromaStore:
    """One Chroma collection of vectors from one encoder.

    Args:
        collection: Collection name (3-512 characters of ``[a-zA-Z0-9._-]``).
        encoder: The encoder whose vectors the collection holds.
        chroma: Folder, ``http://host:port`` or a Chroma client; ``None`` for the default folder.
        task: Default task for queries (its instruction is added in the model's query format); also persisted in
            the collection's embedding function when the collection is created.
        instruction: Default explicit query instruction instead of ``task``.
        create: Create the collection when it does not exist (otherwise raise ``LookupError``).
        hnsw: HNSW settings overriding :data:`HNSW_SETTINGS` when the collection is created (``space`` stays
            cosine); ignored for an existing collection.

    Raises:
        CollectionMismatchError: The collection was built by a different model, dimension or query format.
    """

    def __init__(
        self,
        collection: str,
        encoder: Encoder,
        *,
        chroma: str | os.PathLike[str] | ClientAPI | None = None,
        task: str | None = None,
        instruction: str | None = None,
        create: bool = True,
        hnsw: Mapping[str, Any] | None = None,
    ) -> None:
        check_collection_name(collection)
        encoder.resolve_instruction(task=task, instruction=instruction)
        self.encoder = encoder
        self.task = task
        self.instruction = instruction
        self.location = _describe(chroma)
        self.client = get_client(chroma)
        try:
            self.collection: Collection = self.client.get_collection(collection, embedding_function=None)
        except NotFoundError:
            if not create:
                raise LookupError(
                    f"No collection {collection!r} in {self.location}. Index documents into it first "
                    f"(reasonembed-rag index ... --collection {collection}) or pass create=True."
                ) from None
            configuration: CreateCollectionConfiguration = {
                "hnsw": cast(CreateHNSWConfiguration, {**HNSW_SETTINGS, **(hnsw or {}), "space": "cosine"}),
                "embedding_function": self.embedding_function(),
            }
            self.collection = self.client.get_or_create_collection(
                collection,
                configuration=configuration,
                metadata=model_metadata(encoder),
                embedding_function=None,
            )
        self._check_identity()

    # ----------------------------------------------------------------------------------------------- identity

    @property
    def name(self) -> str:
        """The collection's name."""
        return self.collection.name

    @property
    def dimension(self) -> int:
        """Vector dimension of the collection (the encoder's)."""
        return int(self.encoder.dimension)

    def _check_identity(self) -> None:
        metadata = self.collection.metadata or {}
        model = metadata.get(MODEL_KEY)
        if model is None:
            raise CollectionMismatchError(
                f"Collection {self.name!r} in {self.location} was not created by reasonembed-rag: its metadata "
                f"records no model, so its vectors cannot be checked against {self.encoder.name!r}. Use another "
                f"collection name, or delete it (client.delete_collection({self.name!r})) and index again."
            )
        dimension = metadata.get(DIMENSION_KEY)
        query_format = metadata.get(QUERY_FORMAT_KEY)
        if model != self.encoder.name:
            raise CollectionMismatchError(
                f"Collection {self.name!r} in {self.location} was built with model {model!r} ({dimension}-d), but the "
                f"encoder is {self.encoder.name!r} ({self.encoder.dimension}-d); their vectors cannot be mixed. Load "
                f"{model!r} to search it (CLI: --model {model}), or index into another collection."
            )
        if dimension != self.encoder.dimension:
            raise CollectionMismatchError(
                f"Collection {self.name!r} in {self.location} holds {dimension}-d vectors of {model!r}, but this "
                f"{model!r} encoder makes {self.encoder.dimension}-d vectors: the model changed since indexing. Index "
                "into a new collection."
            )
        if query_format != self.encoder.query_format:
            raise CollectionMismatchError(
                f"Collection {self.name!r} in {self.location} was built with {model!r} using query format "
                f"{query_format!r}, but this encoder uses {self.encoder.query_format!r}: the model changed since "
                "indexing. Load the model with the recorded query format, or index into a new collection."
            )

    def count(self) -> int:
        """Number of vectors in the collection."""
        return int(self.collection.count())

    @property
    def max_batch_size(self) -> int:
        """Most records Chroma accepts in one add call (5461 for the embedded database)."""
        return int(self.client.get_max_batch_size())

    # ----------------------------------------------------------------------------------------------- indexing

    def add_documents(
        self,
        documents: Iterable[Document | Mapping[str, Any] | tuple[str, str]],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
        total: int | None = None,
    ) -> IndexReport:
        """Embed and add documents whose ids the collection does not hold yet.

        Documents are read from the iterable in chunks of ``batch_size``; each chunk's ids are checked against the
        collection first, so re-indexing a corpus embeds and adds nothing, and at most one chunk is in memory.

        Args:
            documents: :class:`Document` objects, mappings with ``id`` and ``content`` (optional ``metadata``), or
                ``(id, content)`` pairs. A generator is read lazily.
            batch_size: Documents per chunk; at most (and by default) Chroma's per-call limit.
            show_progress: Show a progress bar; ``None`` shows one when writing to a terminal.
            total: Number of documents, for the progress bar when ``documents`` has no ``len()``.

        Returns:
            How many documents were added and how many were skipped, and why.
        """
        chunk_size = self._chunk_size(batch_size)
        if total is None and isinstance(documents, Sized):
            total = len(documents)
        report = IndexReport()
        with _progress(total, f"Indexing {self.name}", show_progress) as bar:
            for chunk in _chunks(iter(documents), chunk_size):
                records = [_as_document(item) for item in chunk]
                keep, present, duplicates = self._new_positions([record.id for record in records])
                bar.update(len(records) - len(keep))
                vectors = np.empty((len(keep), self.dimension), dtype=np.float32)
                for start in range(0, len(keep), _EMBED_CHUNK):
                    part = keep[start : start + _EMBED_CHUNK]
                    texts = [records[i].content for i in part]
                    vectors[start : start + len(part)] = self.encoder.encode_documents(texts, show_progress=False)
                    bar.update(len(part))
                self._write(
                    [records[i].id for i in keep],
                    vectors,
                    [records[i].content for i in keep],
                    [records[i].metadata for i in keep],
                )
                report += IndexReport(len(keep), present, duplicates)
        return report

    def add_embeddings(
        self,
        ids: Sequence[str],
        embeddings: np.ndarray | Sequence[Sequence[float]],
        *,
        documents: Sequence[str | None] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        show_progress: bool | None = None,
    ) -> IndexReport:
        """Add precomputed vectors (from this store's encoder) under the same id rules as :meth:`add_documents`.

        Args:
            ids: One id per vector.
            embeddings: Array of shape ``(len(ids), dimension)``; rows should be L2-normalised document vectors.
            documents: Optional text stored with each vector (returned by searches and framework retrievers); an
                item may be None (a vector without text).
            metadatas: Optional flat metadata per vector.
            show_progress: Show a progress bar; ``None`` shows one when writing to a terminal.
        """
        vectors = np.asarray(embeddings, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"Embeddings of shape {vectors.shape} do not fit collection {self.name!r}, which holds "
                f"{self.dimension}-d vectors of {self.encoder.name!r}: pass an array of shape (n, {self.dimension})."
            )
        for what, values in (("embeddings", vectors), ("documents", documents), ("metadatas", metadatas)):
            if values is not None and len(values) != len(ids):
                raise ValueError(f"Got {len(ids)} ids but {len(values)} {what}; pass one per id.")
        report = IndexReport()
        chunk_size = self._chunk_size(None)
        with _progress(len(ids), f"Adding to {self.name}", show_progress) as bar:
            for start in range(0, len(ids), chunk_size):
                stop = min(start + chunk_size, len(ids))
                chunk_ids = list(ids[start:stop])
                keep, present, duplicates = self._new_positions(chunk_ids)
                rows = [start + i for i in keep]
                self._write(
                    [chunk_ids[i] for i in keep],
                    vectors[rows],
                    None if documents is None else [documents[i] for i in rows],
                    None if metadatas is None else [metadatas[i] for i in rows],
                )
                report += IndexReport(len(keep), present, duplicates)
                bar.update(stop - start)
        return report

    def _chunk_size(self, batch_size: int | None) -> int:
        limit = self.max_batch_size
        if batch_size is None:
            return limit
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        return min(batch_size, limit)

    def _new_positions(self, ids: Sequence[str]) -> tuple[list[int], int, int]:
        """Positions of the first occurrence of each id the collection lacks, and the counts skipped."""
        first: dict[str, int] = {}
        for position, doc_id in enumerate(ids):
            if not isinstance(doc_id, str) or not doc_id:
                raise ValueError(f"Document ids must be non-empty strings, got {doc_id!r} at position {position}.")
            first.setdefault(doc_id, position)
        existing = set(self.collection.get(ids=list(first), include=[])["ids"]) if first else set()
        keep = [position for doc_id, position in first.items() if doc_id not in existing]
        return keep, len(existing), len(ids) - len(first)

    def _write(
        self,
        ids: list[str],
        vectors: np.ndarray,
        documents: Sequence[str | None] | None,
        metadatas: Sequence[Mapping[str, Any] | None] | None,
    ) -> None:
        if not ids:
            return
        cleaned = None
        if metadatas is not None and any(metadatas):
            cleaned = [dict(m) if m else None for m in metadatas]
        self.collection.add(ids=ids, embeddings=vectors, documents=documents, metadatas=cleaned)  # type: ignore[arg-type]

    # ----------------------------------------------------------------------------------------------- search

    @overload
    def search(  # type: ignore[overload-overlap]  # a str is also a Sequence[str]; str comes first
        self,
        queries: str,
        *,
        k: int = ...,
        task: str | None = ...,
        instruction: str | None = ...,
        include_content: bool = ...,
    ) -> list[SearchHit]: ...

    @overload
    def search(
        self,
        queries: Sequence[str],
        *,
        k: int = ...,
        task: str | None = ...,
        instruction: str | None = ...,
        include_content: bool = ...,
    ) -> list[list[SearchHit]]: ...

    def search(
        self,
        queries: str | Sequence[str],
        *,
        k: int = 10,
        task: str | None = None,
        instruction: str | None = None,
        include_content: bool = False,
    ) -> list[SearchHit] | list[list[SearchHit]]:
        """Embed queries with the task instruction and return the ``k`` nearest documents of each, best first.

        Args:
            queries: One query (returns one ranked list) or several (returns one list per query).
            k: Documents per query; thousands are fine (the HNSW settings keep deep results exact).
            task: Task for the instruction; default the store's.
            instruction: Explicit instruction instead of ``task``; default the store's.
            include_content: Also return each hit's text and metadata.
        """
        single = isinstance(queries, str)
        texts: list[str] = [queries] if isinstance(queries, str) else list(queries)
        if task is None and instruction is None:
            task, instruction = self.task, self.instruction
        vectors = self.encoder.encode_queries(texts, task=task, instruction=instruction, show_progress=False)
        hits = self.search_by_vectors(vectors, k=k, include_content=include_content)
        return hits[0] if single else hits

    def search_by_vectors(
        self, vectors: np.ndarray, *, k: int = 10, include_content: bool = False
    ) -> list[list[SearchHit]]:
        """The ``k`` nearest documents to each query vector, best first (see :meth:`search`)."""
        queries = np.asarray(vectors, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.dimension:
            raise ValueError(
                f"Query vectors of shape {queries.shape} do not fit collection {self.name!r} ({self.dimension}-d "
                f"vectors of {self.encoder.name!r})."
            )
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        include: list[str] = ["distances", "documents", "metadatas"] if include_content else ["distances"]
        hits: list[list[SearchHit]] = []
        for start in range(0, len(queries), _QUERY_CHUNK):
            result = self.collection.query(
                query_embeddings=queries[start : start + _QUERY_CHUNK],
                n_results=k,
                include=include,  # type: ignore[arg-type]
            )
            distances = result["distances"] or []
            contents = result.get("documents")
            metadatas = result.get("metadatas")
            for row, (ids, row_distances) in enumerate(zip(result["ids"], distances, strict=True)):
                hits.append(
                    [
                        SearchHit(
                            id=doc_id,
                            score=1.0 - float(distance),
                            content=contents[row][i] if contents else None,
                            metadata=metadatas[row][i] if metadatas else None,
                        )
                        for i, (doc_id, distance) in enumerate(zip(ids, row_distances, strict=True))
                    ]
                )
        return hits

    # ----------------------------------------------------------------------------------------------- records

    def records(
        self,
        *,
        batch_size: int | None = None,
        embeddings: bool = True,
        documents: bool = True,
        metadatas: bool = True,
    ) -> Iterator[RecordBatch]:
        """Read every record of the collection in batches, in the collection's order.

        Args:
            batch_size: Records per batch; at most (and by default) Chroma's per-call limit.
            embeddings: Read the vectors.
            documents: Read the texts.
            metadatas: Read the metadata.

        Yields:
            One :class:`RecordBatch` per batch, holding only what was asked for.
        """
        size = self._chunk_size(batch_size)
        include = [
            name
            for name, wanted in (("embeddings", embeddings), ("documents", documents), ("metadatas", metadatas))
            if wanted
        ]
        for offset in range(0, self.count(), size):
            part = self.collection.get(include=include, limit=size, offset=offset)  # type: ignore[arg-type]
            yield RecordBatch(
                ids=list(part["ids"]),
                embeddings=np.asarray(part["embeddings"], dtype=np.float32).reshape(-1, self.dimension)
                if embeddings
                else None,
                documents=list(part["documents"] or []) if documents else None,
                metadatas=list(part["metadatas"] or []) if metadatas else None,
            )

    def copy(self, collection: str, *, task: str | None = None, instruction: str | None = None) -> ChromaStore:
        """Copy every record (vector, text, metadata) into a new collection in the same database, without embedding.

        The copy has this collection's HNSW settings and model record; writing to it never changes this one, which
        makes it a scratch collection (for example to inject adversarial passages). Delete it with
        :meth:`delete_collection`.

        Args:
            collection: Name of the new collection; it must not exist yet.
            task: Default task for the copy's queries; default this store's.
            instruction: Default explicit query instruction for the copy; default this store's.

        Returns:
            The store of the copy.

        Raises:
            ValueError: A collection of that name already exists.
        """
        check_collection_name(collection)
        try:
            self.client.get_collection(collection, embedding_function=None)
        except NotFoundError:
            pass
        else:
            raise ValueError(
                f"Cannot copy {self.name!r} into {collection!r}: a collection of that name already exists in "
                f"{self.location}. Choose a new name, or delete that collection first."
            )
        if task is None and instruction is None:
            task, instruction = self.task, self.instruction
        settings = self.collection.configuration_json.get("hnsw") or {}
        hnsw = {key: value for key, value in settings.items() if value is not None}
        copy = ChromaStore(
            collection, self.encoder, chroma=self.client, task=task, instruction=instruction, hnsw=hnsw
        )
        try:
            for batch in self.records():
                copy.add_embeddings(
                    batch.ids,
                    cast(np.ndarray, batch.embeddings),
                    documents=batch.documents,
                    metadatas=batch.metadatas,
                    show_progress=False,
                )
            if copy.count() != self.count():
                raise RuntimeError(
                    f"Copying {self.name!r} into {collection!r} gave {copy.count()} records instead of "
                    f"{self.count()}; was the collection written to meanwhile?"
                )
        except BaseException:
            copy.delete_collection()
            raise
        return copy

    def delete(self, ids: Sequence[str]) -> None:
        """Remove the records with these ids (ids the collection does not hold are ignored)."""
        if ids:
            self.collection.delete(ids=list(ids))

    def delete_collection(self) -> bool:
        """Delete this collection and all its records from the database; the store is unusable afterwards.

        Returns:
            Whether there was a collection to delete (deleting twice is harmless).
        """
        try:
            self.client.delete_collection(self.name)
        except (NotFoundError, ValueError):
            return False
        return True

    # ----------------------------------------------------------------------------------------------- frameworks

    def _instruction(self, task: str | None, instruction: str | None) -> dict[str, str | None]:
        if task is None and instruction is None:
            return {"task": self.task, "instruction": self.instruction}
        return {"task": task, "instruction": instruction}

    def embedding_function(
        self, *, task: str | None = None, instruction: str | None = None
    ) -> ChromaEmbeddingFunction:
        """A Chroma embedding function over this store's encoder (queries get the task instruction)."""
        encoder: Any = self.encoder
        return ChromaEmbeddingFunction.from_encoder(encoder, **self._instruction(task, instruction))

    def llama_index_embedding(self, *, task: str | None = None, instruction: str | None = None) -> LlamaIndexEmbedding:
        """A LlamaIndex embedding over this store's encoder, for the store's task unless told otherwise."""
        with _framework("LlamaIndex", "llamaindex"):
            from .integrations.llama_index import LlamaIndexEmbedding
        encoder: Any = self.encoder
        return LlamaIndexEmbedding.from_encoder(encoder, **self._instruction(task, instruction))

    def llama_index_vector_store(self) -> ChromaVectorStore:
        """A LlamaIndex ``ChromaVectorStore`` over this collection."""
        with _framework("LlamaIndex", "llamaindex"):
            from llama_index.vector_stores.chroma import ChromaVectorStore
        return ChromaVectorStore(chroma_collection=self.collection)

    def llama_index_index(self, *, task: str | None = None, instruction: str | None = None) -> VectorStoreIndex:
        """A LlamaIndex ``VectorStoreIndex`` over this collection that embeds with this store's encoder.

        Nodes inserted through it are embedded as documents and land in the same collection.
        """
        with _framework("LlamaIndex", "llamaindex"):
            from llama_index.core import VectorStoreIndex
        return VectorStoreIndex.from_vector_store(
            self.llama_index_vector_store(), embed_model=self.llama_index_embedding(task=task, instruction=instruction)
        )

    def llama_index_retriever(
        self,
        *,
        k: int = 10,
        task: str | None = None,
        instruction: str | None = None,
        hybrid: Hybrid | str | None = None,
    ) -> VectorIndexRetriever:
        """A LlamaIndex retriever returning the ``k`` nearest nodes (ids are the collection's ids).

        Its scores are LlamaIndex's ``exp(-distance)`` for Chroma, a monotone function of the cosine similarity.
        With ``hybrid`` (``"bm25"`` or a :class:`~reasonembed_rag.fusion.Hybrid`) it is a
        :class:`~reasonembed_rag.integrations.llama_index_hybrid.LlamaIndexHybridRetriever` instead: the ``k`` best
        of the dense hits fused with the collection's persisted BM25 index, scored by the fusion.
        """
        settings = Hybrid.coerce(hybrid)
        index = self.llama_index_index(task=task, instruction=instruction)
        if settings is None:
            retriever: Any = index.as_retriever(similarity_top_k=k)
            return retriever
        from .integrations.llama_index_hybrid import LlamaIndexHybridRetriever

        dense = index.as_retriever(similarity_top_k=settings.depth)
        hybrid_retriever: Any = LlamaIndexHybridRetriever(dense, collection_bm25(self), hybrid=settings, k=k)
        return hybrid_retriever

    def langchain_embeddings(self, *, task: str | None = None, instruction: str | None = None) -> LangChainEmbeddings:
        """LangChain embeddings over this store's encoder, for the store's task unless told otherwise."""
        with _framework("LangChain", "langchain"):
            from .integrations.langchain import LangChainEmbeddings
        encoder: Any = self.encoder
        return LangChainEmbeddings.from_encoder(encoder, **self._instruction(task, instruction))

    def langchain_vector_store(self, *, task: str | None = None, instruction: str | None = None) -> Chroma:
        """A LangChain ``Chroma`` vector store over this collection, sharing this store's client.

        Its relevance scores (``similarity_search_with_relevance_scores``) are cosine similarities.
        """
        with _framework("LangChain", "langchain"):
            from langchain_chroma import Chroma
        return Chroma(
            collection_name=self.name,
            embedding_function=self.langchain_embeddings(task=task, instruction=instruction),
            client=self.client,
            create_collection_if_not_exists=False,
        )

    def langchain_retriever(
        self,
        *,
        k: int = 10,
        task: str | None = None,
        instruction: str | None = None,
        hybrid: Hybrid | str | None = None,
    ) -> VectorStoreRetriever:
        """A LangChain retriever returning the ``k`` nearest documents (``Document.id`` is the collection's id).

        With ``hybrid`` (``"bm25"`` or a :class:`~reasonembed_rag.fusion.Hybrid`) it is a
        :class:`~reasonembed_rag.integrations.langchain_hybrid.LangChainHybridRetriever` instead: the ``k`` best of
        the dense hits fused with the collection's persisted BM25 index, best first.
        """
        settings = Hybrid.coerce(hybrid)
        vector_store = self.langchain_vector_store(task=task, instruction=instruction)
        if settings is None:
            return vector_store.as_retriever(search_kwargs={"k": k})
        from .integrations.langchain_hybrid import LangChainHybridRetriever

        retriever: Any = LangChainHybridRetriever(
            vector_store=vector_store, bm25=collection_bm25(self), hybrid=settings, k=k
        )
        return retriever

    def __repr__(self) -> str:
        return f"ChromaStore({self.name!r}, model={self.encoder.name!r}, location={self.location!r})"


# --------------------------------------------------------------------------------------------------- helpers


def _describe(chroma: str | os.PathLike[str] | ClientAPI | None) -> str:
    if chroma is None:
        return f"the default Chroma folder {default_chroma_path()}"
    if isinstance(chroma, ClientAPI):
        return "the given Chroma client"
    return f"Chroma at {os.fspath(chroma)}"


def _chunks(iterator: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _progress(total: int | None, description: str, show: bool | None) -> tqdm:
    return tqdm(total=total, desc=description, unit="doc", disable=None if show is None else not show)


def _as_document(item: Document | Mapping[str, Any] | tuple[str, str]) -> Document:
    if isinstance(item, Document):
        document = item
    elif isinstance(item, Mapping):
        if "id" not in item or "content" not in item:
            raise ValueError(f"A document mapping needs 'id' and 'content' keys, got keys {sorted(item)}.")
        document = Document(str(item["id"]), item["content"], item.get("metadata"))
    elif isinstance(item, tuple) and len(item) == 2:
        document = Document(str(item[0]), item[1])
    else:
        raise TypeError(
            f"Cannot index {type(item).__name__} {item!r:.80}: pass Document objects, mappings with 'id' and "
            "'content', or (id, content) pairs."
        )
    if not isinstance(document.content, str):
        raise TypeError(f"Document {document.id!r} has content of type {type(document.content).__name__}; need str.")
    return document


@contextmanager
def _framework(framework: str, extra: str) -> Iterator[None]:
    """Turn a missing framework into an ImportError that says which extra to install."""
    try:
        yield
    except ImportError as error:
        raise ImportError(
            f"{framework} is not installed ({error}); install it with: pip install 'reasonembed-rag[{extra}]'"
        ) from error
