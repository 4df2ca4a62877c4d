"""Chroma collections of ReasonEmbed vectors, and framework vector stores and retrievers over them.

What lives here:

- :func:`get_client`: an embedded ``PersistentClient`` (default under ``$REASONEMBED_RAG_HOME/chroma``, else the
  user data dir) or, for ``http://host:port``, a client of a Chroma server.
- :class:`ChromaStore`: one collection bound to the encoder that built it. Collections are created in cosine space
  with :data:`HNSW_SETTINGS`, record the model name, dimension, query format and weights fingerprint in their
  metadata, and refuse an encoder that does not match (``reembed=True`` rebuilds one on purpose). Indexing streams
  documents in small chunks (:data:`DEFAULT_BATCH_SIZE`, so an interruption loses little), embeds only ids the
  collection does not hold yet (re-indexing a corpus embeds and adds nothing, and resumes an interrupted run), and
  shows progress. :meth:`ChromaStore.verify` finds (and re-embeds) records missing from the vector index. Search
  returns ids and cosine scores, deep enough (``k`` in the thousands) for evaluation.
- One writer at a time on an embedded folder: a store that writes holds an exclusive lock on the folder
  (:func:`lock_folder`, a file ``reasonembed-rag.lock`` in it) from before it opens the database until
  :meth:`ChromaStore.close`. Chroma's embedded database keeps part of its state in each process's memory, so two
  processes writing one folder corrupt it silently (records counted but missing from the vector index); a second
  writer waits for the first, says so, and fails clearly after ``lock_timeout`` seconds. Concurrent writers belong
  on a Chroma server (``http://...``), which takes no lock.
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

import ipaddress
import itertools
import logging
import os
import re
import weakref
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
from chromadb.errors import InternalError, NotFoundError
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from .fusion import Hybrid, collection_bm25
from .integrations.chroma import ChromaEmbeddingFunction
from .models import weights_fingerprint

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection
    from langchain_chroma import Chroma
    from langchain_core.vectorstores import VectorStoreRetriever
    from llama_index.core import VectorStoreIndex
    from llama_index.core.retrievers import VectorIndexRetriever
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from .expansion import QueryExpander
    from .integrations.langchain import LangChainEmbeddings
    from .integrations.llama_index import LlamaIndexEmbedding

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LOCK_TIMEOUT",
    "HNSW_SETTINGS",
    "ChromaStore",
    "CollectionMismatchError",
    "Document",
    "Encoder",
    "FolderLockedError",
    "IndexReport",
    "IndexingInterrupted",
    "RecordBatch",
    "SearchHit",
    "VerifyReport",
    "check_collection_name",
    "default_chroma_path",
    "get_client",
    "lock_folder",
    "recorded_model",
]

logger = logging.getLogger(__name__)

HOME_ENV = "REASONEMBED_RAG_HOME"
"""Environment variable naming this project's data folder; Chroma data goes to its ``chroma`` sub-folder."""

MODEL_KEY = "reasonembed_model"
DIMENSION_KEY = "reasonembed_dimension"
QUERY_FORMAT_KEY = "reasonembed_query_format"
WEIGHTS_KEY = "reasonembed_weights"
QUANTIZE_KEY = "reasonembed_quantize"
"""How the encoder that wrote the vectors was quantised (``none``, ``int8``, ``8bit``, ``4bit``)."""

DATABASE_FILE = "chroma.sqlite3"
LOCK_FILE = "reasonembed-rag.lock"
"""Name of the lock file a writer holds inside an embedded Chroma folder."""

DEFAULT_LOCK_TIMEOUT = 600.0
"""Seconds a writer waits for another writer's lock on an embedded folder before failing."""

DEFAULT_BATCH_SIZE = 256
"""Documents embedded and written per chunk by :meth:`ChromaStore.add_documents`: small, so that an interrupted run
loses at most one chunk of embedding work (re-running resumes after the chunks already written)."""

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
_VERIFY_CHUNK = 256


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


class FolderLockedError(TimeoutError):
    """Another writer held an embedded Chroma folder's lock for longer than the timeout."""


