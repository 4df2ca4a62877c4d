"""The ``paraphrase`` family against the REAL offline LLM: a ``transformers serve`` of SmolLM2-135M-Instruct on
127.0.0.1, started and stopped by the test, reached through OPENAI_* like a user's endpoint. Slow (~30 s)."""

from __future__ import annotations

import pytest

from reasonembed_rag.evaluation.data import Query, RetrievalTask

pytestmark = pytest.mark.slow

QUERIES = [
    "How many ways can 8 people stand in a line if two of them refuse to stand next to each other?",
    "What is the largest prime factor of 2024?",
    "Find the number of positive divisors of 360 that are perfect squares.",
]


def test_paraphrase_family_through_a_real_local_llm(local_server, monkeypatch):
    from reasonembed_rag.llm import choose_llm
    from reasonembed_rag.robustness.runner import run_robustness
    from reasonembed_rag.robustness.settings import RobustnessSettings
    from reasonembed_rag.robustness.variants import build_variants

    monkeypatch.setenv("OPENAI_BASE_URL", local_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "local")
    monkeypatch.setenv("OPENAI_MODEL", local_server.model)
    choice = choose_llm(temperature=0.7, top_p=0.9, concurrency=1, max_tokens=64)
    assert choice.source == "environment"
    with choice.open() as endpoint:
        config = endpoint.config
    assert config.base_url == local_server.base_url and config.model == local_server.model

    documents = {"d1": "The multiplication principle counts arrangements.", "d2": "Every integer factors into primes."}
    task = RetrievalTask(
        "t", [Query(f"q{i}", q, ["d1" if i == 0 else "d2"]) for i, q in enumerate(QUERIES)], documents, None
    )
    variants = build_variants(task, RobustnessSettings(families=["paraphrase"], seeds=1), llm=config)
    assert variants.llm_counts["requests"] == 3 and variants.llm_counts["failed"] == 0
    assert variants.llm_counts["rewritten"] >= 1
    paraphrased = [q.text for q in variants.queries if variants.labels[q.id] == ("paraphrase", 0)]
    assert len(paraphrased) == 3 and sum(p != q for p, q in zip(paraphrased, QUERIES, strict=True)) >= 1
    assert all(p.strip() for p in paraphrased)

    payload = run_robustness([task], "bm25", families=["paraphrase"], seeds=1, poison_sizes=[], llm=config)
    entry = payload["models"]["bm25"]["tasks"]["t"]["perturbation"]["paraphrase"]
    assert 0.0 <= entry["ndcg@10_mean"] <= 1.0 and entry["words_changed"] > 0
    assert payload["paraphrase"]["status"] == "ran" and payload["paraphrase"]["requests"] == 3
