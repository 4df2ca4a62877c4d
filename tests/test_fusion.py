"""Hybrid retrieval (issue 13 item 5): the fusion math, the persisted BM25 index, the framework retrievers, and the
three evaluation paths agreeing on the offline CHAMP task."""

from __future__ import annotations

import random
import re

import pytest

from reasonembed_rag.fusion import RRF_K, Hybrid, collection_bm25, fuse
from reasonembed_rag.retrieval import BM25Index

DOCS = {
    "pigeonhole": "The pigeonhole principle: n + 1 objects in n boxes put two objects in one box.",
    "vieta": "Vieta's formulas relate the roots of a polynomial to its coefficients: sum and product of roots.",
    "am-gm": "The AM-GM inequality: the arithmetic mean is at least the geometric mean of nonnegative numbers.",
    "fermat": "Fermat's little theorem: a^p is congruent to a modulo a prime p.",
    "euclid": "Euclid's algorithm finds the greatest common divisor of two integers by repeated division.",
    "induction": "Mathematical induction proves a statement for every natural number from a base case and a step.",
}
QUERY = "Which prime p divides a^p - a, and what is the greatest common divisor of the roots' product and p?"


# ------------------------------------------------------------------------------------------- the math


def test_minmax_fusion_by_hand():
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    lexical = [("c", 7.0), ("d", 4.0), ("b", 1.0)]
    # dense normalised: a 1, b 0.5, c 0; lexical: c 1, d 0.5, b 0
    fused = dict(fuse(dense, lexical))
    assert fused == pytest.approx({"a": 0.75, "b": 0.375, "c": 0.25, "d": 0.125})
    assert [doc for doc, _ in fuse(dense, lexical)] == ["a", "b", "c", "d"]
    # BM25 at weight 0.75 puts its own best first
    assert [doc for doc, _ in fuse(dense, lexical, hybrid=Hybrid(weight=0.75))] == ["c", "d", "a", "b"]


def test_rrf_fusion_by_hand():
    dense = [("a", 0.9), ("b", 0.5)]
    lexical = [("b", 3.0), ("c", 2.0)]
    fused = dict(fuse(dense, lexical, hybrid=Hybrid(fusion="rrf", weight=0.5)))
    assert fused == pytest.approx(
        {"a": 0.5 / (RRF_K + 1), "b": 0.5 / (RRF_K + 2) + 0.5 / (RRF_K + 1), "c": 0.5 / (RRF_K + 2)}
    )


def test_depth_limits_each_list_and_ties_follow_dense_order():
    dense = [("a", 1.0), ("b", 0.5), ("c", 0.0)]
    fused = fuse(dense, [("z", 2.0), ("y", 1.0), ("x", 0.5)], hybrid=Hybrid(depth=2))
    # only the top 2 of each take part, and min-max runs over those 2: a 1 and b 0, z 1 and y 0
    assert fused == [("a", 0.75), ("z", 0.25), ("b", 0.0), ("y", 0.0)]
    # equal scores keep first appearance: the dense order, then the lexical order
    assert fuse([("a", 1.0), ("b", 1.0)], [("c", 3.0)]) == [("a", 0.0), ("b", 0.0), ("c", 0.0)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"weight": 1.5}, "in \\[0, 1\\]"),
        ({"fusion": "borda"}, "minmax, rrf"),
        ({"lexical": "splade"}, "Unknown lexical"),
        ({"depth": 0}, "positive"),
    ],
)
def test_hybrid_settings_are_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        Hybrid(**settings)


def _random_runs(seed: int, queries: int = 5) -> tuple[list, list]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(40)]
    dense, lexical = [], []
    for _ in range(queries):
        dense.append(sorted(((d, rng.uniform(-0.2, 0.9)) for d in rng.sample(docs, 25)), key=lambda h: -h[1]))
        lexical.append(sorted(((d, rng.uniform(0.1, 20.0)) for d in rng.sample(docs, 18)), key=lambda h: -h[1]))
    return dense, lexical


@pytest.mark.parametrize("method", ["minmax", "rrf"])
def test_fusion_equals_ranx(method):
    ranx = pytest.importorskip("ranx")
    dense, lexical = _random_runs(7)
    runs = [
        ranx.Run({f"q{i}": dict(ranking) for i, ranking in enumerate(rankings)}, name=name)
        for rankings, name in ((dense, "dense"), (lexical, "bm25"))
    ]
    if method == "minmax":
        hybrid = Hybrid(weight=0.25)
        fused = ranx.fuse(runs, norm="min-max", method="wsum", params={"weights": [0.75, 0.25]})
    else:  # ranx's RRF is unweighted: equal weights order the same (each score is half ranx's)
        hybrid = Hybrid(fusion="rrf", weight=0.5)
        fused = ranx.fuse(runs, norm=None, method="rrf", params={"k": RRF_K})
    scale = 0.5 if method == "rrf" else 1.0
    for i, (d, lx) in enumerate(zip(dense, lexical, strict=True)):
        ours = dict(fuse(d, lx, hybrid=hybrid))
        theirs = {doc: scale * score for doc, score in fused.to_dict()[f"q{i}"].items()}
        assert ours == pytest.approx(theirs, abs=1e-9)


# ------------------------------------------------------------------------------------------- persisted BM25


@pytest.fixture
def small_store(tmp_path, minilm):
    from reasonembed_rag.store import ChromaStore

    store = ChromaStore("theorems", minilm, chroma=tmp_path / "chroma")
    store.add_documents(DOCS.items(), show_progress=False)
    return store


