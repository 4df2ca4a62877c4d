"""``reasonembed-rag bright``: evaluate a model on BRIGHT-style tasks through a chosen retrieval path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..models import cache_dir
from .data import RetrievalTask, TaskDataError, list_folder_tasks, load_folder_task, load_hub_task
from .metrics import KEEP_TOP
from .offline import OFFLINE_TASKS, build_offline_tasks
from .published import published
from .runner import VIAS, TaskResult, evaluate, results_json

OFFLINE = "offline"


def offline_data_root() -> Path:
    """Where the offline tasks are written (built on first use)."""
    return build_offline_tasks(cache_dir() / "offline-tasks")


def load_tasks(
    data: str,
    tasks: list[str] | None,
    *,
    long: bool = False,
    reasoning_queries: str | None = None,
    instruction: str | None = None,
) -> list[RetrievalTask]:
    """Tasks from ``offline`` (the packaged offline tasks), a BRIGHT-layout folder, or a Hub dataset id."""
    root: Path | None = offline_data_root() if data == OFFLINE else Path(data).expanduser()
    if root is not None and root.is_dir():
        # The offline root also holds the TRAIN side and the out-of-domain validation: named with --tasks only.
        names = tasks or (list(OFFLINE_TASKS) if data == OFFLINE else list_folder_tasks(root))
        if not names:
            raise TaskDataError(f"No tasks under {root}: expected ROOT/<task>/examples.jsonl and documents.jsonl.")
        loaded = [load_folder_task(root, name, long=long, instruction=instruction) for name in names]
        if reasoning_queries:
            for task in loaded:
                _use_reasoning_queries(task, root / task.name, reasoning_queries)
        return loaded
    if "/" in data and not data.startswith((".", "/", "~")):
        from ..instructions import BRIGHT_TASKS

        return [
            load_hub_task(name, long=long, reasoning_queries=reasoning_queries, instruction=instruction, repo=data)
            for name in (tasks or list(BRIGHT_TASKS))
        ]
    raise TaskDataError(f"--data {data!r} is neither a folder nor a Hub dataset id (e.g. xlangai/BRIGHT).")


def _use_reasoning_queries(task: RetrievalTask, folder: Path, name: str) -> None:
    """Use reasoning-expanded query texts: ``<task>/<name>.jsonl`` (id, query) or the ``reasoning`` field."""
    own = folder / f"{name}.jsonl"
    if own.exists():
        from .data import read_rows

        texts = {str(row["id"]): row["query"] for _, row in read_rows(own, fields=("id", "query"))}
    else:
        texts = {q.id: q.reasoning for q in task.queries if q.reasoning}
    missing = [q.id for q in task.queries if q.id not in texts]
    if missing:
        raise TaskDataError(
            f"Task {task.name}: no {name} reasoning query for {len(missing)} queries (first: {missing[0]!r}); "
            f"provide {own} with id and query fields."
        )
    for query in task.queries:
        query.text = texts[query.id]


def format_table(results: list[TaskResult], *, title: str | None = None) -> str:
    """A Markdown table: per task nDCG@10 / recall@10 / recall@100 (x100), published nDCG@10 where known."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| task | model | via | nDCG@10 | published | R@10 | R@100 | queries | seconds |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        reference = published(r.model, r.task)
        lines.append(
            f"| {r.task} | {r.model} | {r.via} | {100 * r.metrics['ndcg@10']:.1f} | "
            f"{'' if reference is None else f'{reference:.1f}'} | {100 * r.metrics['recall@10']:.1f} | "
            f"{100 * r.metrics['recall@100']:.1f} | {r.queries} | {r.seconds:.1f} |"
        )
    if len(results) > 1 and len({(r.model, r.via) for r in results}) == 1:  # a task mean, never across models
        mean = {n: sum(r.metrics[n] for r in results) / len(results) for n in ("ndcg@10", "recall@10", "recall@100")}
        lines.append(
            f"| **mean** | | | {100 * mean['ndcg@10']:.1f} | | {100 * mean['recall@10']:.1f} | "
            f"{100 * mean['recall@100']:.1f} | | |"
        )
    return "\n".join(lines)


def task_names(args: argparse.Namespace) -> list[str] | None:
    """``--tasks`` as a list (None: every task in ``--data``)."""
    return [t.strip() for t in args.tasks.split(",")] if args.tasks else None


def load_model(args: argparse.Namespace) -> Any:
    """``--model``: :class:`~reasonembed_rag.retrieval.BM25` for ``bm25``, else the encoder loaded with the model
    flags."""
    from ..cli import load_encoder
    from ..retrieval import load_retriever

    return load_retriever(args.model, load=lambda _: load_encoder(args))


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """The data, model and retrieval-path flags shared by ``bright`` and ``robustness``."""
    from ..cli import add_model_arguments

    parser.add_argument(
        "--data",
        default=OFFLINE,
        help="'offline' (the packaged offline tasks, default), a BRIGHT-layout folder, or a Hub dataset id "
        "such as xlangai/BRIGHT",
    )
    parser.add_argument("--tasks", default=None, help="comma-separated task names (default: all in --data)")
    add_model_arguments(parser, default="minilm-l6")
    parser.add_argument("--via", choices=VIAS, default="direct", help="retrieval path (default: direct)")
    parser.add_argument("--chroma", default=None, help="Chroma folder or http://host:port (default: user data dir)")
    parser.add_argument("--instruction", default=None, help="override the per-task query instruction")


def _bright(args: argparse.Namespace) -> int:
    tasks = load_tasks(
        args.data,
        task_names(args),
        long=args.long,
        reasoning_queries=args.reasoning_queries,
        instruction=args.instruction,
    )
    model = load_model(args)
    results = evaluate(tasks, model, via=args.via, chroma=args.chroma, keep=args.keep, show_progress=True)
    payload = results_json(results, model=model.name, via=results[0].via if results else args.via)
    print(format_table(results))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"results written to {args.output}")
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "bright",
        help="evaluate on BRIGHT (or a BRIGHT-layout folder) through a retrieval path",
        description="Score a model on BRIGHT-style tasks exactly as the official scorer counts: excluded ids "
        "dropped before ranking, top 1000 kept, pytrec_eval nDCG@10 / recall@10 / recall@100, macro-averaged. "
        "Document vectors are cached in Chroma, so a second run embeds no document.",
    )
    add_task_arguments(parser)
    parser.add_argument("--long", action="store_true", help="long-document setting (gold_ids_long)")
    parser.add_argument("--reasoning-queries", default=None, help="e.g. gpt4_reason: use reasoning-expanded queries")
    parser.add_argument("--keep", type=int, default=KEEP_TOP, help=f"hits kept per query (default {KEEP_TOP})")
    parser.add_argument("--output", default=None, help="write results JSON here")
    parser.set_defaults(func=_bright)
