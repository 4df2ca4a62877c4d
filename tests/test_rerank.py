"""Reranking (issue 15 item 2): the reordering rule, the LLM reranker's logprob/digit reading, cache and resume, the
cross-encoder, ``bright --rerank``, and the LlamaIndex / LangChain adapters.

The control-flow tests of :class:`LLMReranker` use a scripted chat client (it answers from a digit written in each
document, so the expected order is known); everything else runs real models: a tiny random BERT cross-encoder built
from a config, the packaged MiniLM, and - in the slow test - the local SmolLM2 server.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from reasonembed_rag.llm import Completion, LLMConfig, LLMError
from reasonembed_rag.rerank import (
    UNSCORED,
    CrossEncoderReranker,
    LLMReranker,
    RerankCache,
    digit_distribution,
    rerank_hits,
    rerank_texts,
)

from .tiny_models import build_tiny_cross_encoder


@pytest.fixture(scope="module")
def cross_encoder_folder(tmp_path_factory):
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


@pytest.fixture(scope="module")
def cross_encoder(cross_encoder_folder):
    return CrossEncoderReranker(cross_encoder_folder, device="cpu")


class ScriptedChat:
    """Answers each relevance prompt with the digit after ``grade=`` in its document; optionally as top_logprobs,
    optionally rejecting logprob requests (as some servers do) or failing after some replies."""

    def __init__(self, *, logprobs: bool, fail_after: int | None = None, reject: bool = True) -> None:
        self.config = LLMConfig(base_url="http://127.0.0.1:9/v1", model="scripted")
        self.logprobs = logprobs
        self.reject = reject
        self.fail_after = fail_after
        self.calls: list[bool] = []

    def chat(self, messages, *, max_tokens=None, temperature=None, top_p=None, stop=None, top_logprobs=None):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise LLMError("connection refused", retryable=True)
        self.calls.append(bool(top_logprobs))
        if top_logprobs and not self.logprobs and self.reject:
            raise LLMError("HTTP 422: unsupported field logprobs", retryable=False)
        match = re.search(r"grade=(\d)", messages[-1]["content"])
        digit = match.group(1) if match else "?"
        alternatives = ()
        if top_logprobs and self.logprobs and digit.isdigit():
            # The digit is most likely; its neighbour takes some mass, so the expected value sits between them.
            alternatives = ({digit: math.log(0.75), str(max(1, int(digit) - 1)): math.log(0.25), "The": -5.0},)
        return Completion(f"{digit}", "stop", 50, 1, alternatives)


DOCUMENTS = ["alpha grade=2", "beta grade=5", "gamma grade=3", "delta no grade", "epsilon grade=5"]


def test_digit_distribution_renormalises_over_digits():
    distribution = digit_distribution({" 4": math.log(0.6), "3": math.log(0.2), "Hello": math.log(0.2)})
    assert distribution.probabilities == pytest.approx((0, 0, 0.25, 0.75, 0))
    assert distribution.score == 4
    assert distribution.expected == pytest.approx(3.75)
    assert digit_distribution({"Hello": -0.1, "7": -1.0}) is None


def test_llm_reranker_falls_back_to_the_generated_digit_and_caches(tmp_path):
    chat = ScriptedChat(logprobs=False)
    reranker = LLMReranker(chat, cache=tmp_path / "scores.jsonl", concurrency=2)
    scores = reranker.score("query", DOCUMENTS)
    assert scores == [2.0, 5.0, 3.0, UNSCORED, 5.0] and UNSCORED == 3.0
    assert reranker.use_logprobs is False
    # One probe with logprobs (rejected), then every request without.
    assert chat.calls.count(True) == 1 and chat.calls.count(False) == len(DOCUMENTS)
    assert reranker.cost.as_dict()["unscored"] == 1
    # Ties (5, 5) keep the given order; the unscored document sits with the 3s, after them in the given order.
    assert [i for i, _ in rerank_texts(reranker, "query", DOCUMENTS)] == [1, 4, 2, 3, 0]

    again = ScriptedChat(logprobs=False)
    cached = LLMReranker(again, cache=tmp_path / "scores.jsonl")
    assert cached.score("query", DOCUMENTS) == scores
    assert again.calls == [] and cached.cost.cached == len(DOCUMENTS)
    # Another model (or prompt, or endpoint) is another key.
    other = ScriptedChat(logprobs=False)
    other.config = LLMConfig(base_url="http://127.0.0.1:9/v1", model="other")
    LLMReranker(other, cache=tmp_path / "scores.jsonl").score("query", DOCUMENTS[:1])
    assert other.calls


def test_a_server_that_ignores_logprobs_is_asked_once_per_pair(tmp_path):
    chat = ScriptedChat(logprobs=False, reject=False)  # as transformers serve: accepts the field, returns none
    reranker = LLMReranker(chat, cache=tmp_path / "scores.jsonl", concurrency=1)
    assert reranker.score("query", DOCUMENTS) == [2.0, 5.0, 3.0, UNSCORED, 5.0]
    assert reranker.use_logprobs is False and chat.calls == [True] + [False] * (len(DOCUMENTS) - 1)


def test_llm_reranker_reads_the_expected_digit_from_top_logprobs(tmp_path):
    chat = ScriptedChat(logprobs=True)
    reranker = LLMReranker(chat, cache=tmp_path / "scores.jsonl", concurrency=1)
    scores = reranker.score("query", DOCUMENTS[:3])
    assert reranker.use_logprobs is True
    assert scores == pytest.approx([0.75 * 2 + 0.25 * 1, 0.75 * 5 + 0.25 * 4, 0.75 * 3 + 0.25 * 2])
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(len(row["probabilities"]) == 5 for row in rows)


def test_an_interrupted_llm_rerank_resumes_from_the_cache(tmp_path):
    path = tmp_path / "scores.jsonl"
    broken = ScriptedChat(logprobs=True, fail_after=2)
    with pytest.raises(LLMError):
        LLMReranker(broken, cache=path, concurrency=1).score("query", DOCUMENTS)
    assert len(RerankCache(path)) == 2
    with path.open("a") as torn:
        torn.write('{"key": "half a li')  # a run killed mid-write leaves a torn line; it is skipped
    healthy = ScriptedChat(logprobs=True)
    resumed = LLMReranker(healthy, cache=path, concurrency=1)
    scores = resumed.score("query", DOCUMENTS)
    assert len(healthy.calls) == len(DOCUMENTS) - 2
    assert resumed.cost.cached == 2
    assert scores[1] == pytest.approx(4.75) and scores[3] == UNSCORED


def test_rerank_hits_orders_the_top_k_by_the_cross_encoder_and_keeps_the_rest(cross_encoder):
    documents = {f"d{i}": text for i, text in enumerate(["the sky is blue", "tax law", "rayleigh", "x", "y", "z"])}
    hits = [(f"d{i}", 10.0 - i) for i in range(6)]
    reranked = rerank_hits("why is the sky blue", hits, documents, cross_encoder, top_k=4)
    scores = cross_encoder.score("why is the sky blue", [documents[f"d{i}"] for i in range(4)])
    assert len(set(scores)) == 4, "the random cross-encoder should not tie"
    expected_head = [f"d{i}" for i in sorted(range(4), key=lambda i: -scores[i])]
    assert [doc for doc, _ in reranked] == expected_head + ["d4", "d5"]
    values = [score for _, score in reranked]
    assert values == sorted(values, reverse=True) and len(set(values)) == 6
    with pytest.raises(ValueError, match="rerank-top-k"):
        rerank_hits("q", hits, documents, cross_encoder, top_k=0)


def test_cross_encoder_needs_a_model_folder(tmp_path):
    with pytest.raises(ValueError, match="not a cross-encoder folder"):
        CrossEncoderReranker(tmp_path)


def test_rerank_result_reorders_each_query_by_the_cross_encoder(cross_encoder):
    from reasonembed_rag.evaluation.reranking import rerank_result
    from reasonembed_rag.evaluation.runner import evaluate_bm25
    from reasonembed_rag.evaluation.tasks import OFFLINE, load_tasks

    (task,) = load_tasks(OFFLINE, None)
    before = evaluate_bm25(task)
    after = rerank_result(task, before, cross_encoder, top_k=5)
    assert after.metrics.keys() == before.metrics.keys()
    for query in task.queries[:5]:
        first = sorted(before.run[query.id].items(), key=lambda hit: (-hit[1], hit[0]))
        first = [doc for doc, _ in first if doc not in set(query.excluded_ids)]
        new = [doc for doc, _ in sorted(after.run[query.id].items(), key=lambda hit: -hit[1])]
        scores = cross_encoder.score(query.text, [task.documents[doc] for doc in first[:5]])
        assert new[:5] == [first[i] for i in sorted(range(5), key=lambda i: (-scores[i], i))]
        assert new[5:] == first[5:]


def test_bright_cli_reranks_with_a_cross_encoder_folder(tmp_path, cross_encoder_folder):
    from reasonembed_rag.cli import main

    output = tmp_path / "results.json"
    code = main(
        [
            "bright",
            "--model",
            "bm25",
            "--rerank",
            str(cross_encoder_folder),
            "--rerank-top-k",
            "5",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    payload = json.loads(output.read_text())
    summary = payload["rerank"]["champ_concepts"]
    assert summary["reranker"] == str(cross_encoder_folder) and summary["top_k"] == 5
    assert set(summary["first_stage"]) >= {"ndcg@10", "recall@10", "recall@100"}
    # Only the top 5 move: recall@10 and recall@100 cannot change.
    assert payload["tasks"]["champ_concepts"]["recall@100"] == pytest.approx(summary["first_stage"]["recall@100"])


def test_llama_index_postprocessor_reranks_nodes(cross_encoder, cross_encoder_folder):
    from llama_index.core.schema import NodeWithScore, TextNode

    from reasonembed_rag.integrations import LlamaIndexRerank

    texts = ["the sky is blue", "tax law", "rayleigh scattering", "cooking"]
    nodes = [NodeWithScore(node=TextNode(text=text, id_=str(i)), score=1.0) for i, text in enumerate(texts)]
    for reranker in (cross_encoder, str(cross_encoder_folder)):
        kept = LlamaIndexRerank(reranker=reranker, top_n=2).postprocess_nodes(nodes, query_str="why is the sky blue")
        scores = cross_encoder.score("why is the sky blue", texts)
        best = sorted(range(4), key=lambda i: -scores[i])[:2]
        assert [hit.node.node_id for hit in kept] == [str(i) for i in best]
        assert [hit.score for hit in kept] == pytest.approx([scores[i] for i in best])
    with pytest.raises(ValueError, match="needs the query"):
        LlamaIndexRerank(reranker=cross_encoder).postprocess_nodes(nodes)


def test_langchain_compressor_in_a_contextual_compression_retriever(cross_encoder, minilm):
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.vectorstores import InMemoryVectorStore

    from reasonembed_rag.integrations import LangChainEmbeddings, LangChainRerank

    texts = ["the sky is blue", "tax law", "rayleigh scattering", "cooking", "light and colour"]
    store = InMemoryVectorStore(LangChainEmbeddings(model="minilm-l6"))
    store.add_texts(texts, ids=[str(i) for i in range(len(texts))])
    base = store.as_retriever(search_kwargs={"k": 4})
    retriever = ContextualCompressionRetriever(
        base_compressor=LangChainRerank(reranker=cross_encoder, top_n=2), base_retriever=base
    )
    query = "why is the sky blue"
    candidates = base.invoke(query)
    scores = cross_encoder.score(query, [doc.page_content for doc in candidates])
    best = sorted(range(len(candidates)), key=lambda i: -scores[i])[:2]
    kept = retriever.invoke(query)
    assert [doc.id for doc in kept] == [candidates[i].id for i in best]
    assert [doc.metadata["relevance_score"] for doc in kept] == pytest.approx([scores[i] for i in best])


@pytest.mark.slow
def test_llm_reranker_against_the_local_server(local_server, tmp_path):
    from reasonembed_rag.llm import LLMClient

    client = LLMClient(local_server.config())
    reranker = LLMReranker(client, endpoint="local", cache=tmp_path / "scores.jsonl", concurrency=1)
    documents = ["Rayleigh scattering makes short wavelengths scatter more, so the sky looks blue.", "Tax law."]
    scores = reranker.score("Why is the sky blue?", documents)
    # transformers serve returns no logprobs, so the reranker reads the generated digit.
    assert reranker.use_logprobs is False
    assert all(score in (1.0, 2.0, 3.0, 4.0, 5.0) for score in scores)
    requests = client.usage.snapshot()["requests"]
    assert requests == len(documents)
    assert reranker.score("Why is the sky blue?", documents) == scores
    assert client.usage.snapshot()["requests"] == requests