@pytest.mark.slow
def test_bm25_saved_beside_the_collection_is_loaded_not_rebuilt(small_store, tmp_path, monkeypatch):
    import bm25s

    first = collection_bm25(small_store)
    saved = list((tmp_path / "chroma" / "reasonembed-bm25").iterdir())
    assert [folder.name.startswith("theorems-") for folder in saved] == [True]

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the BM25 index was rebuilt instead of loaded")

    monkeypatch.setattr(bm25s.BM25, "index", no_rebuild)
    second = collection_bm25(small_store)
    assert second.search([QUERY], 3) == first.search([QUERY], 3)
    assert second.search([QUERY], 1)[0][0][0] == "euclid"
    monkeypatch.undo()

    ramsey = ("ramsey", "Ramsey's theorem: colour the edges of a complete graph")
    small_store.add_documents([ramsey], show_progress=False)
    third = collection_bm25(small_store)  # the collection changed: a new index, saved beside the old one
    assert "ramsey" in third.documents
    assert len(list((tmp_path / "chroma" / "reasonembed-bm25").iterdir())) == 2


def test_bm25_load_refuses_other_documents(tmp_path):
    index = BM25Index(DOCS)
    index.save(tmp_path / "bm25")
    with pytest.raises(ValueError, match="delete that folder"):
        BM25Index.load(tmp_path / "bm25", {"other": "text"})


# ------------------------------------------------------------------------------------------- framework retrievers


def _expected(store, hybrid: Hybrid) -> list[tuple[str, float]]:
    dense = [(hit.id, hit.score) for hit in store.search(QUERY, k=hybrid.depth)]
    lexical = BM25Index(DOCS).search([QUERY], hybrid.depth)[0]
    return fuse(dense, lexical, hybrid=hybrid)


@pytest.mark.slow
@pytest.mark.parametrize("hybrid", [Hybrid(depth=2), Hybrid(fusion="rrf", weight=0.5, depth=2)])
def test_framework_retrievers_return_the_fused_order(small_store, hybrid):
    expected = _expected(small_store, hybrid)
    # MiniLM ranks fermat, euclid; BM25 euclid, vieta: the fusion brings in vieta, which the dense top 2 lacks
    assert len(expected) == 3 and "vieta" in dict(expected)

    nodes = small_store.llama_index_retriever(k=3, hybrid=hybrid).retrieve(QUERY)
    assert [(n.node.node_id, n.score) for n in nodes] == [(d, pytest.approx(s, abs=1e-5)) for d, s in expected]
    assert all(n.node.get_content() == DOCS[n.node.node_id] for n in nodes)

    documents = small_store.langchain_retriever(k=3, hybrid=hybrid).invoke(QUERY)
    assert [(str(d.id), d.metadata["fused_score"]) for d in documents] == [
        (d, pytest.approx(s, abs=1e-5)) for d, s in expected
    ]
    assert all(d.page_content == DOCS[str(d.id)] for d in documents)


@pytest.mark.slow
def test_plain_retrievers_unchanged_without_hybrid(small_store):
    nodes = small_store.llama_index_retriever(k=2).retrieve(QUERY)
    assert [n.node.node_id for n in nodes] == [hit.id for hit in small_store.search(QUERY, k=2)]


# ------------------------------------------------------------------------------------------- evaluation paths


@pytest.fixture(scope="module")
def offline_chroma(tmp_path_factory):
    """One Chroma folder for the offline CHAMP runs below, so its 545 documents are embedded once."""
    return str(tmp_path_factory.mktemp("chroma-offline"))


@pytest.mark.slow
@pytest.mark.parametrize("fusion", ["minmax", "rrf"])
def test_three_paths_agree_on_offline_champ(offline_chroma, minilm, fusion):
    from reasonembed_rag.evaluation.runner import evaluate
    from reasonembed_rag.evaluation.tasks import load_tasks

    tasks = load_tasks("offline", None)
    hybrid = Hybrid(fusion=fusion)
    results = {
        via: evaluate(tasks, minilm, via=via, chroma=offline_chroma, hybrid=hybrid)[0]
        for via in ("direct", "llamaindex", "langchain")
    }
    dense = evaluate(tasks, minilm, chroma=offline_chroma)[0]
    assert results["direct"].model == "minilm-l6" + hybrid.label
    # the fusion changes the ranking (else agreement would be trivially the dense one)
    assert results["direct"].run != dense.run
    for via in ("llamaindex", "langchain"):
        assert results[via].metrics["ndcg@10"] == pytest.approx(results["direct"].metrics["ndcg@10"], abs=0.002)


def test_bm25_cannot_be_fused_with_itself(tmp_path):
    from reasonembed_rag.evaluation.runner import evaluate
    from reasonembed_rag.evaluation.tasks import load_tasks

    with pytest.raises(ValueError, match="give an encoder"):
        evaluate(load_tasks("offline", None), "bm25", hybrid="bm25")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "bm25", "--hybrid", "bm25"], "give an encoder"),
        (["--model", "minilm-l6", "--hybrid", "bm25", "--hybrid-weight", "1.5"], "in \\[0, 1\\]"),
    ],
)
def test_bright_hybrid_flags_refuse_bad_settings(flags, message, capsys):
    from reasonembed_rag.cli import main

    assert main(["bright", *flags]) == 2
    assert re.search(message, capsys.readouterr().err)
