"""BRIGHT evaluation: metrics, loaders, the three retrieval paths, the CLI and the demo report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from reasonembed_rag.cli import main
from reasonembed_rag.evaluation.data import (
    TaskDataError,
    load_anserini_topics,
    load_folder_task,
)
from reasonembed_rag.evaluation.metrics import evaluate_run
from reasonembed_rag.evaluation.offline import (
    CHAMP_OOD_TASK,
    CHAMP_TASK,
    CHAMP_TRAIN_TASK,
    build_offline_tasks,
    champ_ood_rows,
    champ_split,
)
from reasonembed_rag.evaluation.runner import evaluate_bm25, evaluate_dense

SHARED_BRIGHT = Path(__file__).resolve().parents[2] / "shared" / "data" / "bright"


# --------------------------------------------------------------------------------------------- metrics


def test_ndcg_hand_computed_with_excluded_ids():
    qrels = {"q1": {"d1": 1, "d2": 1}}
    run = {"q1": {"x": 0.9, "d1": 0.8, "y": 0.7, "d2": 0.6}}
    ideal = 1 + 1 / math.log2(3)
    mean, _ = evaluate_run(run, qrels, {"q1": ["x"]})
    assert mean["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / ideal, abs=1e-6)  # d1, y, d2
    ignored, _ = evaluate_run(run, qrels)
    assert ignored["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal, abs=1e-6)
    assert mean["recall@10"] == 1.0


def test_ndcg_is_capped_at_k_unlike_llamaindex():
    """15 gold documents, 10 retrieved, all relevant: pytrec_eval's nDCG@10 is 1.0 (LlamaIndex's NDCG says 0.775)."""
    qrels = {"q": {f"g{i}": 1 for i in range(15)}}
    run = {"q": {f"g{i}": 1.0 - i / 100 for i in range(10)}}
    mean, _ = evaluate_run(run, qrels)
    assert mean["ndcg@10"] == pytest.approx(1.0)
    assert mean["recall@10"] == pytest.approx(10 / 15)


def test_queries_without_hits_count_as_zero_and_top_k_is_kept():
    qrels = {"a": {"d1": 1}, "b": {"d2": 1}}
    run = {"a": {"d1": 1.0}}
    mean, per_query = evaluate_run(run, qrels)
    assert per_query["b"]["ndcg@10"] == 0.0 and mean["ndcg@10"] == pytest.approx(0.5)
    deep = {"a": {**{f"n{i}": 2.0 for i in range(5)}, "d1": 1.0}}
    assert evaluate_run(deep, {"a": {"d1": 1}}, keep=5)[0]["recall@100"] == 0.0


# --------------------------------------------------------------------------------------------- loaders


@pytest.mark.skipif(not SHARED_BRIGHT.exists(), reason="shared BRIGHT examples not present")
def test_loader_on_real_bright_rows():
    files = sorted(SHARED_BRIGHT.glob("topics.bright-*-original.jsonl.gz"))
    assert len(files) == 12
    counts = {}
    for path in files:
        task, queries = load_anserini_topics(path)
        counts[task] = len(queries)
        assert all(q.gold_ids and "N/A" not in q.gold_ids and "N/A" not in q.excluded_ids for q in queries)
    assert counts == {
        "aops": 111,
        "biology": 103,
        "earth_science": 116,
        "economics": 103,
        "leetcode": 142,
        "pony": 112,
        "psychology": 101,
        "robotics": 101,
        "stackoverflow": 117,
        "sustainable_living": 108,
        "theoremqa_questions": 194,
        "theoremqa_theorems": 76,
    }
    _, leetcode = load_anserini_topics(SHARED_BRIGHT / "topics.bright-leetcode-original.jsonl.gz")
    assert sum(len(q.excluded_ids) for q in leetcode) / len(leetcode) > 100
    _, pony_long = load_anserini_topics(SHARED_BRIGHT / "topics.bright-pony-original.jsonl.gz", long=True)
    assert pony_long and all(q.gold_ids for q in pony_long)
    _, aops_long = load_anserini_topics(SHARED_BRIGHT / "topics.bright-aops-original.jsonl.gz", long=True)
    assert aops_long == []  # "N/A" long gold ids: no query in the long setting


def _write_task(root: Path, name: str, examples: list, documents: list) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in examples))
    (folder / "documents.jsonl").write_text("".join(json.dumps(r) + "\n" for r in documents))
    return root


TINY_DOCS = [
    {"id": "pigeonhole", "content": "Pigeonhole principle: if n+1 objects go into n boxes, a box holds two objects."},
    {"id": "vieta", "content": "Vieta's formulas relate the coefficients of a polynomial to sums of its roots."},
    {"id": "am-gm", "content": "For non-negative reals the arithmetic mean is at least the geometric mean."},
    {"id": "fermat", "content": "Fermat's little theorem: a^p is congruent to a modulo a prime p."},
    {"id": "euclid", "content": "There are infinitely many primes: multiply them all and add one."},
    {"id": "dup-of-vieta", "content": "Sum of the roots of x^2 + bx + c is -b and their product is c."},
]
TINY_EXAMPLES = [
    {
        "id": "1",
        "query": "13 socks in 12 colours: must two share a colour?",
        "gold_ids": ["pigeonhole"],
        "excluded_ids": ["N/A"],
    },
    {
        "id": "2",
        "query": "The roots of x^2 - 5x + 6 add up to what?",
        "gold_ids": ["vieta", "dup-of-vieta"],
        "excluded_ids": ["dup-of-vieta"],
    },
    {"id": "3", "query": "What is 3^100 mod 7?", "gold_ids": ["fermat"], "excluded_ids": []},
    {"id": "4", "query": "Minimise x + 1/x for x > 0.", "gold_ids": ["am-gm"], "excluded_ids": ["euclid"]},
]


def test_folder_errors_name_task_row_and_field(tmp_path):
    with pytest.raises(TaskDataError, match="is missing. Tasks found under"):
        load_folder_task(tmp_path, "nothing")
    _write_task(tmp_path, "bad", [{"id": "1", "gold_ids": ["a"]}], [{"id": "a", "content": "x"}])
    with pytest.raises(TaskDataError, match=r"examples.jsonl:1: missing field 'query' \(task bad\)"):
        load_folder_task(tmp_path, "bad")
    _write_task(tmp_path, "gold", [{"id": "1", "query": "q", "gold_ids": ["zz"]}], [{"id": "a", "content": "x"}])
    with pytest.raises(TaskDataError, match="Task gold, query '1': gold ids not in the corpus: zz"):
        load_folder_task(tmp_path, "gold")
    _write_task(
        tmp_path,
        "dup",
        [{"id": "1", "query": "q", "gold_ids": ["a"]}],
        [{"id": "a", "content": "x"}, {"id": "a", "content": "y"}],
    )
    with pytest.raises(TaskDataError, match="documents.jsonl:2: duplicate document id 'a'"):
        load_folder_task(tmp_path, "dup")
    folder = _write_task(tmp_path, "json", [], [{"id": "a", "content": "x"}]) / "json"
    (folder / "examples.jsonl").write_text('{"id": "1", "query": "q", "gold_ids": ["a"]}\n{oops\n')
    with pytest.raises(TaskDataError, match=r"examples.jsonl:2: not valid JSON"):
        load_folder_task(tmp_path, "json")
    _write_task(tmp_path, "ids", [{"id": "1", "query": "q", "gold_ids": 7}], [{"id": "a", "content": "x"}])
    with pytest.raises(TaskDataError, match="field 'gold_ids': expected a list of ids"):
        load_folder_task(tmp_path, "ids")


def test_instruction_file_and_default(tmp_path):
    _write_task(tmp_path, "biology", TINY_EXAMPLES[:1], TINY_DOCS)
    assert load_folder_task(tmp_path, "biology").instruction.startswith("Given a Biology post")
    _write_task(tmp_path, "mine", TINY_EXAMPLES[:1], TINY_DOCS)
    (tmp_path / "mine" / "instruction.txt").write_text("Given a puzzle, retrieve the principle.\n")
    assert load_folder_task(tmp_path, "mine").instruction == "Given a puzzle, retrieve the principle."


def test_offline_champ_task_is_split_and_real(tmp_path):
    root = build_offline_tasks(tmp_path)
    test, train = load_folder_task(root, CHAMP_TASK), load_folder_task(root, CHAMP_TRAIN_TASK)
    assert len(test.documents) == 89 and len(test.queries) + len(train.queries) == 223
    assert {q.id for q in test.queries}.isdisjoint({q.id for q in train.queries})
    assert all(champ_split(q.id) == "test" for q in test.queries)
    assert all(q.gold_answer for q in test.queries)

    ood = load_folder_task(root, CHAMP_OOD_TASK)
    validation, training, held_out = champ_ood_rows()
    assert len(ood.documents) == 89 and len(ood.queries) == len(validation) == 42
    assert {q.id for q in ood.queries} <= {q.id for q in train.queries}  # TRAIN side only, never a TEST problem
    assert {q.id for q in ood.queries}.isdisjoint({row["id"] for row in training})
    assert all(q.id.startswith(("P_Combinatorics_", "P_Inequality_")) for q in ood.queries)
    assert {g for q in ood.queries for g in q.gold_ids} == set(held_out)
    assert not {g for row in training for g in row["gold_ids"]} & set(held_out)  # no held-out concept is trained
    with pytest.raises(ValueError, match="choose CHAMP categories"):
        champ_ood_rows(("Geometry",))


# --------------------------------------------------------------------------------------------- paths


@pytest.mark.slow
def test_three_paths_agree_and_second_run_embeds_nothing(tmp_path, minilm):
    root = _write_task(tmp_path / "data", "tiny_math", TINY_EXAMPLES, TINY_DOCS)
    task = load_folder_task(root, "tiny_math", instruction="Given a Math problem, retrieve the theorem.")
    chroma = str(tmp_path / "chroma")
    results = {
        via: evaluate_dense(task, minilm, via=via, chroma=chroma) for via in ("direct", "llamaindex", "langchain")
    }
    assert results["direct"].documents_embedded == len(TINY_DOCS)
    assert results["llamaindex"].documents_embedded == 0 and results["langchain"].documents_embedded == 0
    for via in ("llamaindex", "langchain"):
        assert results[via].metrics["ndcg@10"] == pytest.approx(results["direct"].metrics["ndcg@10"], abs=0.002)
        for query in task.queries:
            direct_top = sorted(results["direct"].run[query.id], key=results["direct"].run[query.id].get)[::-1]
            framework_top = sorted(results[via].run[query.id], key=results[via].run[query.id].get)[::-1]
            assert framework_top == direct_top
    assert "dup-of-vieta" in results["direct"].run["2"]  # retrieved, then excluded before scoring
    assert results["direct"].per_query["1"]["ndcg@10"] == 1.0  # the pigeonhole principle is found


def test_bm25_baseline(tmp_path):
    root = _write_task(tmp_path, "tiny_math", TINY_EXAMPLES, TINY_DOCS)
    result = evaluate_bm25(load_folder_task(root, "tiny_math"))
    assert result.model == "bm25" and 0.0 <= result.metrics["ndcg@10"] <= 1.0 and result.queries == 4


@pytest.mark.slow
def test_bright_cli_writes_contract_json(tmp_path, capsys):
    root = _write_task(tmp_path / "data", "tiny_math", TINY_EXAMPLES, TINY_DOCS)
    out = tmp_path / "results.json"
    args = [
        "bright",
        "--data",
        str(root),
        "--tasks",
        "tiny_math",
        "--model",
        "minilm-l6",
        "--via",
        "langchain",
        "--chroma",
        str(tmp_path / "chroma"),
        "--instruction",
        "Given a Math problem, retrieve the theorem.",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    payload = json.loads(out.read_text())
    assert payload["model"] == "minilm-l6" and payload["via"] == "langchain"
    assert set(payload["tasks"]["tiny_math"]) >= {"ndcg@10", "recall@10", "recall@100", "queries"}
    assert set(payload["mean"]) == {"ndcg@10", "recall@10", "recall@100"}
    assert 0.0 <= payload["mean"]["ndcg@10"] <= 1.0
    assert "| tiny_math | minilm-l6 | langchain |" in capsys.readouterr().out
    assert main(["bright", "--data", str(tmp_path / "missing"), "--model", "bm25"]) == 2


def test_retrained_model_in_the_same_folder_is_embedded_again(tmp_path):
    """Cached document vectors belong to the weights, not the name: retraining into a folder must not reuse them."""
    from reasonembed_rag.encoder import ReasonEmbedEncoder
    from reasonembed_rag.evaluation.runner import collection_name

    from .tiny_models import build_tiny_decoder

    root = _write_task(tmp_path / "data", "tiny_math", TINY_EXAMPLES, TINY_DOCS)
    task = load_folder_task(root, "tiny_math")
    folder = build_tiny_decoder(tmp_path / "model", seed=0)
    chroma = str(tmp_path / "chroma")
    first = ReasonEmbedEncoder.from_pretrained(str(folder), device="cpu")
    before = evaluate_dense(task, first, chroma=chroma)
    assert before.documents_embedded == len(TINY_DOCS)
    assert evaluate_dense(task, first, chroma=chroma).documents_embedded == 0  # same weights: cached
    old_name = collection_name(task, first)

    build_tiny_decoder(folder, seed=1)  # "trained again" into the same folder
    second = ReasonEmbedEncoder.from_pretrained(str(folder), device="cpu")
    assert second.name == first.name
    assert collection_name(task, second) != old_name
    after = evaluate_dense(task, second, chroma=chroma)
    assert after.documents_embedded == len(TINY_DOCS)
    assert after.run != before.run


def test_exact_search_read_in_chunks_equals_one_stable_sort_with_ties(tmp_path, monkeypatch):
    """The direct path reads the collection in chunks; the top-k it keeps equals one stable sort over all vectors,
    ties (repeated vectors, also across chunk edges) in collection order."""
    from reasonembed_rag.evaluation import runner
    from reasonembed_rag.store import ChromaStore

    from .stub_encoders import TinyEncoder

    rng = np.random.default_rng(0)
    distinct = rng.integers(-2, 3, size=(4, 8)).astype(np.float32)
    vectors = distinct[rng.integers(0, 4, size=23)]  # 23 vectors, 4 distinct: ties everywhere
    ids = [f"doc-{i:02d}" for i in range(len(vectors))]
    store = ChromaStore("chunked-exact", TinyEncoder(), chroma=str(tmp_path / "db"))
    store.add_embeddings(ids, vectors)
    queries = rng.integers(-2, 3, size=(5, 8)).astype(np.float32)
    monkeypatch.setattr(runner, "_EXACT_CHUNK", 5)
    ranked = runner._exact_search(store, queries, 7)
    scores = queries @ vectors.T
    for row, hits in enumerate(ranked):
        order = np.argsort(-scores[row], kind="stable")[:7]
        assert hits == [(ids[i], float(scores[row, i])) for i in order]
