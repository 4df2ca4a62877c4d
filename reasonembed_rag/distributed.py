"""Embedding beyond one machine with Ray Data: :func:`embed_dataset` and :func:`index_with_ray`.

:func:`embed_dataset` adds a vector column to a Ray dataset with ``map_batches`` over an actor pool: one encoder per
GPU (``num_gpus=1``) when the cluster has GPUs, else one per CPU worker. Ray Data restarts an actor that dies and
retries its batches (``max_restarts=-1``, ``max_task_retries=-1``), so a lost worker costs time, not documents.

:func:`index_with_ray` is what ``reasonembed-rag index --ray`` runs: the driver reads the documents (the same reader
and validation as a single-process ``index``), drops ids the collection already holds, lets the actor pool embed the
rest and writes the vectors back from the driver through :meth:`ChromaStore.add_embeddings` in idempotent batches.
The driver is the one writer, so an embedded Chroma folder needs no extra locking, and a killed job resumes where its
last written batch ended.

Ray is an optional extra (``pip install 'reasonembed-rag[ray]'``); it is imported when a function runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .store import ChromaStore, Document, IndexReport, as_document, progress_bar

if TYPE_CHECKING:
    import ray.data

    from .store import Encoder

__all__ = ["RayIndexReport", "connect", "embed_dataset", "index_with_ray"]

# Documents per map_batches call: large enough to keep an encoder busy, small enough that a restarted actor redoes
# little work.
DEFAULT_BATCH_SIZE = 256

EncoderFactory = Callable[[], "Encoder"]


@dataclass(frozen=True)
class RayIndexReport:
    """What :func:`index_with_ray` did: the store's report, the embedding workers and the throughput.

    ``seconds`` runs from submitting the job to the last write; ``startup_seconds`` to the first write (actors
    started, models loaded, one batch embedded), after which ``after_first`` documents were added.
    """

    report: IndexReport
    workers: int
    seconds: float
    startup_seconds: float = 0.0
    after_first: int = 0

    @property
    def documents_per_second(self) -> float:
        """Documents embedded and written per second of the whole Ray job (0 when nothing was embedded)."""
        return self.report.added / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_documents_per_second(self) -> float:
        """Documents per second after the first write: the pool's rate without actor start-up and model loading."""
        steady = self.seconds - self.startup_seconds
        return self.after_first / steady if steady > 0 and self.after_first else 0.0


def connect(address: str | None = None, **init_kwargs: Any) -> None:
    """Start or join a Ray cluster unless this process is already connected.

    Args:
        address: ``"local"`` (or None) starts a Ray instance on this machine; anything else (``"auto"``,
            ``"ray://host:10001"``, ``"host:6379"``) joins that cluster.
        init_kwargs: Passed to ``ray.init`` (e.g. ``num_cpus=2``, ``_temp_dir=...``).
    """
    ray = _import_ray()
    if ray.is_initialized():
        return
    ray.init(address=None if address in (None, "local") else address, **init_kwargs)


class _EmbedActor:
    """One encoder per actor; called with a batch of columns, returns it with the vector column added."""

    def __init__(
        self, model: str | EncoderFactory, column: str, vector_column: str, load_kwargs: Mapping[str, Any]
    ) -> None:
        if callable(model):
            self.encoder = model()
        else:
            from .encoder import ReasonEmbedEncoder

            self.encoder = ReasonEmbedEncoder.from_pretrained(model, **load_kwargs)
        self.column = column
        self.vector_column = vector_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(text) for text in batch[self.column]]
        vectors = self.encoder.encode_documents(texts, show_progress=False)
        return {**batch, self.vector_column: np.asarray(vectors, dtype=np.float32)}


