"""``reasonembed-rag bright``: evaluate a model on BRIGHT-style tasks through a chosen retrieval path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..evaluation.metrics import KEEP_TOP
from ..evaluation.report import format_table
from ..evaluation.runner import evaluate, results_json
from ..evaluation.tasks import load_tasks
from .common import add_task_arguments, load_model, task_names


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
    """Add ``bright`` to the ``reasonembed-rag`` parser."""
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
