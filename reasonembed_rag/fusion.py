"""Hybrid retrieval: dense hits fused with BM25 hits, and the BM25 index persisted beside a Chroma collection.

* :class:`Hybrid` - the fusion settings: the lexical retriever (``bm25``), its weight (0.25, so dense gets 0.75, as in
  BGE-Reasoner's pipeline), the method (:data:`FUSIONS`) and the depth each retriever contributes.
* :func:`fuse` - THE fusion of one query's rankings; the evaluation's ``direct`` path and both frameworks' hybrid
  retrievers (:mod:`reasonembed_rag.integrations.hybrid`) call it, so every path ranks alike.
* :func:`collection_bm25` - the BM25 index over a collection's texts, loaded from disk when the collection has not
  changed since it was saved, else built and saved.

The two methods, computed exactly as ranx 0.3.21 computes them (``tests/test_fusion.py`` checks against ranx):

* ``minmax``: each retriever's top ``depth`` scores for the query are min-max normalised over that list,
  ``(s - min) / max(max - min, 1e-9)`` (ranx ``norm="min-max"``, so a list whose scores are all equal normalises
  to 0), then ``fused = (1 - weight) * dense + weight * lexical``, a document missing from a list counting 0 there
  (ranx ``method="wsum"``).
* ``rrf``: reciprocal rank fusion, ``fused = (1 - weight) / (60 + dense_rank) + weight / (60 + lexical_rank)``,
  ranks from 1 (at ``weight`` 0.5 this orders exactly as ranx ``method="rrf"`` and LangChain's
  ``EnsembleRetriever``, which weights RRF the same way).

Ties in the fused score go to the document the dense list ranks first, then to the lexical order.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .retrieval import BM25Index

__all__ = ["FUSIONS", "FUSION_DEPTH", "HYBRID_WEIGHT", "RRF_K", "Hybrid", "bm25_cache_dir", "collection_bm25", "fuse"]

Ranking = list[tuple[str, float]]
"""``(doc_id, score)`` pairs, best first."""

FUSIONS = ("minmax", "rrf")
"""Fusion methods: weighted min-max (the default) and weighted reciprocal rank fusion."""

HYBRID_WEIGHT = 0.25
"""Default weight of the lexical (BM25) ranking; the dense ranking gets ``1 - weight``."""

FUSION_DEPTH = 100
"""Default number of hits each retriever contributes to the fusion (min-max normalises over these)."""

RRF_K = 60
"""The rank offset of reciprocal rank fusion (Cormack et al. 2009; ranx's and LangChain's default)."""

LEXICAL = ("bm25",)
"""Lexical retrievers a dense one can be fused with."""

BM25_FOLDER = "reasonembed-bm25"
"""Sub-folder of an embedded Chroma folder (or of the cache folder) holding the persisted BM25 indexes."""


@dataclass(frozen=True)
class Hybrid:
    """How to fuse a dense retriever with a lexical one.

    Args:
        lexical: The lexical retriever; only ``"bm25"`` (:class:`~reasonembed_rag.retrieval.BM25`) exists.
        weight: Weight of the lexical ranking in ``[0, 1]``; the dense one gets ``1 - weight``.
        fusion: ``"minmax"`` or ``"rrf"`` (see the module docstring).
        depth: Hits each retriever contributes (the dense top ``depth`` and the BM25 top ``depth``).
    """

    lexical: str = "bm25"
    weight: float = HYBRID_WEIGHT
    fusion: str = "minmax"
    depth: int = FUSION_DEPTH

    def __post_init__(self) -> None:
        if self.lexical.lower() not in LEXICAL:
            raise ValueError(f"Unknown lexical retriever {self.lexical!r} for hybrid retrieval; use one of {LEXICAL}.")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"Hybrid weight {self.weight!r} is the lexical ranking's share; give a value in [0, 1].")
        if self.fusion not in FUSIONS:
            raise ValueError(f"Unknown fusion {self.fusion!r}; use one of {', '.join(FUSIONS)}.")
        if self.depth < 1:
            raise ValueError(f"Fusion depth must be a positive integer, got {self.depth!r}.")

    @classmethod
    def coerce(cls, hybrid: Hybrid | str | None) -> Hybrid | None:
        """``None`` stays ``None``, a lexical retriever's name (``"bm25"``) becomes the default settings."""
        if hybrid is None or isinstance(hybrid, Hybrid):
            return hybrid
        return cls(lexical=hybrid)

    @property
    def label(self) -> str:
        """How results name the pipeline, e.g. ``+bm25(minmax,0.25)``."""
        return f"+{self.lexical}({self.fusion},{self.weight:g})"