def embed_dataset(
    dataset: ray.data.Dataset,
    *,
    model: str | EncoderFactory,
    column: str = "content",
    vector_column: str = "vector",
    workers: int | None = None,
    num_gpus: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dtype: str | None = None,
    max_length: int | None = None,
) -> ray.data.Dataset:
    """The dataset with a column of L2-normalised document vectors, embedded by a pool of encoder actors.

    Lazy, like every Ray Data transform: nothing runs until the result is consumed.

    Args:
        dataset: A Ray dataset with a text column.
        model: Registry alias, Hub id or model folder (each actor loads it with
            :meth:`ReasonEmbedEncoder.from_pretrained <reasonembed_rag.encoder.ReasonEmbedEncoder.from_pretrained>`),
            or a function without arguments that returns an encoder (pickled to each actor).
        column: The text column.
        vector_column: Name of the added column (float32 rows of the model's dimension).
        workers: Actors in the pool (default: one per GPU of the cluster, else one per CPU).
        num_gpus: GPUs per actor (default: 1 when the cluster has GPUs, else 0 and each actor takes one CPU).
        batch_size: Rows per ``map_batches`` call.
        dtype: Model dtype for each actor (float32, bfloat16, float16, auto).
        max_length: Maximum tokens per text.

    Raises:
        ImportError: Ray is not installed (install the ``ray`` extra).
    """
    ray = _import_ray()
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    resources = ray.cluster_resources() if ray.is_initialized() else {}
    if num_gpus is None:
        num_gpus = 1 if resources.get("GPU", 0) >= 1 else 0
    if workers is None:
        workers = int(resources.get("GPU", 0) // num_gpus) if num_gpus else int(resources.get("CPU", 1))
    if workers < 1:
        raise ValueError(
            f"workers must be at least 1, got {workers} (cluster resources: {resources}); pass workers=N or join a "
            "cluster with CPUs/GPUs."
        )
    load_kwargs = {"dtype": dtype, "max_length": max_length}
    return dataset.map_batches(
        _EmbedActor,
        fn_constructor_args=(model, column, vector_column, load_kwargs),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=num_gpus or None,
        num_cpus=None if num_gpus else 1,
    )


def index_with_ray(
    store: ChromaStore,
    documents: Iterable[Document | Mapping[str, Any] | tuple[str, str]],
    *,
    model: str | EncoderFactory,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    write_batch_size: int | None = None,
    dtype: str | None = None,
    max_length: int | None = None,
    show_progress: bool | None = None,
    total: int | None = None,
) -> RayIndexReport:
    """Embed the documents the collection lacks on the connected Ray cluster and add them from this process.

    Call :func:`connect` first. Ids already in the collection (and repeated ids) are dropped before anything is sent
    to Ray; the vectors come back in batches written with :meth:`ChromaStore.add_embeddings`, which skips ids present
    by then, so a job killed part-way and run again adds only what is missing, without duplicates.

    Args:
        store: The collection to fill; its encoder must be the model the actors load (same name).
        documents: :class:`Document` objects, mappings with ``id`` and ``content``, or ``(id, content)`` pairs.
        model: What each actor loads (see :func:`embed_dataset`).
        workers: Actors in the pool (default: one per GPU, else one per CPU).
        batch_size: Documents per actor call.
        write_batch_size: Vectors per write (default and at most: Chroma's per-call limit).
        dtype: Model dtype for each actor.
        max_length: Maximum tokens per text.
        show_progress: Show a progress bar with documents per second; ``None`` shows one on a terminal.
        total: Number of documents, for the progress bar.

    Returns:
        The store's report (added, already present, repeated ids), the number of workers and the seconds taken.
    """
    ray = _import_ray()
    chunk = store.write_chunk_size(write_batch_size)
    pending: list[Document] = []
    seen: set[str] = set()
    report = IndexReport()
    batch: list[Document] = []

    def flush() -> None:
        nonlocal report
        keep, present, duplicates = store.missing_positions([record.id for record in batch])
        pending.extend(batch[i] for i in keep)
        report += IndexReport(0, present, duplicates)
        batch.clear()

    for item in documents:
        record = as_document(item)
        if record.id in seen:
            report += IndexReport(0, 0, 1)
            continue
        seen.add(record.id)
        batch.append(record)
        if len(batch) >= chunk:
            flush()
    flush()
    resources = ray.cluster_resources()
    if workers is None:
        workers = int(resources.get("GPU", 0)) or int(resources.get("CPU", 1))
    workers = max(1, min(workers, -(-len(pending) // batch_size))) if pending else workers
    start = time.perf_counter()
    first_write: float | None = None
    after_first = 0
    if pending:
        dataset = ray.data.from_items(
            [{"id": record.id, "content": record.content} for record in pending],
            override_num_blocks=max(workers, -(-len(pending) // batch_size)),
        )
        embedded = embed_dataset(
            dataset, model=model, workers=workers, batch_size=batch_size, dtype=dtype, max_length=max_length
        )
        metadata = {record.id: record.metadata for record in pending if record.metadata}
        size = total if total is not None else len(pending)
        with progress_bar(size, f"Indexing {store.name} (Ray)", show_progress) as bar:
            bar.unit = "doc"
            bar.update(report.already_present + report.duplicates)
            for rows in embedded.iter_batches(batch_size=chunk, batch_format="numpy"):
                ids = [str(doc_id) for doc_id in rows["id"]]
                written = store.add_embeddings(
                    ids,
                    np.stack(list(rows["vector"])).astype(np.float32),
                    documents=[str(text) for text in rows["content"]],
                    metadatas=[metadata.get(doc_id) for doc_id in ids] if metadata else None,
                    show_progress=False,
                )
                report += written
                bar.update(len(ids))
                if first_write is None:
                    first_write = time.perf_counter() - start
                else:
                    after_first += written.added
    return RayIndexReport(report, workers, time.perf_counter() - start, first_write or 0.0, after_first)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the data library is a separate import
    except ImportError as error:
        raise ImportError(
            "Distributed embedding needs Ray Data: pip install 'reasonembed-rag[ray]' (ray[data])."
        ) from error
    return ray
