"""``reasonembed-rag bright``: evaluate a model on BRIGHT-style tasks through a chosen retrieval path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..evaluation.metrics import KEEP_TOP, drop_excluded, parse_k_values
from ..evaluation.report import format_table
from ..evaluation.runfile import read_run, run_path, run_tag, write_run
from ..evaluation.runner import TaskResult, evaluate, results_json, score_run
from ..evaluation.tasks import load_tasks
from ..expansion import DEFAULT_MAX_TOKENS, QueryExpander
from ..fusion import FUSION_DEPTH, FUSIONS, HYBRID_WEIGHT, LEXICAL, Hybrid
from ..llm import add_llm_arguments, choose_llm_from_args
from .common import add_task_arguments, load_model, positive_int, task_names

LOADED_VIA = "run"
"""The ``via`` recorded for results scored from ``--load-run`` files."""


def _k_values(text: str) -> list[int]:
    try:
        return parse_k_values(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _load_runs(args: argparse.Namespace, tasks: list) -> list[TaskResult]:
    """Score ``--load-run`` files (no model loaded): each task's run as the evaluation scores an embedded one."""
    results = []
    for task in tasks:
        try:
            run, tag = read_run(run_path(args.load_run, task.name))
        except (FileNotFoundError, ValueError) as error:
            raise SystemExit(f"--load-run: {error}") from None
        unknown = sorted(set(run) - {q.id for q in task.queries})
        if unknown:
            raise SystemExit(
                f"--load-run: {run_path(args.load_run, task.name)} has query ids that task {task.name!r} lacks "
                f"({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''}): is it a run of another task or "
                "of the --long / --reasoning-queries variant?"
            )
        results.append(
            score_run(task, run, model=tag or "run", via=LOADED_VIA, keep=args.keep, k_values=args.k_values)
        )
    return results


def _save_runs(folder: str, tasks: list, results: list[TaskResult], keep: int) -> None:
    """``--save-run``: each task's kept hits (excluded ids dropped, ``keep`` best) as a TREC run file."""
    for task, result in zip(tasks, results, strict=True):
        excluded = {q.id: q.excluded_ids for q in task.queries}
        path = run_path(folder, task.name)
        lines = write_run(path, drop_excluded(result.run, excluded, keep=keep), run_tag(result.model, result.via))
        print(f"run written to {path} ({lines} lines)")


def _check_expansion(args: argparse.Namespace) -> None:
    """``--expand-queries`` writes its own reasoning: it does not combine with given reasoning or with stored runs."""
    if not args.expand_queries:
        return
    if args.reasoning_queries:
        raise SystemExit(
            f"--expand-queries and --reasoning-queries {args.reasoning_queries} both replace the queries with "
            "reasoning-expanded ones: choose one (the LLM's reasoning, or the given one)."
        )
    if args.load_run:
        raise SystemExit("--expand-queries changes the queries a run retrieves with; --load-run retrieves nothing.")


def _expand_all(args: argparse.Namespace, tasks: list) -> tuple[QueryExpander, dict[str, Any]]:
    """``--expand-queries``: every task's sketches, asked for in one concurrent pass before the model loads (the
    LLM and the encoder do not share the CPU); the retrievers then read them from the cache."""
    try:
        choice = choose_llm_from_args(args)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    expander = QueryExpander(
        choice, cache=args.expansion_cache, max_tokens=args.expansion_max_tokens, show_progress=True
    )
    with expander:
        for task in tasks:
            expander.expand([q.text for q in task.queries], instruction=task.instruction)
    summary = expander.summary()
    rate = f", {summary['tokens_per_second']} tokens/s" if summary["tokens_per_second"] else ""
    print(
        f"expansion: {summary['queries']} queries, {summary['cached']} cached, {summary['generated']} written, "
        f"{summary['failed']} failed (kept as they were) by {summary['llm']} "
        f"({summary['completion_tokens']} tokens in {summary['seconds']} s{rate}); cache {summary['cache']}"
    )
    return expander, summary


