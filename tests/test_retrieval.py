"""The in-memory retrievers and the exact top-k search (reasonembed_rag.retrieval)."""

from __future__ import annotations

import numpy as np
import pytest

from reasonembed_rag.retrieval import BM25, BM25Index, DenseIndex, exact_top_k, index_corpus, load_retriever

CORPUS = {
    "pythagoras": "In a right triangle the square of the hypotenuse equals the sum of the squares of the legs.",
    "fermat": "Fermat's little theorem: a^p is congruent to a modulo a prime p.",
    "am-gm": "The arithmetic mean of non-negative reals is at least their geometric mean.",
    "euclid": "There are infinitely many primes: multiply them all and add one.",
    "circle": "The area of a circle is pi times the square of its radius.",
    "triangle": "The area of a triangle is half the base times the height.",
}
QUERIES = ["square of the hypotenuse of a right triangle", "how many primes are there", "area of a circle", "zebra"]


def _bm25s_reference(documents: dict[str, str], queries: list[str], k: int) -> list[list[tuple[str, float]]]:
    """The evaluation's BM25 as it was written before it moved into reasonembed_rag.retrieval."""
    import bm25s

    ids = list(documents)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([documents[i] for i in ids], stopwords="en", show_progress=False), show_progress=False
    )
    tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False)
    positions, scores = retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
    return [
        [(ids[int(p)], float(s)) for p, s in zip(positions[row], scores[row], strict=True) if s > 0]
        for row in range(len(queries))
    ]


def test_bm25_ranks_as_the_evaluation_did():
    index = BM25().index(CORPUS)
    ranked = index.search(QUERIES, 4)
    assert ranked == _bm25s_reference(CORPUS, QUERIES, 4)
    assert [doc for doc, _ in ranked[0]] == ["pythagoras", "triangle", "circle"]
    assert [doc for doc, _ in ranked[1]] == ["euclid"]  # no stemming: "primes" does not match fermat's "prime"
    assert [doc for doc, _ in ranked[2]] == ["circle", "triangle"]  # "area" is shared, "circle" is not
    assert ranked[3] == []  # no shared term: nothing, not arbitrary zero-score documents
    assert all(score > 0 for ranking in ranked for _, score in ranking)
    assert all([s for _, s in r] == sorted((s for _, s in r), reverse=True) for r in ranked)


def test_bm25_zero_scores_fill_the_depth_and_keep_the_positive_ranking_first():
    plain = BM25().index(CORPUS).search(QUERIES, 5)
    filled = BM25().index(CORPUS, zero_scores=True).search(QUERIES, 5)
    for short, full in zip(plain, filled, strict=True):
        assert len(full) == 5 and full[: len(short)] == short
        assert all(score == 0 for _, score in full[len(short) :])
    assert len(BM25Index(CORPUS, zero_scores=True).search(["zebra"], 100)[0]) == len(CORPUS)  # depth capped


def test_bm25_rejects_an_empty_corpus_and_answers_no_query_with_nothing():
    with pytest.raises(ValueError, match="at least one document"):
        BM25().index({})
    assert BM25().index(CORPUS).search([], 10) == []


def test_load_retriever_parses_bm25_once_and_loads_anything_else():
    assert isinstance(load_retriever("bm25"), BM25) and isinstance(load_retriever("BM25"), BM25)
    assert load_retriever("bm25").name == "bm25"
    loaded: list[str] = []
    marker = object()
    assert load_retriever("some-model", load=lambda name: loaded.append(name) or marker) is marker
    assert loaded == ["some-model"]
    model = BM25()
    assert load_retriever(model) is model  # an object passes through


def test_dense_index_is_an_exact_search_with_ties_in_corpus_order():
    from .stub_encoders import TinyEncoder

    encoder = TinyEncoder()
    corpus = {**CORPUS, "copy-of-circle": CORPUS["circle"]}
    index = index_corpus(encoder, corpus, instruction="Find the theorem.")
    assert isinstance(index, DenseIndex)
    (ranking,) = index.search(["area of a circle"], 4)
    scores = encoder.encode_queries(["area of a circle"], instruction="Find the theorem.") @ encoder.encode_documents(
        list(corpus.values())
    ).T
    order = np.argsort(-scores[0], kind="stable")[:4]
    assert ranking == [(list(corpus)[i], float(scores[0, i])) for i in order]
    ids = [doc for doc, _ in index.search(["area of a circle"], len(corpus))[0]]
    assert ids.index("copy-of-circle") == ids.index("circle") + 1  # equal vectors tie; corpus order decides


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7, 8, 20])
def test_exact_top_k_equals_a_stable_full_sort_including_ties(k):
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, size=(50, 8)).astype(np.float32)  # few values: ties everywhere, also at place k
    positions, values = exact_top_k(scores, k)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(positions, order)
    np.testing.assert_array_equal(values, np.take_along_axis(scores, order, axis=1))


def test_exact_top_k_takes_one_query_as_a_vector_and_checks_k():
    positions, values = exact_top_k(np.array([0.1, 0.9, 0.5, 0.9]), 2)
    assert positions.tolist() == [[1, 3]] and values.tolist() == [[0.9, 0.9]]
    with pytest.raises(ValueError, match="positive integer"):
        exact_top_k(np.zeros((1, 3)), 0)
