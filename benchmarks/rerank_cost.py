"""What LLM reranking buys and costs: nDCG@10 before/after, seconds and tokens per query, on the offline task.

First stage: a dense model (default ``minilm-l6``) over ``champ_concepts`` (the CHAMP test side), exact search.
Second stage: ``--rerank llm`` through the chosen endpoint (default: the local ``transformers serve`` of
SmolLM2-135M-Instruct), the top ``--top-k`` of the first ``--queries`` queries, with a fresh cache (so every pair is
really scored). Prints one JSON object: the machine, both metrics, the cost per query and the LLM's reading mode.

Usage::

    HF_HUB_OFFLINE=1 nice python benchmarks/rerank_cost.py --queries 20 --top-k 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from reasonembed_rag import ReasonEmbedEncoder
    from reasonembed_rag.evaluation.reranking import rerank_result
    from reasonembed_rag.evaluation.runner import evaluate_dense
    from reasonembed_rag.evaluation.tasks import OFFLINE, load_tasks
    from reasonembed_rag.llm import LLMClient, add_llm_arguments, choose_llm_from_args
    from reasonembed_rag.rerank import LLMReranker

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm-l6", help="first-stage model (default minilm-l6)")
    parser.add_argument("--queries", type=int, default=20, help="first N test queries (default 20)")
    parser.add_argument("--top-k", type=int, default=20, help="hits reranked per query (default 20)")
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--cache", default=None, help="score cache to read and extend (default: a fresh one)")
    add_llm_arguments(parser)
    args = parser.parse_args()

    (task,) = load_tasks(OFFLINE, None)
    task = dataclasses.replace(task, queries=task.queries[: args.queries])
    encoder = ReasonEmbedEncoder.from_pretrained(args.model)
    with tempfile.TemporaryDirectory() as scratch:
        before = evaluate_dense(task, encoder, chroma=str(Path(scratch) / "chroma"))
        with choose_llm_from_args(args).open(announce=True) as endpoint:
            client = LLMClient(endpoint.config)
            identity = "local" if endpoint.local else str(endpoint.config.base_url)
            reranker = LLMReranker(client, endpoint=identity, cache=args.cache or Path(scratch) / "scores.jsonl")
            started = time.perf_counter()
            after = rerank_result(task, before, reranker, top_k=args.top_k, show_progress=True)
            seconds = time.perf_counter() - started
            reranker.cache.close()
    cost = reranker.cost.as_dict()
    queries = len(task.queries)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), {platform.system()}",
        "llm": endpoint.description,
        "reading": "top_logprobs expected digit" if reranker.use_logprobs else "generated digit",
        "first_stage": args.model,
        "queries": queries,
        "top_k": args.top_k,
        "ndcg@10_before": round(before.metrics["ndcg@10"], 4),
        "ndcg@10_after": round(after.metrics["ndcg@10"], 4),
        "recall@10_before": round(before.metrics["recall@10"], 4),
        "recall@10_after": round(after.metrics["recall@10"], 4),
        "seconds_per_query": round(seconds / queries, 2),
        "requests_per_query": cost["requests"] / queries,
        "prompt_tokens_per_query": round(cost["prompt_tokens"] / queries, 1),
        "completion_tokens_per_query": round(cost["completion_tokens"] / queries, 1),
        "pairs_without_a_digit": cost["unscored"],
        "pairs_from_cache": cost["cached"],
        "server_startup_seconds": round(endpoint.startup_seconds or 0.0, 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
