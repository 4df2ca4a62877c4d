"""Robustness suite, corpus side: targets, ASR@k, the query-copy attack against BM25, HotFlip on real models, a
poisoning run through Chroma that leaves the user's collection untouched, and the command line end to end."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from reasonembed_rag.cli import main
from reasonembed_rag.evaluation.data import RetrievalTask
from reasonembed_rag.robustness import (
    FAMILIES,
    QUICK,
    HotFlip,
    HotFlipSettings,
    assign_targets,
    attack_success_rate,
    markdown_section,
    query_copy_passages,
    run_robustness,
)


@pytest.fixture(scope="module")
def offline_root(tmp_path_factory):
    from reasonembed_rag.evaluation.offline import build_offline_tasks

    return build_offline_tasks(tmp_path_factory.mktemp("offline-tasks"))


@pytest.fixture(scope="module")
def small_task(offline_root) -> RetrievalTask:
    """8 real CHAMP problems against all 89 CHAMP concepts."""
    from reasonembed_rag.evaluation.data import load_folder_task

    task = load_folder_task(offline_root, "champ_concepts")
    return RetrievalTask(task.name, task.queries[:8], task.documents, task.instruction)


def test_targets_cover_every_query_and_are_deterministic():
    topics = {"primes": "prime divisors factor", "circles": "circle radius chord", "graphs": "graph vertex edge"}
    texts = [
        f"query about {topic}: {words.split()[i % 3]} {words}" for i in range(4) for topic, words in topics.items()
    ]
    assert assign_targets(texts, 30) == [[j % 12] for j in range(30)]  # N >= Q: round-robin, one query each
    groups = assign_targets(texts, 3, seed=0)
    assert len(groups) == 3 and all(groups)
    assert sorted(i for group in groups for i in group) == list(range(12))
    assert assign_targets(texts, 3, seed=0) == groups
    assert {frozenset(texts[i].split()[2].rstrip(":") for i in group) for group in groups} == {
        frozenset({"primes"}),
        frozenset({"circles"}),
        frozenset({"graphs"}),
    }  # k-means over TF-IDF puts same-topic queries together
    passages = query_copy_passages(
        ["one two three four five six seven eight nine ten", "a b c"], [[0, 1]], max_words=8
    )
    assert passages == ["one two three four five six seven eight a b c"]  # at least 8 words per query
    assert assign_targets(texts, 0) == [] and assign_targets([], 5) == []


def test_asr_counts_queries_with_an_injected_passage_in_the_top_k():
    run = {
        "q1": {"d1": 0.9, "p1": 0.8, "d2": 0.1},
        "q2": {**{f"d{i}": 1.0 - i / 100 for i in range(12)}, "p2": 0.5},
        "q3": {"p1": 0.99, "d1": 0.5},
        "q4": {},
    }
    assert attack_success_rate(run, set()) == {"asr@5": 0.0, "asr@10": 0.0, "asr@20": 0.0, "asr@50": 0.0}
    asr = attack_success_rate(run, {"p1", "p2"}, excluded={"q3": ["p1"]})
    assert asr == {"asr@5": 0.25, "asr@10": 0.25, "asr@20": 0.5, "asr@50": 0.5}  # q3's p1 is excluded
    assert attack_success_rate({}, {"p1"})["asr@10"] == 0.0


def test_query_copy_against_bm25_on_a_small_task(small_task):
    payload = run_robustness(
        [small_task],
        "bm25",
        families=["misspelling"],
        seeds=1,
        poison_sizes=[10, 4],
        attacks=["query_copy", "hotflip"],
    )
    entry = payload["models"]["bm25"]["tasks"]["champ_concepts"]
    copy10, copy4 = entry["poisoning"]["query_copy"]["10"], entry["poisoning"]["query_copy"]["4"]
    assert copy10["asr@10"] > 0.5 and copy4["asr@10"] > 0.5
    assert copy10["passages"] == 10 and copy4["passages"] == 4
    assert copy10["ndcg@10_change"] == pytest.approx(copy10["ndcg@10"] - entry["clean"]["ndcg@10"])
    assert copy10["ndcg@10_change"] <= 0
    assert "no gradient" in entry["poisoning"]["hotflip"]["10"]["skipped"]
    section = markdown_section(payload)
    assert "| bm25 | champ_concepts | query_copy | 10 |" in section and "misspelling" in section

    quick = run_robustness([small_task], "bm25", **QUICK)  # the demo's bounded budget
    assert quick["settings"]["seeds"] == [0, 1] and quick["settings"]["poison_sizes"] == [10]
    assert set(quick["models"]["bm25"]["tasks"]["champ_concepts"]["perturbation"]) == set(FAMILIES)


def test_hotflip_raises_similarity_on_a_tiny_decoder_and_on_minilm(tmp_path, minilm):
    from reasonembed_rag import ReasonEmbedEncoder

    from .tiny_models import build_tiny_decoder

    decoder = ReasonEmbedEncoder.from_pretrained(str(build_tiny_decoder(tmp_path / "tiny")), device="cpu")
    targets = ["prime number theorem proof", "sum of integer values"]
    for encoder in (decoder, minilm):
        attacker = HotFlip(encoder, HotFlipSettings(steps=6, candidates=6, tokens=12), seed=1)
        result = attacker.attack("the cell gene protein", targets)
        assert result.flips >= 1
        assert result.similarity_after > result.similarity_before
        again = HotFlip(encoder, HotFlipSettings(steps=6, candidates=6, tokens=12), seed=1)
        assert again.attack("the cell gene protein", targets).text == result.text  # deterministic under a seed


def _snapshot(store, chroma) -> tuple:
    from reasonembed_rag.store import get_client

    batches = list(store.records())
    ids = [doc_id for batch in batches for doc_id in batch.ids]
    order = np.argsort(ids)
    vectors = np.concatenate([batch.embeddings for batch in batches])[order]
    documents = [text for batch in batches for text in batch.documents]
    return (
        sorted(ids),
        hashlib.sha256(vectors.tobytes()).hexdigest(),
        [documents[i] for i in order],
        dict(get_client(chroma).get_collection(store.name).metadata or {}),
    )


@pytest.mark.parametrize("via", ["direct", "langchain"])
def test_poisoning_leaves_the_users_collection_untouched(small_task, minilm, tmp_path, via):
    from reasonembed_rag.evaluation.runner import collection_name, evaluate_dense
    from reasonembed_rag.store import ChromaStore, get_client

    from .stub_encoders import CountingEncoder

    chroma = tmp_path / "chroma"
    clean = evaluate_dense(small_task, minilm, via=via, chroma=chroma)
    store = ChromaStore(collection_name(small_task, minilm), minilm, chroma=chroma)
    before = _snapshot(store, chroma)
    collections = sorted(c.name for c in get_client(chroma).list_collections())
    attacks = ["query_copy", "hotflip"] if via == "direct" else ["query_copy"]
    counting = CountingEncoder(minilm)
    payload = run_robustness(
        [small_task],
        [counting],
        via=via,
        chroma=chroma,
        families=["synonym"],
        seeds=1,
        poison_sizes=[3],
        attacks=attacks,
        hotflip=HotFlipSettings(steps=3, candidates=4, tokens=16),
    )
    assert _snapshot(store, chroma) == before
    # the scratch copy is gone, and no other collection was made (the poisoned copy reused the cached vectors)
    assert sorted(c.name for c in get_client(chroma).list_collections()) == collections
    assert all(n <= 3 for method, n, _ in counting.calls if method == "documents")  # injected passages only
    entry = payload["models"][minilm.name]["tasks"]["champ_concepts"]
    assert entry["clean"]["ndcg@10"] == pytest.approx(clean.metrics["ndcg@10"])
    poisoned = entry["poisoning"]["query_copy"]["3"]
    assert poisoned["asr@50"] > 0 and poisoned["passages"] == 3
    if via == "direct":
        # clean queries and their synonym variants are embedded once; poisoned runs and HotFlip reuse the vectors
        assert sum(n for method, n, _ in counting.calls if method == "queries") <= 2 * len(small_task.queries)
        assert (
            entry["poisoning"]["hotflip"]["3"]["similarity_after"]
            >= entry["poisoning"]["hotflip"]["3"]["similarity_before"] - 0.02
        )


def test_cli_writes_json_markdown_and_plot(offline_root, tmp_path, capsys):
    output = tmp_path / "out" / "robustness.json"
    code = main(
        [
            "robustness",
            "--data",
            str(offline_root),
            "--tasks",
            "champ_concepts",
            "--model",
            "bm25",
            "--seeds",
            "2",
            "--max-queries",
            "12",
            "--poison-sizes",
            "5",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    payload = json.loads(output.read_text())
    entry = payload["models"]["bm25"]["tasks"]["champ_concepts"]
    assert entry["queries"] == 12 and payload["settings"]["seeds"] == [0, 1]
    assert set(entry["perturbation"]) == {
        "misspelling",
        "shuffle",
        "synonym",
        "word_removal",
        "stopword_removal",
        "paraphrase",
    }
    assert "skipped" in entry["perturbation"]["paraphrase"]
    misspelling = entry["perturbation"]["misspelling"]
    assert len(misspelling["ndcg@10_per_seed"]) == 2 and misspelling["ndcg@10_std"] >= 0
    assert misspelling["drop_pct"] == pytest.approx(
        100 * (entry["clean"]["ndcg@10"] - misspelling["ndcg@10_mean"]) / entry["clean"]["ndcg@10"]
    )
    assert 0.1 < misspelling["words_changed"] <= 0.3
    assert set(entry["poisoning"]["query_copy"]["5"]) >= {"asr@5", "asr@10", "asr@20", "asr@50", "ndcg@10_change"}
    assert "WordNet 3.0" in payload["synonym_source"]
    assert output.with_suffix(".png").stat().st_size > 10_000
    assert "![robustness](robustness.png)" in output.with_suffix(".md").read_text()
    assert "results written to" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------- scratch copies


def test_stale_scratch_copies_are_swept_by_the_next_copy(tmp_path, monkeypatch):
    from reasonembed_rag.robustness.poison import PoisonedCopy, sweep_stale_copies
    from reasonembed_rag.store import ChromaStore

    from .stub_encoders import TinyEncoder

    encoder = TinyEncoder()
    clean = ChromaStore("clean-corpus", encoder, chroma=tmp_path)
    clean.add_documents([("a", "prime number"), ("b", "cell gene")], show_progress=False)
    other = ChromaStore("other-corpus", encoder, chroma=tmp_path)
    other.add_documents([("c", "c")], show_progress=False)
    left_behind = PoisonedCopy(clean)  # a run killed by SIGKILL: never closed
    other_copy = PoisonedCopy(other)
    look_alike = ChromaStore("clean-corpus-poisoned-0123456789", TinyEncoder("another-model"), chroma=tmp_path)
    look_alike.add_documents([("x", "x")], show_progress=False)
    assert left_behind.name in clean.collection_names()

    with PoisonedCopy(clean) as live:
        names = clean.collection_names()
        assert left_behind.name not in names and live.name in names
        assert other_copy.name in names and look_alike.name in names  # other corpora and other models stay
    assert live.name not in clean.collection_names()

    # On a shared server (no folder lock) only copies older than a day go: a live run may be using the others.
    old = PoisonedCopy(clean)
    monkeypatch.setattr(type(clean), "holds_lock", property(lambda self: False))
    assert sweep_stale_copies(clean) == []
    assert sweep_stale_copies(clean, stale_after=-1) == [old.name]


def test_sigterm_during_poisoning_removes_the_scratch_collection(offline_root, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import chromadb

    from .tiny_models import build_tiny_decoder

    model = build_tiny_decoder(tmp_path / "model", hidden_size=16)
    chroma = tmp_path / "chroma"
    command = [
        sys.executable, "-m", "reasonembed_rag.cli", "robustness", "--data", str(offline_root), "--tasks",
        "champ_concepts", "--model", str(model), "--chroma", str(chroma), "--families", "misspelling", "--seeds", "1",
        "--max-queries", "4", "--poison-sizes", "2", "--attacks", "hotflip", "--hotflip-steps", "100000",
        "--output", str(tmp_path / "out.json"),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def collections() -> list[str]:
        if not (chroma / "chroma.sqlite3").exists():
            return []
        with chromadb.PersistentClient(path=str(chroma)) as client:
            return [collection.name for collection in client.list_collections()]

    deadline = time.monotonic() + 600
    while not any("-poisoned-" in name for name in collections()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no scratch collection appeared"
        time.sleep(1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err
    names = collections()
    assert names and not any("-poisoned-" in name for name in names)  # the clean collection stays, the copy is gone