def _bright(args: argparse.Namespace) -> int:
    _check_expansion(args)
    tasks = load_tasks(
        args.data,
        task_names(args),
        long=args.long,
        reasoning_queries=args.reasoning_queries,
        instruction=args.instruction,
    )
    expansion: dict[str, Any] = {}
    if args.load_run:
        results = _load_runs(args, tasks)
        model_name = results[0].model if results else "run"
    else:
        # Checked before the model loads, so a bad --hybrid-weight fails at once.
        hybrid = Hybrid(args.hybrid, weight=args.hybrid_weight, fusion=args.fusion) if args.hybrid else None
        expander = None
        if args.expand_queries:
            expander, expansion = _expand_all(args, tasks)
        model = load_model(args)
        if args.ray:
            _embed_documents_with_ray(tasks, model, args)
        results = evaluate(
            tasks,
            model,
            via=args.via,
            chroma=args.chroma,
            keep=args.keep,
            show_progress=True,
            k_values=args.k_values,
            hybrid=hybrid,
            expand=expander,
        )
        model_name = results[0].model if results else model.name
    reranking: dict[str, Any] = {}
    if args.rerank:
        results, reranking = _rerank(args, tasks, results)
    if args.save_run:
        _save_runs(args.save_run, tasks, results, args.keep)
    payload = results_json(results, model=model_name, via=results[0].via if results else args.via)
    if expansion:
        payload["expansion"] = expansion
    if reranking:
        payload["rerank"] = reranking
    print(format_table(results))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"results written to {args.output}")
    return 0


def _rerank(args: argparse.Namespace, tasks: list, results: list) -> tuple[list, dict[str, Any]]:
    """Rerank every task's run with ``--rerank`` (an LLM endpoint or a cross-encoder folder)."""
    from ..evaluation.reranking import rerank_result, rerank_summary
    from ..rerank import CrossEncoderReranker, LLMReranker

    by_name = {task.name: task for task in tasks}

    def run_all(reranker: Any) -> tuple[list, dict[str, Any]]:
        reranked, summary = [], {}
        for before in results:
            cost = reranker.cost.as_dict() if hasattr(reranker, "cost") else None
            after = rerank_result(
                by_name[before.task],
                before,
                reranker,
                top_k=args.rerank_top_k,
                keep=args.keep,
                show_progress=True,
                k_values=args.k_values,
            )
            if cost is not None:
                cost = {name: value - cost[name] for name, value in reranker.cost.as_dict().items()}
            summary[before.task] = rerank_summary(before, after, reranker, args.rerank_top_k, cost)
            print(
                f"{before.task}: nDCG@10 {before.metrics['ndcg@10']:.4f} -> {after.metrics['ndcg@10']:.4f} "
                f"after reranking the top {args.rerank_top_k} with {reranker.name}"
            )
            reranked.append(after)
        return reranked, summary

    if args.rerank != "llm":
        return run_all(CrossEncoderReranker(args.rerank, device=args.device))
    from ..llm import LLMClient

    choice = choose_llm_from_args(args)
    with choice.open(announce=True) as endpoint:
        # A local server's identity is its model, not its port (a new port each start must still hit the cache).
        identity = "local" if endpoint.local else str(endpoint.config.base_url or "")
        reranker = LLMReranker(LLMClient(endpoint.config), endpoint=identity, cache=args.rerank_cache)
        try:
            return run_all(reranker)
        finally:
            reranker.cache.close()


def _embed_documents_with_ray(tasks: list[Any], model: Any, args: argparse.Namespace) -> None:
    """Fill each task's cached collection on a Ray cluster, so that :func:`evaluate` finds every document there."""
    from ..distributed import connect, index_with_ray
    from ..evaluation.runner import collection_name
    from ..store import ChromaStore

    if not hasattr(model, "encode_documents"):
        raise SystemExit(f"--ray embeds documents with a dense model; {args.model!r} has none to embed.")
    connect(args.ray, include_dashboard=False)
    for task in tasks:
        store = ChromaStore(collection_name(task, model), model, chroma=args.chroma, instruction=task.instruction)
        job = index_with_ray(
            store, task.documents.items(), model=args.model, dtype=args.dtype, max_length=args.max_length
        )
        print(f"{task.name}: Ray embedded {job.report.added} documents ({job.documents_per_second:.1f} documents/s).")