class IndexingInterrupted(KeyboardInterrupt):
    """Ctrl-C while indexing. The chunks written before it stay in the collection; ``report`` counts them.

    Re-running the same indexing resumes: ids already in the collection are skipped without embedding.
    """

    def __init__(self, report: IndexReport) -> None:
        super().__init__(f"interrupted after adding {report.added} documents")
        self.report = report


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
class VerifyReport:
    """What :meth:`ChromaStore.verify` found and did.

    Attributes:
        missing: Ids the collection counts (their records exist) whose vector is missing from the vector index, so
            searches never return them.
        reembedded: How many of them were embedded again from their stored text (``repair=True``).
        removed: Ids removed because no text was stored with them (added as bare vectors): index their source again
            to add them back.
    """

    missing: tuple[str, ...] = ()
    reembedded: int = 0
    removed: tuple[str, ...] = ()


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
        opens on the same folder in the same process shares the same database instead of conflicting with it. A new
        folder's database is created under the folder's lock (two processes creating it at once collide).
    """
    if isinstance(chroma, ClientAPI):
        return chroma
    url = _server_url(chroma)
    if url is not None:
        return chromadb.HttpClient(host=url[0], port=url[1], ssl=url[2])
    path = _folder_path(chroma)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"Chroma path {str(path)!r} is a file; give a folder (it is created if missing) or a server URL."
        )
    path.mkdir(parents=True, exist_ok=True)
    if (path / DATABASE_FILE).exists():
        return chromadb.PersistentClient(path=str(path))
    with lock_folder(path):
        return chromadb.PersistentClient(path=str(path))


def _server_url(chroma: str | os.PathLike[str] | None) -> tuple[str, int, bool] | None:
    """``(host, port, ssl)`` when ``chroma`` is a server address, ``None`` when it is a folder."""
    if chroma is None:
        return None
    text = os.fspath(chroma)
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        return None
    url = urlsplit(text)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"Chroma server address {text!r} must look like http://host:port or https://host:port.")
    if url.path not in ("", "/"):
        raise ValueError(f"Chroma server address {text!r} has a path; give only http://host:port.")
    try:
        port = url.port or (443 if url.scheme == "https" else 8000)
    except ValueError as error:
        raise ValueError(f"Chroma server address {text!r} has an invalid port: {error}.") from error
    return url.hostname, port, url.scheme == "https"


def _folder_path(chroma: str | os.PathLike[str] | None) -> Path:
    return (default_chroma_path() if chroma is None else Path(os.fspath(chroma))).expanduser()


def _embedded_folder(chroma: str | os.PathLike[str] | ClientAPI | None) -> Path | None:
    """The folder of an embedded database (from a path or a client's settings); ``None`` for a Chroma server."""
    if isinstance(chroma, ClientAPI):
        settings = chroma.get_settings()
        if settings.is_persistent and settings.persist_directory and "fastapi" not in str(settings.chroma_api_impl):
            return Path(settings.persist_directory)
        return None
    return None if _server_url(chroma) is not None else _folder_path(chroma)


_LOCKS: dict[str, FileLock] = {}
"""One lock object per folder in this process: re-entrant, so several stores of one process share a folder."""


def _acquire_lock(folder: Path, timeout: float | None) -> FileLock:
    """Take the folder's writer lock, saying so when another writer holds it; see :func:`lock_folder`."""
    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    lock = _LOCKS.setdefault(str(folder), FileLock(folder / LOCK_FILE, thread_local=False))
    try:
        lock.acquire(timeout=0)
        return lock
    except Timeout:
        pass
    wait = "without a time limit" if timeout is None or timeout < 0 else f"up to {timeout:g} s"
    logger.warning(
        "waiting for the lock on %s held by another writer (%s): an embedded Chroma folder takes one writer at a time",
        folder,
        wait,
    )
    try:
        lock.acquire(timeout=-1 if timeout is None else timeout)
    except Timeout:
        raise FolderLockedError(
            f"Another writer held the lock on the Chroma folder {folder} ({folder / LOCK_FILE}) for over "
            f"{timeout:g} s. Wait for it to finish and run again, or allow a longer wait (lock_timeout=, CLI "
            f"--lock-timeout). Writers that must run at the same time belong on a Chroma server: "
            f"`chroma run --path {folder}` and pass http://localhost:8000 instead of the folder."
        ) from None
    logger.warning("got the lock on %s", folder)
    return lock


@contextmanager
def lock_folder(folder: str | os.PathLike[str], *, timeout: float | None = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive writer lock of an embedded Chroma folder for the duration of the block.

    Chroma's embedded database keeps part of a collection's state (its vector index) in each process's memory, so
    two processes writing one folder lose vectors silently. Every :class:`ChromaStore` that writes holds this lock;
    hold it too around your own writes through ``chromadb.PersistentClient`` on a folder the project also writes.
    The lock is re-entrant within a process and released by the operating system if the process dies.

    Args:
        folder: The Chroma folder (created if missing).
        timeout: Seconds to wait for another writer (a warning says it is waiting); ``None`` waits for ever.

    Raises:
        FolderLockedError: Another writer kept the lock longer than ``timeout``.
    """
    lock = _acquire_lock(Path(folder), timeout)
    try:
        yield
    finally:
        lock.release()


def check_collection_name(name: str) -> str:
    """Return ``name`` if Chroma accepts it as a collection name, else raise a ValueError saying what is allowed.

    Chroma's rules: 3-512 characters from ``[a-zA-Z0-9._-]``, starting and ending with a letter or digit, no two
    periods in a row, and not an IPv4 address.
    """
    rule = (
        "use 3-512 characters from [a-zA-Z0-9._-], starting and ending with a letter or digit, with no '..' and not "
        "an IP address (for example 'theoremqa_theorems' or 'my-corpus.v2')"
    )
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(f"Collection name {name!r} is not valid in Chroma: {rule}.")
    if ".." in name:
        raise ValueError(f"Collection name {name!r} has two periods in a row, which Chroma refuses: {rule}.")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return name
    raise ValueError(f"Collection name {name!r} is an IP address, which Chroma refuses: {rule}.")


def recorded_model(collection: str, *, chroma: str | os.PathLike[str] | ClientAPI | None = None) -> str | None:
    """The model name a collection was built with, or ``None`` if it does not exist, records none or is empty.

    An empty collection (left by a failed first indexing) binds no model: :class:`ChromaStore` rebuilds it for
    whichever encoder writes to it first.
    """
    client = get_client(chroma)
    try:
        found = client.get_collection(check_collection_name(collection), embedding_function=None)
        if found.count() == 0:
            return None
    except (NotFoundError, ValueError):
        return None
    finally:
        if not isinstance(chroma, ClientAPI):
            # A client left open keeps this process's view of the folder, which a writer opened later must not share.
            _close_client(client)
    model = (found.metadata or {}).get(MODEL_KEY)
    return model if isinstance(model, str) else None


def _close_client(client: ClientAPI) -> None:
    close = getattr(client, "close", None)
    if close is not None:
        close()


def model_metadata(encoder: Encoder) -> dict[str, str | int]:
    """The collection metadata that records which model (and which weights of it) built a collection."""
    return {
        MODEL_KEY: encoder.name,
        DIMENSION_KEY: int(encoder.dimension),
        QUERY_FORMAT_KEY: encoder.query_format,
        WEIGHTS_KEY: encoder_fingerprint(encoder),
        QUANTIZE_KEY: encoder_quantization(encoder),
    }


def encoder_quantization(encoder: Encoder) -> str:
    """How ``encoder`` is quantised (``ReasonEmbedEncoder.quantize``), ``none`` when it is not."""
    return str(getattr(encoder, "quantize", None) or "none")


def encoder_fingerprint(encoder: Encoder) -> str:
    """The fingerprint of an encoder's weight files (:func:`~reasonembed_rag.models.weights_fingerprint`).

    ``-`` for an encoder with no local ``source`` (a Hub model: its name pins the weights).
    """
    return weights_fingerprint(getattr(encoder, "source", None))


class ChromaStore:
    """One Chroma collection of vectors from one encoder.

    A store that writes to an embedded folder holds the folder's writer lock (:func:`lock_folder`): from its
    creation when ``create=True``, else from its first write, until :meth:`close` (or until it is garbage collected).
    Use it as a context manager to release the lock as soon as the work is done.

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
        reembed: Delete the collection if it exists and create it anew for this encoder: the deliberate way to
            re-embed a corpus after the model changed (index the documents again afterwards).
        lock_timeout: Seconds to wait for another writer's lock on an embedded folder (``None``: no limit).

    Raises:
        CollectionMismatchError: The collection was built by a different model, dimension, query format or
            weights.
        FolderLockedError: Another process kept the folder's writer lock for longer than ``lock_timeout``.
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
        reembed: bool = False,
        lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        check_collection_name(collection)
        if reembed and not create:
            raise ValueError("reembed=True rebuilds the collection, so it needs create=True.")
        encoder.resolve_instruction(task=task, instruction=instruction)
        self.encoder = encoder
        self.task = task
        self.instruction = instruction
        self.location = _describe(chroma)
        self.lock_timeout = lock_timeout
        self._fingerprint: str | None = None
        self._chroma = chroma
        self._owns_client = not isinstance(chroma, ClientAPI)
        self._folder = _embedded_folder(chroma)
        self._held: list[FileLock] = []
        self._finalizer = weakref.finalize(self, _release_locks, self._held)
        try:
            if create and self._folder is not None:
                # Before the client opens the database: a view of the folder read before the lock may predate
                # another writer's last writes, and writing from it loses theirs.
                self._held.append(_acquire_lock(self._folder, lock_timeout))
            elif not create and self._folder is not None and not (self._folder / DATABASE_FILE).exists():
                raise self._missing(collection)  # no database to open, and a reader creates none
            self.client = get_client(chroma)
            if reembed:
                self._delete_collection(collection)
            try:
                self.collection: Collection = self.client.get_collection(collection, embedding_function=None)
            except NotFoundError:
                if not create:
                    raise self._missing(collection) from None
                self.collection = self._create(collection, hnsw)
            problem = self._identity_problem()
            if problem and create and MODEL_KEY in (self.collection.metadata or {}) and self.count() == 0:
                # An empty collection holds no vectors to mix up. A failed or interrupted first indexing leaves one,
                # and it must not bind the next attempt to the model that failed.
                logger.info("rebuilding the empty collection %r for %r", collection, encoder.name)
                self._delete_collection(collection)
                self.collection = self._create(collection, hnsw)
                problem = None
            if problem:
                raise CollectionMismatchError(problem)
        except BaseException:
            self.close()
            raise

    def _missing(self, name: str) -> LookupError:
        return LookupError(
            f"No collection {name!r} in {self.location}. Index documents into it first "
            f"(reasonembed-rag index ... --collection {name}) or pass create=True."
        )

    def _create(self, name: str, hnsw: Mapping[str, Any] | None) -> Collection:
        configuration: CreateCollectionConfiguration = {
            "hnsw": cast(CreateHNSWConfiguration, {**HNSW_SETTINGS, **(hnsw or {}), "space": "cosine"}),
            "embedding_function": self.embedding_function(),
        }
        return self.client.get_or_create_collection(
            name, configuration=configuration, metadata=model_metadata(self.encoder), embedding_function=None
        )

    # ----------------------------------------------------------------------------------------------- identity

    @property
    def name(self) -> str:
        """The collection's name."""
        return self.collection.name

    @property
    def dimension(self) -> int:
        """Vector dimension of the collection (the encoder's)."""
        return int(self.encoder.dimension)

    @property
    def weights_fingerprint(self) -> str:
        """Fingerprint of the encoder's weight files, recorded in the collection (``-`` for a Hub model)."""
        if self._fingerprint is None:
            self._fingerprint = encoder_fingerprint(self.encoder)
        return self._fingerprint

    def _identity_problem(self) -> str | None:
        """Why the collection's vectors do not fit this store's encoder (a message for the user), or ``None``."""
        metadata = self.collection.metadata or {}
        model = metadata.get(MODEL_KEY)
        if model is None:
            return (
                f"Collection {self.name!r} in {self.location} was not created by reasonembed-rag: its metadata "
                f"records no model, so its vectors cannot be checked against {self.encoder.name!r}. Use another "
                f"collection name, or delete it (client.delete_collection({self.name!r})) and index again."
            )
        dimension = metadata.get(DIMENSION_KEY)
        query_format = metadata.get(QUERY_FORMAT_KEY)
        if model != self.encoder.name:
            return (
                f"Collection {self.name!r} in {self.location} was built with model {model!r} ({dimension}-d), but the "
                f"encoder is {self.encoder.name!r} ({self.encoder.dimension}-d); their vectors cannot be mixed. Load "
                f"{model!r} to search it (CLI: --model {model}), or index into another collection."
            )
        if dimension != self.encoder.dimension:
            return (
                f"Collection {self.name!r} in {self.location} holds {dimension}-d vectors of {model!r}, but this "
                f"{model!r} encoder makes {self.encoder.dimension}-d vectors: the model changed since indexing. Index "
                "into a new collection."
            )
        if query_format != self.encoder.query_format:
            return (
                f"Collection {self.name!r} in {self.location} was built with {model!r} using query format "
                f"{query_format!r}, but this encoder uses {self.encoder.query_format!r}: the model changed since "
                "indexing. Load the model with the recorded query format, or index into a new collection."
            )
        recorded = metadata.get(WEIGHTS_KEY)
        if recorded is not None and recorded != self.weights_fingerprint:
            return (
                f"Collection {self.name!r} in {self.location} was built with weights {recorded} of {model!r}, but the "
                f"{model!r} loaded now has weights {self.weights_fingerprint}: the model was trained again or "
                "replaced since indexing, and old and new vectors cannot be mixed. Re-embed the collection on "
                f"purpose (CLI: reasonembed-rag index SOURCE --collection {self.name} --reembed; Python: "
                "ChromaStore(..., reembed=True) and index again), load the weights that built it, or index into "
                "another collection."
            )
        return None

    def count(self) -> int:
        """Number of vectors in the collection."""
        return int(self.collection.count())

    @property
    def max_batch_size(self) -> int:
        """Most records Chroma accepts in one add call (5461 for the embedded database)."""
        return int(self.client.get_max_batch_size())

    def collection_names(self) -> list[str]:
        """Names of every collection in this store's database (this one included), sorted."""
        return sorted(collection.name for collection in self.client.list_collections())

    @property
    def holds_lock(self) -> bool:
        """Whether this store holds its embedded folder's writer lock, so no other process writes to the database.

        ``False`` on a Chroma server (which takes no lock) and for an embedded store that has not written yet.
        """
        return bool(self._held)

    # ----------------------------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Release the folder's writer lock and close the client this store opened (idempotent).

        Close a store once it and the framework objects built from it are no longer used: other processes can then
        write to the folder.
        """
        _release_locks(self._held)
        client = getattr(self, "client", None)
        if self._owns_client and client is not None:
            _close_client(client)

    def __enter__(self) -> ChromaStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ensure_writer(self) -> None:
        """Take the folder's writer lock before a write by a store that was opened without it (``create=False``)."""
        if self._folder is None or self._held:
            return
        self._held.append(_acquire_lock(self._folder, self.lock_timeout))
        if self._owns_client:
            # Reopen: this process's view of the folder was read before the lock and may predate another writer.
            _close_client(self.client)
            self.client = get_client(self._chroma)
            self.collection = self.client.get_collection(self.collection.name, embedding_function=None)

    def _delete_collection(self, name: str) -> None:
        try:
            self.client.delete_collection(name)
        except NotFoundError:
            pass

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
        collection first, so re-indexing a corpus embeds and adds nothing, and at most one chunk is in memory. Each
        chunk is written as soon as it is embedded, so an interrupted run keeps every chunk before the interruption
        and a re-run resumes from there.

        Args:
            documents: :class:`Document` objects, mappings with ``id`` and ``content`` (optional ``metadata``), or
                ``(id, content)`` pairs. Ids must be non-empty strings (no conversion: ``1`` and ``"1"`` would
                otherwise merge). A generator is read lazily.
            batch_size: Documents per chunk (default :data:`DEFAULT_BATCH_SIZE`); at most Chroma's per-call limit.
            show_progress: Show a progress bar; ``None`` shows one when writing to a terminal.
            total: Number of documents, for the progress bar when ``documents`` has no ``len()``.

        Returns:
            How many documents were added and how many were skipped, and why.

        Raises:
            IndexingInterrupted: Ctrl-C; its ``report`` counts the documents written before it.
        """
        chunk_size = self.write_chunk_size(DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
        if total is None and isinstance(documents, Sized):
            total = len(documents)
        self._ensure_writer()
        report = IndexReport()
        position = 0
        try:
            with progress_bar(total, f"Indexing {self.name}", show_progress) as bar:
                for chunk in _chunks(iter(documents), chunk_size):
                    records = [as_document(item, position + i) for i, item in enumerate(chunk)]
                    position += len(chunk)
                    keep, present, duplicates = self.missing_positions([record.id for record in records])
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
        except KeyboardInterrupt as interrupt:
            raise IndexingInterrupted(report) from interrupt
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
        self._ensure_writer()
        report = IndexReport()
        chunk_size = self.write_chunk_size(None)
        try:
            with progress_bar(len(ids), f"Adding to {self.name}", show_progress) as bar:
                for start in range(0, len(ids), chunk_size):
                    stop = min(start + chunk_size, len(ids))
                    chunk_ids = list(ids[start:stop])
                    keep, present, duplicates = self.missing_positions(chunk_ids, offset=start)
                    rows = [start + i for i in keep]
                    self._write(
                        [chunk_ids[i] for i in keep],
                        vectors[rows],
                        None if documents is None else [documents[i] for i in rows],
                        None if metadatas is None else [metadatas[i] for i in rows],
                    )
                    report += IndexReport(len(keep), present, duplicates)
                    bar.update(stop - start)
        except KeyboardInterrupt as interrupt:
            raise IndexingInterrupted(report) from interrupt
        return report

    def verify(self, *, repair: bool = False, show_progress: bool | None = None) -> VerifyReport:
        """Find records the collection counts whose vector is missing from its vector index; optionally repair them.

        Two processes writing one embedded folder at once (before this project locked it) leave such records: they
        are counted and re-indexing skips them as present, but no search returns them and
        ``get(include=["embeddings"])`` fails with "Error finding id".

        Args:
            repair: Embed each missing record again from its stored text and write it back; records stored without
                text (bare vectors) are removed, so that indexing their source again adds them.
            show_progress: Show a progress bar; ``None`` shows one when writing to a terminal.
        """
        if repair:
            self._ensure_writer()
        page = self.max_batch_size
        missing: list[str] = []
        with progress_bar(self.count(), f"Verifying {self.name}", show_progress) as bar:
            for batch in self.records(embeddings=False, documents=False, metadatas=False):
                for start in range(0, len(batch), _VERIFY_CHUNK):
                    missing += self._missing_vectors(batch.ids[start : start + _VERIFY_CHUNK])
                bar.update(len(batch))
        if not repair or not missing:
            return VerifyReport(tuple(missing))
        reembedded, removed = 0, []
        for start in range(0, len(missing), page):
            part = missing[start : start + page]
            stored = self.collection.get(ids=part, include=["documents", "metadatas"])
            self.collection.delete(ids=part)
            blank: list[Any] = [None] * len(stored["ids"])
            texts: list[str | None] = list(stored["documents"] or blank)
            metadatas: list[Any] = list(stored["metadatas"] or blank)
            keep = [i for i, text in enumerate(texts) if text is not None]
            removed += [doc_id for doc_id, text in zip(stored["ids"], texts, strict=True) if text is None]
            vectors = np.empty((len(keep), self.dimension), dtype=np.float32)
            for first in range(0, len(keep), _EMBED_CHUNK):
                rows = keep[first : first + _EMBED_CHUNK]
                vectors[first : first + len(rows)] = self.encoder.encode_documents(
                    [cast(str, texts[i]) for i in rows], show_progress=False
                )
            self._write(
                [stored["ids"][i] for i in keep],
                vectors,
                [cast(str, texts[i]) for i in keep],
                [metadatas[i] for i in keep],
            )
            reembedded += len(keep)
        return VerifyReport(tuple(missing), reembedded, tuple(removed))

    def _missing_vectors(self, ids: list[str]) -> list[str]:
        """The ids among ``ids`` whose vector cannot be read, by halving the batches that fail."""
        try:
            self.collection.get(ids=ids, include=["embeddings"])
            return []
        except InternalError:
            if len(ids) == 1:
                return ids
            half = len(ids) // 2
            return self._missing_vectors(ids[:half]) + self._missing_vectors(ids[half:])

    def write_chunk_size(self, batch_size: int | None) -> int:
        """Rows per write: ``batch_size`` capped at the backend's per-call limit (the limit when None)."""
        limit = self.max_batch_size
        if batch_size is None:
            return limit
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        return min(batch_size, limit)

    def missing_positions(self, ids: Sequence[str], *, offset: int = 0) -> tuple[list[int], int, int]:
        """Which of ``ids`` to add: the positions of the first occurrence of each id the collection lacks, then how
        many ids it already holds and how many repeat an earlier one in ``ids``. Writers outside this class (Ray
        indexing) use it to send only missing documents; ``offset`` shifts the positions named in errors.

        Raises:
            ValueError: an id is not a non-empty string.
        """
        first: dict[str, int] = {}
        for position, doc_id in enumerate(ids):
            if not isinstance(doc_id, str) or not doc_id:
                raise ValueError(
                    f"Document ids must be non-empty strings, got {doc_id!r} at position {offset + position}."
                )
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
        metadata = self.collection.metadata or {}
        quantization = encoder_quantization(self.encoder)
        recorded = metadata.get(QUANTIZE_KEY)
        if recorded is not None and recorded != quantization:
            raise CollectionMismatchError(
                f"Collection {self.name!r} in {self.location} holds vectors of {self.encoder.name!r} quantised as "
                f"{recorded!r}, but this encoder is quantised as {quantization!r}: its vectors differ slightly, and "
                "one collection must not mix the two. Load the model as it was indexed (CLI: "
                f"{'no --quantize' if recorded == 'none' else '--quantize ' + recorded}), re-embed the collection "
                f"on purpose (--reembed), or index into another collection. Searching it this way is allowed."
            )
        missing = {
            key: value
            for key, value in ((WEIGHTS_KEY, self.weights_fingerprint), (QUANTIZE_KEY, quantization))
            if key not in metadata
        }
        if missing:
            # A collection from before these were recorded: record what writes to it from now on.
            self.collection.modify(metadata={**metadata, **missing})
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
        # Chroma returns the whole collection for a k beyond its size, but a k beyond 32 bits overflows there.
        k = min(k, max(self.count(), 1))
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
        size = self.write_chunk_size(batch_size)
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
        copy = ChromaStore(collection, self.encoder, chroma=self.client, task=task, instruction=instruction, hnsw=hnsw)
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
        self._ensure_writer()
        if ids:
            self.collection.delete(ids=list(ids))

    def delete_collection(self) -> bool:
        """Delete this collection and all its records from the database; the store is unusable afterwards.

        Returns:
            Whether there was a collection to delete (deleting twice is harmless).
        """
        try:
            self._ensure_writer()
            self.client.delete_collection(self.name)
        except (NotFoundError, ValueError):
            return False
        return True

    # ----------------------------------------------------------------------------------------------- frameworks

    def _instruction(self, task: str | None, instruction: str | None) -> dict[str, str | None]:
        if task is None and instruction is None:
            return {"task": self.task, "instruction": self.instruction}
        return {"task": task, "instruction": instruction}

    def _instruction_text(self, task: str | None, instruction: str | None) -> str | None:
        """The instruction text queries get (for a query expander's prompt): the given one, else the task's."""
        chosen = self._instruction(task, instruction)
        resolve = getattr(self.encoder, "resolve_instruction", None)
        if chosen["instruction"] is not None or resolve is None:
            return chosen["instruction"]
        text: str | None = resolve(task=chosen["task"])
        return text

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
        expand: QueryExpander | None = None,
    ) -> VectorIndexRetriever:
        """A LlamaIndex retriever returning the ``k`` nearest nodes (ids are the collection's ids).

        Its scores are LlamaIndex's ``exp(-distance)`` for Chroma, a monotone function of the cosine similarity.
        With ``hybrid`` (``"bm25"`` or a :class:`~reasonembed_rag.fusion.Hybrid`) it is a
        :class:`~reasonembed_rag.integrations.llama_index_hybrid.LlamaIndexHybridRetriever` instead: the ``k`` best
        of the dense hits fused with the collection's persisted BM25 index, scored by the fusion. With ``expand``
        (a :class:`~reasonembed_rag.expansion.QueryExpander`) that retriever is wrapped in a
        :class:`~reasonembed_rag.integrations.llama_index_expansion.LlamaIndexExpandingRetriever`: each query is
        searched followed by the LLM's reasoning sketch (on both sides of a hybrid).
        """
        settings = Hybrid.coerce(hybrid)
        index = self.llama_index_index(task=task, instruction=instruction)
        retriever: Any
        if settings is None:
            retriever = index.as_retriever(similarity_top_k=k)
        else:
            from .integrations.llama_index_hybrid import LlamaIndexHybridRetriever

            dense = index.as_retriever(similarity_top_k=settings.depth)
            retriever = LlamaIndexHybridRetriever(dense, collection_bm25(self), hybrid=settings, k=k)
        if expand is None:
            return retriever
        from .integrations.llama_index_expansion import LlamaIndexExpandingRetriever

        expanding: Any = LlamaIndexExpandingRetriever(
            retriever, expand, instruction=self._instruction_text(task, instruction)
        )
        return expanding

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
        expand: QueryExpander | None = None,
    ) -> VectorStoreRetriever:
        """A LangChain retriever returning the ``k`` nearest documents (``Document.id`` is the collection's id).

        With ``hybrid`` (``"bm25"`` or a :class:`~reasonembed_rag.fusion.Hybrid`) it is a
        :class:`~reasonembed_rag.integrations.langchain_hybrid.LangChainHybridRetriever` instead: the ``k`` best of
        the dense hits fused with the collection's persisted BM25 index, best first. With ``expand`` (a
        :class:`~reasonembed_rag.expansion.QueryExpander`) that retriever is wrapped in a
        :class:`~reasonembed_rag.integrations.langchain_expansion.LangChainExpandingRetriever`: each query is
        searched followed by the LLM's reasoning sketch (on both sides of a hybrid).
        """
        settings = Hybrid.coerce(hybrid)
        vector_store = self.langchain_vector_store(task=task, instruction=instruction)
        retriever: Any
        if settings is None:
            retriever = vector_store.as_retriever(search_kwargs={"k": k})
        else:
            from .integrations.langchain_hybrid import LangChainHybridRetriever

            retriever = LangChainHybridRetriever(
                vector_store=vector_store, bm25=collection_bm25(self), hybrid=settings, k=k
            )
        if expand is None:
            return cast("VectorStoreRetriever", retriever)
        from .integrations.langchain_expansion import LangChainExpandingRetriever

        expanding: Any = LangChainExpandingRetriever(
            retriever=retriever, expander=expand, instruction=self._instruction_text(task, instruction)
        )
        return cast("VectorStoreRetriever", expanding)

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


