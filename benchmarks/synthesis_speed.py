"""ReMixer synthesis speed with the offline LLM: queries per minute from a local ``transformers serve`` of SmolLM2.

Measures, on this machine:

* server start-up (until ``/v1/models`` lists the model) and seconds per short chat completion;
* a ReMixer run over a handful of offline seeds (the CHAMP train side): queries/minute for the generation stage and
  end to end, rows/minute, seconds per stage, and the share of parseable replies per stage;
* stage 3 both ways on the same (query, candidate) pairs - the named baseline, generated ``<score>`` replies from
  the server, against the in-process logit fast path - printed as a speed ratio;
* optionally (``--quality-queries N``), how well the logit annotator agrees with REAL relevance labels: the offline
  task's TRAIN problems, gold concepts against BM25-ranked non-gold ones (AUC; 0.5 is chance).

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/synthesis_speed.py --seeds 6 --keep-candidates 8 --json /tmp/synthesis.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _auc(scores: list[float], labels: list[bool]) -> float:
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def annotator_quality(annotator: Any, queries: int) -> dict[str, Any]:
    """Agreement of the logit annotator with REAL labels: TRAIN problems of the offline task, their gold concepts
    against the best-ranked (BM25) non-gold concepts. AUC 0.5 is chance."""
    from reasonembed_rag.evaluation.offline import champ_rows
    from reasonembed_rag.training.remixer.mining import DEFAULT_MINER, make_retriever
    from reasonembed_rag.training.remixer.prompts import PromptBook

    examples, documents = champ_rows()
    corpus = {row["id"]: row["content"] for row in documents}
    train = examples["train"][:queries]
    prompts = PromptBook().for_task("champ_concepts_train")
    rankings = make_retriever(DEFAULT_MINER, corpus).search([row["query"] for row in train], 30)
    conversations, labels, groups = [], [], []
    for number, (row, ranking) in enumerate(zip(train, rankings, strict=True)):
        candidates = row["gold_ids"][:2] + [doc for doc in ranking if doc not in row["gold_ids"]][:4]
        for doc in candidates:
            conversations.append(
                prompts.annotation_messages(row["query"], corpus[doc], style="direct", examples=False)
            )
            labels.append(doc in row["gold_ids"])
            groups.append(number)
    started = time.perf_counter()
    distributions = annotator.score(conversations)
    seconds = time.perf_counter() - started
    calibrated = []
    for number in range(len(train)):
        members = [d for d, g in zip(distributions, groups, strict=True) if g == number]
        mean = [sum(d.probabilities[k] for d in members) / len(members) for k in range(5)]
        calibrated += [1 + max(range(5), key=lambda k: (d.probabilities[k] / mean[k], -k)) for d in members]
    predicted = [score >= 3 for score in calibrated]
    hits = sum(p and y for p, y in zip(predicted, labels, strict=True))
    return {
        "queries": len(train),
        "pairs": len(labels),
        "gold_share": round(sum(labels) / len(labels), 3),
        "auc_expected_score": round(_auc([d.expected for d in distributions], labels), 3),
        "argmax_histogram": {str(k): sum(d.score == k for d in distributions) for k in range(1, 6)},
        "calibrated_positive_precision": round(hits / max(1, sum(predicted)), 3),
        "seconds_per_pair": round(seconds / len(labels), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="Offline seeds to synthesise from.")
    parser.add_argument("--keep-candidates", type=int, default=8, help="Candidates annotated per query.")
    parser.add_argument("--max-tokens", type=int, default=160, help="Token cap for queries and reasoning.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server and the annotator.")
    parser.add_argument("--completions", type=int, default=3, help="Short completions timed.")
    parser.add_argument("--output", type=Path, default=None, help="Synthesis folder (default: a temporary one).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    parser.add_argument(
        "--quality-queries",
        type=int,
        default=0,
        help="Also measure the logit annotator against the TRAIN side's gold labels on this many problems.",
    )
    args = parser.parse_args(argv)

    import torch

    from reasonembed_rag.llm import LLMClient, LocalLLMServer
    from reasonembed_rag.training.remixer import ReMixer, SynthesisSettings, load_sources
    from reasonembed_rag.training.remixer.annotator import LogitAnnotator

    torch.set_num_threads(args.threads)
    output = args.output or Path(tempfile.mkdtemp(prefix="synthesis-speed-"))
    results: dict[str, Any] = {"threads": args.threads, "seeds": args.seeds, "keep_candidates": args.keep_candidates}
    with LocalLLMServer(threads=args.threads) as server:
        results["server_start_seconds"] = round(server.startup_seconds or 0.0, 2)
        client = LLMClient(server.config(temperature=1.0, top_p=0.6, concurrency=1))
        client.chat([{"role": "user", "content": "Hello"}], max_tokens=4)  # warm-up
        timings, tokens = [], 0
        for _ in range(args.completions):
            started = time.perf_counter()
            reply = client.chat(
                [{"role": "user", "content": "State one fact about prime numbers."}], max_tokens=32, temperature=0.0
            )
            timings.append(time.perf_counter() - started)
            tokens += reply.completion_tokens
        results["seconds_per_completion_32_tokens"] = round(sum(timings) / len(timings), 2)
        results["generation_tokens_per_second"] = round(tokens / sum(timings), 1)

        sources = load_sources("offline", max_seeds=args.seeds)
        settings = SynthesisSettings(
            output=output / "chat",
            annotation_style="direct",
            keep_candidates=args.keep_candidates,
            chunk_size=64,
            show_progress=False,
        )
        settings.max_tokens.update(generate=args.max_tokens, reasoning=args.max_tokens)
        before = client.usage.snapshot()
        summary = ReMixer(settings, llm=client, concurrency=1).run(sources)
        run = summary["this_run"]
        totals = summary["totals"]
        generate, annotate, reasoning = totals["generate"], totals["annotate"], totals["reasoning"]
        stage_seconds = run["stage_seconds"]
        results["chat_annotation_run"] = {
            "seconds": run["seconds"],
            "stage_seconds": stage_seconds,
            "queries_ok": generate["ok"],
            "rows": totals["label"]["rows"],
            "queries_per_minute_generation_stage": round(60 * generate["ok"] / stage_seconds["generate"], 2),
            "queries_per_minute_end_to_end": run["queries_per_minute"],
            "rows_per_minute_end_to_end": run["rows_per_minute"],
            "parseable_share": {
                "generation": _share(generate["ok"] + generate["duplicate"], generate["replies"]),
                "annotation": _share(annotate["scored"], annotate["pairs"]),
                "reasoning": _share(reasoning["ok"], reasoning["replies"]),
            },
            "malformed_generation_reasons": generate["malformed_reasons"],
            "score_histogram": annotate["scores"],
            "llm_requests": client.usage.snapshot()["requests"] - before["requests"],
        }
        chat_pairs_per_second = annotate["pairs"] / stage_seconds["annotate"] if stage_seconds.get("annotate") else 0

    # The same queries and candidates, annotated in-process from logits (the work folder is copied minus stage 3).
    logits_dir = output / "logits"
    for name in ("seeds", "queries", "candidates"):
        source_file = output / "chat" / "work" / "champ_concepts_train" / f"{name}.jsonl"
        target = logits_dir / "work" / "champ_concepts_train" / f"{name}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        if source_file.exists():
            target.write_bytes(source_file.read_bytes())
    started = time.perf_counter()
    annotator = LogitAnnotator(batch_size=8)
    load_seconds = time.perf_counter() - started

    class NoReasoning:
        """Stage 3 only: reasoning requests fail fast, are counted, and leave rows for a later run."""

        def chat(self, messages, **options):  # noqa: ANN001, ANN003, ANN201
            from reasonembed_rag.llm import LLMError

            raise LLMError("benchmark: stage 3 only")

    settings = SynthesisSettings(
        output=logits_dir,
        keep_candidates=args.keep_candidates,
        chunk_size=64,
        max_consecutive_failures=10**6,
        show_progress=False,
    )
    summary = ReMixer(settings, llm=NoReasoning(), annotator=annotator).run(sources)
    logit_seconds = summary["this_run"]["stage_seconds"]["annotate"]
    logit_pairs = summary["totals"]["annotate"]["pairs"]
    results["logit_annotation"] = {
        "model_load_seconds": round(load_seconds, 2),
        "pairs": logit_pairs,
        "seconds": round(logit_seconds, 2),
        "pairs_per_second": round(logit_pairs / logit_seconds, 2) if logit_seconds else None,
        "score_histogram": summary["totals"]["annotate"]["scores"],
    }
    if args.quality_queries:
        results["logit_annotator_vs_train_gold"] = annotator_quality(annotator, args.quality_queries)
    results["chat_annotation_pairs_per_second"] = round(chat_pairs_per_second, 2)
    if chat_pairs_per_second and logit_seconds:
        results["logit_vs_chat_annotation_speed"] = round((logit_pairs / logit_seconds) / chat_pairs_per_second, 2)

    print(json.dumps(results, indent=2))
    chat = results["chat_annotation_run"]
    print(
        f"\nserver start {results['server_start_seconds']} s | {results['seconds_per_completion_32_tokens']} s per "
        f"32-token completion ({results['generation_tokens_per_second']} tokens/s)\n"
        f"queries/minute: {chat['queries_per_minute_generation_stage']} (generation stage), "
        f"{chat['queries_per_minute_end_to_end']} (end to end, chat annotation of {args.keep_candidates} candidates)\n"
        f"parseable: {chat['parseable_share']}\n"
        f"stage 3: logits {results['logit_annotation']['pairs_per_second']} pairs/s vs chat (baseline) "
        f"{results['chat_annotation_pairs_per_second']} pairs/s -> x{results.get('logit_vs_chat_annotation_speed')}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