def _minmax(ranking: Ranking) -> dict[str, float]:
    if not ranking:
        return {}
    scores = [score for _, score in ranking]
    low, high = min(scores), max(scores)
    # ranx's denominator, floored so that an all-equal list normalises to 0.
    span = max(high - low, 1e-9)
    return {doc: (score - low) / span for doc, score in ranking}


def _reciprocal(ranking: Ranking) -> dict[str, float]:
    return {doc: 1.0 / (RRF_K + rank) for rank, (doc, _) in enumerate(ranking, start=1)}


def fuse(dense: Ranking, lexical: Ranking, *, hybrid: Hybrid | None = None) -> Ranking:
    """One query's dense and lexical rankings fused into one, best first.

    Args:
        dense: The dense retriever's ``(doc_id, score)`` hits, best first (cosine similarities for ``minmax``).
        lexical: The lexical retriever's hits, best first.
        hybrid: The settings (default :class:`Hybrid`); only the top ``hybrid.depth`` of each list take part.

    Returns:
        Every document of either list with its fused score, best first.

    Example:
        >>> fuse([("a", 0.9), ("b", 0.5), ("c", 0.1)], [("c", 7.0), ("b", 1.0)])
        [('a', 0.75), ('b', 0.375), ('c', 0.25)]
    """
    hybrid = hybrid or Hybrid()
    normalise = _minmax if hybrid.fusion == "minmax" else _reciprocal
    parts = (
        (normalise(dense[: hybrid.depth]), 1.0 - hybrid.weight),
        (normalise(lexical[: hybrid.depth]), hybrid.weight),
    )
    fused: dict[str, float] = {}
    for scores, weight in parts:
        for doc, score in scores.items():
            fused[doc] = fused.get(doc, 0.0) + weight * score
    # dict order is first appearance (dense order, then lexical), and the sort is stable: that is the tie-break.
    return sorted(fused.items(), key=lambda item: -item[1])


# ------------------------------------------------------------------------------------------- persisted BM25


def bm25_cache_dir(client: Any) -> Path:
    """Where the BM25 indexes of a Chroma client's collections are kept.

    Beside the collections (``<chroma folder>/reasonembed-bm25``) for an embedded database; for a server (or an
    in-memory client) a local cache folder: ``$REASONEMBED_RAG_HOME/bm25`` or ``$XDG_CACHE_HOME/reasonembed-rag/bm25``
    (default ``~/.cache``).
    """
    settings = client.get_settings()
    if getattr(settings, "is_persistent", False) and getattr(settings, "persist_directory", None):
        return Path(settings.persist_directory) / BM25_FOLDER
    home = os.environ.get("REASONEMBED_RAG_HOME")
    if home:
        return Path(home).expanduser() / "bm25"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "reasonembed-rag" / "bm25"


def collection_bm25(store: Any, *, cache: str | os.PathLike[str] | None = None) -> BM25Index:
    """The BM25 index over the texts of ``store``'s collection, loaded when saved for exactly these records.

    The index is saved under ``cache`` (default :func:`bm25_cache_dir`) in a folder named by the collection and a
    fingerprint of its ids and texts, so a changed collection gets a new index instead of a stale one; texts are
    read from the collection either way (they are the fingerprint, and the hybrid retrievers return them).

    Args:
        store: A :class:`~reasonembed_rag.store.ChromaStore` whose records hold their texts.
        cache: Folder for the indexes instead of the default.

    Raises:
        ValueError: The collection is empty or holds a record without text.
    """
    documents: dict[str, str] = {}
    for batch in store.records(embeddings=False, metadatas=False):
        for doc_id, text in zip(batch.ids, batch.documents or [None] * len(batch.ids), strict=True):
            if text is None:
                raise ValueError(
                    f"Record {doc_id!r} of collection {store.name!r} has no text, so BM25 cannot index it; "
                    "index documents with their content (ChromaStore.add_documents) to use hybrid retrieval."
                )
            documents[doc_id] = text
    if not documents:
        raise ValueError(f"Collection {store.name!r} is empty; index documents before a hybrid search.")
    digest = hashlib.sha256()
    for doc_id in sorted(documents):
        digest.update(doc_id.encode() + b"\0" + documents[doc_id].encode() + b"\1")
    folder = Path(cache) if cache is not None else bm25_cache_dir(store.client)
    target = folder / f"{store.name}-{digest.hexdigest()[:16]}"
    if (target / "ids.json").exists():
        return BM25Index.load(target, documents)
    index = BM25Index(documents)
    folder.mkdir(parents=True, exist_ok=True)
    # Save into a scratch folder and rename, so a reader never sees half an index.
    scratch = Path(tempfile.mkdtemp(prefix=f".{store.name}-", dir=folder))
    try:
        index.save(scratch)
        os.replace(scratch, target)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not (target / "ids.json").exists():
            raise
    return index
