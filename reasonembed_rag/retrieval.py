"""Retrieval over an in-memory corpus: the BM25 baseline, exact dense search, and the one exact top-k.

* :func:`exact_top_k` - the ``k`` best positions of each row of a score matrix, best first; ties go to the lower
  position, exactly as a stable full sort orders them. Every exact search in the project goes through it.
* :class:`BM25` - the lexical baseline as a retrieval model (like an encoder, it holds no corpus);
  ``BM25().index(documents)`` gives a :class:`BM25Index`. Tokenisation and parameters are those of the evaluation:
  bm25s, Lucene BM25 (k1 1.5, b 0.75), English stop words, no stemming.
* :class:`DenseIndex` - exact inner-product search over documents embedded by an encoder, held in memory (the
  evaluation's dense path searches a Chroma collection instead: :mod:`reasonembed_rag.evaluation.runner`).
* :func:`index_corpus` - a corpus made searchable by either kind of model (mining ranks candidates with it).
* :func:`load_retriever` - where a user's model name becomes an object: ``bm25`` (any case) is :class:`BM25`,
  any other name is loaded as an encoder. Code downstream holds that object, never the string.

Both indexes answer ``search(queries, k) -> [[(doc_id, score), ...], ...]``, best first (:class:`CorpusIndex`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["BM25", "BM25Index", "CorpusIndex", "DenseIndex", "exact_top_k", "index_corpus", "load_retriever"]

Ranking = list[tuple[str, float]]
"""``(doc_id, score)`` pairs, best first."""


def exact_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest scores of each row and their positions, best first.

    Ties are ordered by position, and at the ``k``-th place the lower positions are the ones kept, so the result
    equals the first ``k`` columns of a stable descending sort (``np.argsort(-scores, kind="stable")``) while
    costing a partition instead of a full sort.

    Args:
        scores: ``(queries, documents)`` scores (a 1-d array is one query).
        k: How many to keep; more than the number of documents keeps them all.

    Returns:
        ``(positions, values)``, each ``(queries, min(k, documents))``.

    Example:
        >>> exact_top_k(np.array([[0.1, 0.9, 0.5, 0.9]]), 2)
        (array([[1, 3]]), array([[0.9, 0.9]]))
    """
    scores = np.atleast_2d(np.asarray(scores))
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    width = scores.shape[1]
    k = min(k, width)
    if k < width:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        # The partition keeps an arbitrary subset of the scores tied with the k-th best; take every score at least
        # as good as it and let the stable sort below choose the lowest positions among the ties.
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
        positions = np.empty((scores.shape[0], k), dtype=np.int64)
        for row in range(scores.shape[0]):
            candidates = np.flatnonzero(scores[row] >= kth[row])
            positions[row] = candidates[np.argsort(-scores[row, candidates], kind="stable")[:k]]
    else:
        positions = np.argsort(-scores, axis=1, kind="stable")
    return positions, np.take_along_axis(scores, positions, axis=1)


class CorpusIndex(Protocol):
    """A corpus ready to be searched."""

    documents: Mapping[str, str]
    """``{id: text}`` of the corpus indexed."""

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """At most ``k`` ``(doc_id, score)`` pairs per query, best first."""
        ...


class BM25:
    """The lexical baseline as a retrieval model: ``name`` is what results are reported under.

    Example:
        >>> index = BM25().index({"a": "cats chase mice", "b": "dogs bark"})
        >>> index.search(["why do dogs bark"], k=5)
        [[('b', 0.4...)]]
    """

    name = "bm25"
    """The name a user types (``--model bm25``) and results carry."""

    def index(self, documents: Mapping[str, str], *, zero_scores: bool = False) -> BM25Index:
        """A :class:`BM25Index` over ``documents`` (``zero_scores``: see there)."""
        return BM25Index(documents, zero_scores=zero_scores)

    def __repr__(self) -> str:
        return "BM25()"