def register(commands: Any) -> None:
    """Add ``bright`` to the ``reasonembed-rag`` parser."""
    parser = commands.add_parser(
        "bright",
        help="evaluate on BRIGHT (or a BRIGHT-layout folder) through a retrieval path",
        description="Score a model on BRIGHT-style tasks exactly as the official scorer counts: excluded ids "
        "dropped before ranking, top 1000 kept, pytrec_eval nDCG@10 / recall@10 / recall@100, macro-averaged. "
        "Document vectors are cached in Chroma, so a second run embeds no document. --save-run DIR writes each "
        "task's ranking as a TREC run file DIR/<task>.run; --load-run DIR scores such files without loading a model.",
    )
    add_task_arguments(parser)
    parser.add_argument("--long", action="store_true", help="long-document setting (gold_ids_long)")
    parser.add_argument("--reasoning-queries", default=None, help="e.g. gpt4_reason: use reasoning-expanded queries")
    expansion = parser.add_argument_group(
        "test-time reasoning expansion (an LLM's solution sketch appended to each query, as BRIGHT's reasoning "
        "queries are; every --via, and both sides of --hybrid, search the expanded text)"
    )
    expansion.add_argument(
        "--expand-queries",
        action="store_true",
        help="before retrieval, ask the --llm-* endpoint (default: OPENAI_*, else a local transformers serve of "
        "SmolLM2-135M-Instruct, started only when a query is not cached) for each query's reasoning; greedy; a "
        "failed or empty reply leaves its query as it was (counted in results.json 'expansion'). Not with "
        "--reasoning-queries",
    )
    expansion.add_argument(
        "--expansion-cache",
        default=None,
        metavar="FILE",
        help="JSONL of expansions, read and extended so an interrupted run resumes; keyed by LLM, prompt version, "
        "max tokens, task instruction and query, not by --model, so every model reuses them "
        "(default: ~/.cache/reasonembed-rag/expansions/expansions.jsonl)",
    )
    expansion.add_argument(
        "--expansion-max-tokens",
        type=positive_int,
        default=DEFAULT_MAX_TOKENS,
        metavar="N",
        help=f"cap on each sketch's tokens (default {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument(
        "--keep", type=positive_int, default=KEEP_TOP, help=f"hits kept per query, at least 1 (default {KEEP_TOP})"
    )
    parser.add_argument(
        "--k-values",
        type=_k_values,
        default=[],
        metavar="K,K,...",
        help="also report nDCG, recall, MAP and MRR at these cutoffs (e.g. 1,5,10,25,50,100), keyed ndcg@k, "
        "recall@k, map@k, mrr@k, plus map and mrr over all kept hits",
    )
    parser.add_argument(
        "--save-run",
        metavar="DIR",
        default=None,
        help="write each task's kept hits as a TREC run file DIR/<task>.run ('qid Q0 docid rank score tag', "
        "excluded ids already dropped; tag = model.via)",
    )
    parser.add_argument(
        "--load-run",
        metavar="DIR",
        default=None,
        help="score the TREC run files DIR/<task>.run instead of retrieving: no model is loaded and the --model "
        "flags are ignored; excluded ids and --keep apply as for a fresh run",
    )
    parser.add_argument("--output", default=None, help="write results JSON here")
    parser.add_argument(
        "--hybrid",
        choices=LEXICAL,
        default=None,
        help=f"fuse the model's hits with this lexical retriever's (top {FUSION_DEPTH} of each; same on every --via)",
    )
    parser.add_argument(
        "--hybrid-weight",
        type=float,
        default=HYBRID_WEIGHT,
        help=f"weight of the lexical ranking in the fusion; dense gets 1 - it (default {HYBRID_WEIGHT})",
    )
    parser.add_argument(
        "--fusion", choices=FUSIONS, default="minmax", help="weighted min-max (default) or reciprocal rank fusion"
    )
    rerank = parser.add_argument_group("reranking (a second stage over each query's first-stage hits)")
    rerank.add_argument(
        "--rerank",
        default=None,
        metavar="llm|FOLDER",
        help="'llm': pointwise 1-5 relevance from the --llm-* endpoint (expected value of the digit from "
        "top_logprobs where the server returns them, else the generated digit); or a cross-encoder folder "
        "(transformers AutoModelForSequenceClassification). Default: no reranking",
    )
    rerank.add_argument(
        "--rerank-top-k",
        type=int,
        default=100,
        metavar="K",
        help="hits reranked per query (default 100); the rest keep their first-stage order after them",
    )
    rerank.add_argument(
        "--rerank-cache",
        default=None,
        metavar="FILE",
        help="JSONL of LLM scores, read and extended so an interrupted run resumes "
        "(default: ~/.cache/reasonembed-rag/rerank/scores.jsonl)",
    )
    add_llm_arguments(
        parser,
        notes={
            "--llm-local": "use the local transformers serve for --rerank llm and --expand-queries even when "
            "OPENAI_* name an endpoint"
        },
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="embed the documents on a Ray cluster ('local' or an address; needs the ray extra; see docs/scale.md)",
    )
    parser.set_defaults(func=_bright)