def progress_bar(total: int | None, description: str, show: bool | None) -> tqdm:
    """The indexing progress bar (documents); ``show=None`` shows it only on a terminal."""
    return tqdm(total=total, desc=description, unit="doc", disable=None if show is None else not show)


def _release_locks(held: list[FileLock]) -> None:
    while held:
        held.pop().release()


def as_document(item: Document | Mapping[str, Any] | tuple[str, str], position: int | None = None) -> Document:
    """One input item as a :class:`Document`; ``position`` (0-based, in the whole input) names it in errors."""
    where = "A document" if position is None else f"Document {position + 1} of the input"
    if isinstance(item, Document):
        document = item
    elif isinstance(item, Mapping):
        if "id" not in item or "content" not in item:
            raise ValueError(f"{where}: a document mapping needs 'id' and 'content' keys, got keys {sorted(item)}.")
        document = Document(item["id"], item["content"], item.get("metadata"))
    elif isinstance(item, tuple) and len(item) == 2:
        document = Document(item[0], item[1])
    else:
        raise TypeError(
            f"Cannot index {type(item).__name__} {item!r:.80} ({where.lower()}): pass Document objects, mappings "
            "with 'id' and 'content', or (id, content) pairs."
        )
    if not isinstance(document.id, str) or not document.id:
        raise TypeError(
            f"{where} has id {document.id!r} ({type(document.id).__name__}); ids must be non-empty strings. They are "
            "not converted, because 1 and '1' (or null and 'None') would then name the same document: convert them "
            "before indexing if that is what you mean."
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
