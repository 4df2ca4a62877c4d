"""Stage 2 of ReMixer: candidate documents for each synthetic query, with its SOURCE DOCUMENT EXCLUDED.

A query written from document D matches D by surface overlap (the "triviality problem"), so D is never a candidate:
the retriever takes the top ``depth`` documents, every document that is the seed (by corpus id) or has the seed's
exact content is dropped, and the best ``keep`` remain. Retrievers (:mod:`reasonembed_rag.retrieval`): BM25 or any
of this project's encoders (an alias or a model folder, exact search), over the task's corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reasonembed_rag.retrieval import BM25, CorpusIndex, index_corpus, load_retriever

from .records import content_hash

DEFAULT_MINER = BM25.name
"""``--miner bm25``."""


class Retriever(Protocol):
    """Ranks corpus documents for queries."""

    @property
    def name(self) -> str:
        """As the user named it; recorded with each query's candidates."""
        ...

    def search(self, queries: Sequence[str], depth: int) -> list[list[str]]:
        """Document ids, best first, at most ``depth`` per query."""
        ...


@dataclass(frozen=True)
class Miner:
    """A searchable corpus (:mod:`reasonembed_rag.retrieval`) that answers candidate ids, under the miner's name."""

    name: str
    """As the user named the miner (``bm25``, an alias, a folder); recorded with each query's candidates."""
    index: CorpusIndex

    def search(self, queries: Sequence[str], depth: int) -> list[list[str]]:
        """Document ids, best first, at most ``depth`` per query."""
        return [[doc_id for doc_id, _ in ranking] for ranking in self.index.search(queries, depth)]


def make_retriever(
    miner: str, corpus: dict[str, str], *, instruction: str | None = None, encoder: Any = None
) -> Retriever:
    """``bm25`` or an encoder alias / model folder (``encoder``, when given, is that model already loaded).

    BM25 fills each ranking with documents that share no term with the query (score 0): they are still candidates.
    """
    if not corpus:
        raise ValueError("The candidate corpus is empty; mining needs documents to search.")
    model = load_retriever(miner, load=None if encoder is None else lambda _: encoder)
    return Miner(miner, index_corpus(model, corpus, instruction=instruction, zero_scores=True))


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