class BM25Index:
    """BM25 (bm25s, Lucene variant, English stop words, no stemming) over an in-memory corpus.

    Args:
        documents: ``{id: text}``; at least one.
        zero_scores: Fill the ``k`` places of a search with documents that share no term with the query (score 0,
            in bm25s's arbitrary order), as a dense index always returns ``k``; by default only documents with a
            positive score are returned (the evaluation's BM25).
    """

    def __init__(self, documents: Mapping[str, str], *, zero_scores: bool = False, _model: Any = None) -> None:
        try:
            import bm25s
        except ImportError as error:
            raise ImportError("BM25 needs bm25s: pip install bm25s") from error
        if not documents:
            raise ValueError("BM25 needs at least one document to index; the corpus is empty.")
        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self._bm25s = bm25s
        self.zero_scores = zero_scores
        self.documents = documents
        self.ids = list(documents)
        if _model is not None:  # a loaded index (:meth:`load`)
            self._model = _model
            return
        self._model = bm25s.BM25()
        tokens = bm25s.tokenize([documents[i] for i in self.ids], stopwords="en", show_progress=False)
        self._model.index(tokens, show_progress=False)

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write the index (bm25s's files plus ``ids.json``, not the texts) into ``folder``; :meth:`load` reads it."""
        folder = Path(folder)
        self._model.save(str(folder))
        (folder / "ids.json").write_text(json.dumps(self.ids))

    @classmethod
    def load(
        cls, folder: str | os.PathLike[str], documents: Mapping[str, str], *, zero_scores: bool = False
    ) -> BM25Index:
        """The index :meth:`save` wrote into ``folder``, over ``documents`` (the texts it was built from).

        Raises:
            ValueError: ``documents`` does not hold exactly the ids the index was built over.
        """
        folder = Path(folder)
        ids = json.loads((folder / "ids.json").read_text())
        if set(ids) != set(documents) or len(ids) != len(documents):
            raise ValueError(
                f"The BM25 index in {folder} was built over {len(ids)} other documents than the {len(documents)} "
                "given; delete that folder to rebuild it."
            )
        import bm25s

        model = bm25s.BM25.load(str(folder))
        return cls({doc_id: documents[doc_id] for doc_id in ids}, zero_scores=zero_scores, _model=model)

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """At most ``k`` documents per query, best first (more than the corpus returns the whole corpus)."""
        if not queries:
            return []
        tokens = self._bm25s.tokenize(list(queries), stopwords="en", show_progress=False)
        positions, scores = self._model.retrieve(
            tokens, k=min(k, len(self.ids)), show_progress=False, n_threads=1
        )
        return [
            [
                (self.ids[int(p)], float(s))
                for p, s in zip(row_positions, row_scores, strict=True)
                if self.zero_scores or s > 0
            ]
            for row_positions, row_scores in zip(positions, scores, strict=True)
        ]


class DenseIndex:
    """Exact inner-product (cosine: the vectors are L2-normalised) search over documents embedded by ``encoder``.

    Args:
        documents: ``{id: text}``.
        encoder: A :class:`~reasonembed_rag.ReasonEmbedEncoder` (or anything with ``encode_documents`` and
            ``encode_queries``).
        instruction: The query instruction (documents never get one).
    """

    def __init__(self, documents: Mapping[str, str], encoder: Any, *, instruction: str | None = None) -> None:
        self.documents = documents
        self.encoder = encoder
        self.instruction = instruction
        self.ids = list(documents)
        self._vectors = encoder.encode_documents([documents[i] for i in self.ids], show_progress=False)

    def search(self, queries: Sequence[str], k: int) -> list[Ranking]:
        """The ``k`` most similar documents per query, best first (ties by corpus order)."""
        if not queries:
            return []
        vectors = self.encoder.encode_queries(list(queries), instruction=self.instruction, show_progress=False)
        positions, scores = exact_top_k(vectors @ self._vectors.T, k)
        return [
            [(self.ids[int(p)], float(s)) for p, s in zip(row_positions, row_scores, strict=True)]
            for row_positions, row_scores in zip(positions, scores, strict=True)
        ]


def index_corpus(
    model: Any, documents: Mapping[str, str], *, instruction: str | None = None, zero_scores: bool = False
) -> CorpusIndex:
    """``documents`` made searchable by ``model``: a :class:`BM25Index` for :class:`BM25` (``zero_scores`` as there),
    else a :class:`DenseIndex` embedded by the encoder ``model`` (queries get ``instruction``)."""
    if isinstance(model, BM25):
        return model.index(documents, zero_scores=zero_scores)
    return DenseIndex(documents, model, instruction=instruction)


def load_retriever(model: str | Any, *, load: Callable[[str], Any] | None = None) -> Any:
    """A model the user named, as an object: :class:`BM25` for ``bm25`` (any case), else the loaded encoder.

    Args:
        model: ``bm25``, a registry alias, Hub id or model folder; an object (a loaded encoder, a :class:`BM25`) is
            returned as it is.
        load: Loads an encoder from a name (default :meth:`ReasonEmbedEncoder.from_pretrained`); callers pass their
            own to choose a device, share a cache, or pick from encoders already loaded.

    Raises:
        ModelNotAvailableError: the encoder cannot be loaded (from the default ``load``).
    """
    if not isinstance(model, str):
        return model
    if model.lower() == BM25.name:
        return BM25()
    if load is None:
        from .encoder import ReasonEmbedEncoder

        load = ReasonEmbedEncoder.from_pretrained
    return load(model)
