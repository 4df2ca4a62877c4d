"""Stage 2 of ReMixer: candidate documents for each synthetic query, with its SOURCE DOCUMENT EXCLUDED.

A query written from document D matches D by surface overlap (the "triviality problem"), so D is never a candidate:
the retriever takes the top ``depth`` documents, every document that is the seed (by corpus id) or has the seed's
exact content is dropped, and the best ``keep`` remain. Retrievers: BM25 (bm25s) or any of this project's encoders
(an alias or a model folder), over the task's corpus.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .records import content_hash

BM25 = "bm25"


class Retriever(Protocol):
    """Ranks corpus documents for queries."""

    name: str

    def search(self, queries: Sequence[str], depth: int) -> list[list[str]]:
        """Document ids, best first, at most ``depth`` per query."""
        ...


class BM25Retriever:
    """BM25 (bm25s, English stop words) over a corpus."""

    def __init__(self, corpus: dict[str, str]) -> None:
        try:
            import bm25s
        except ImportError as error:
            raise ImportError("BM25 mining needs bm25s: pip install bm25s") from error
        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self.name = BM25
        self._bm25s = bm25s
        self._ids = list(corpus)
        self._model = bm25s.BM25()
        tokens = bm25s.tokenize([corpus[i] for i in self._ids], stopwords="en", show_progress=False)
        self._model.index(tokens, show_progress=False)

    def search(self, queries: Sequence[str], depth: int) -> list[list[str]]:
        if not queries:
            return []
        k = min(depth, len(self._ids))
        tokens = self._bm25s.tokenize(list(queries), stopwords="en", show_progress=False)
        indices, scores = self._model.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        results = []
        for row_indices, row_scores in zip(indices, scores, strict=True):
            # Documents with no shared term score 0 and come in arbitrary order; they are still candidates.
            results.append([self._ids[int(i)] for i, _ in zip(row_indices, row_scores, strict=True)])
        return results


class DenseRetriever:
    """Exact cosine search with a :class:`reasonembed_rag.ReasonEmbedEncoder` (queries get the task instruction)."""

    def __init__(
        self, corpus: dict[str, str], encoder: Any, *, instruction: str | None = None, name: str | None = None
    ) -> None:
        self.name = name or str(getattr(encoder, "name", "encoder"))
        self.encoder = encoder
        self.instruction = instruction
        self._ids = list(corpus)
        self._vectors = encoder.encode_documents([corpus[i] for i in self._ids], show_progress=False)

    def search(self, queries: Sequence[str], depth: int) -> list[list[str]]:
        if not queries:
            return []
        vectors = self.encoder.encode_queries(list(queries), instruction=self.instruction, show_progress=False)
        scores = vectors @ self._vectors.T
        k = min(depth, len(self._ids))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        results = []
        for row, candidates in enumerate(top):
            ordered = candidates[np.argsort(-scores[row, candidates], kind="stable")]
            results.append([self._ids[int(i)] for i in ordered])
        return results


def make_retriever(
    miner: str, corpus: dict[str, str], *, instruction: str | None = None, encoder: Any = None
) -> Retriever:
    """``bm25`` or an encoder alias / model folder (loaded with :meth:`ReasonEmbedEncoder.from_pretrained`)."""
    if not corpus:
        raise ValueError("The candidate corpus is empty; mining needs documents to search.")
    if miner == BM25:
        return BM25Retriever(corpus)
    if encoder is None:
        from reasonembed_rag import ReasonEmbedEncoder

        encoder = ReasonEmbedEncoder.from_pretrained(miner)
    return DenseRetriever(corpus, encoder, instruction=instruction, name=miner)


@dataclass(frozen=True)
class MinedCandidates:
    candidates: list[str]
    """Kept candidate ids, best first; never the source document."""
    source_excluded: int
    """How many retrieved documents were dropped for being the source (by id or identical content)."""


def exclude_source(
    ranked: Sequence[str],
    corpus: dict[str, str],
    *,
    source_id: str | None,
    source_hash: str,
    keep: int,
    corpus_hashes: dict[str, str] | None = None,
) -> MinedCandidates:
    """Drop the source document (its corpus id, and any document with its exact content) and keep the top ``keep``.

    Candidates are also unique by content (a corpus that holds one text under two ids yields it once), so no text is
    judged twice for a query or listed twice in a training row.
    """
    hashes = corpus_hashes if corpus_hashes is not None else {}
    kept: list[str] = []
    seen: set[str] = set()
    dropped = 0
    for doc_id in ranked:
        digest = hashes.get(doc_id) or content_hash(corpus[doc_id])
        if doc_id == source_id or digest == source_hash:
            dropped += 1
            continue
        if len(kept) < keep and digest not in seen:
            kept.append(doc_id)
            seen.add(digest)
    return MinedCandidates(kept, dropped)
