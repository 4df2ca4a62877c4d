"""``reasonembed-train synthesize``: ReMixer data synthesis from the command line.

:func:`register` adds the sub-command to ``reasonembed-train`` (see :mod:`training.cli`); ``python -m
training.remixer.cli ...`` runs it alone. The LLM comes from the ``--llm-*`` flags every command shares
(:func:`reasonembed_rag.llm.add_llm_arguments`; the older ``--base-url``, ``--model``, ... still work), else from
``OPENAI_BASE_URL`` / ``OPENAI_MODEL``, else the offline default: a local ``transformers serve`` of
SmolLM2-135M-Instruct, started before the run and stopped after it.

Example::

    reasonembed-train synthesize --seeds offline --output data/remixer-champ --annotator-logits
    reasonembed-train synthesize --seeds bright/ --tasks biology,pony --output data/remixer \\
        --llm-base-url http://gpu-box:8000/v1 --llm-model Qwen2.5-72B-Instruct --llm-concurrency 32
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasonembed_rag.llm import add_llm_arguments
from reasonembed_rag.llm.server import LOCAL_CONCURRENCY

logger = logging.getLogger(__name__)

LEGACY_LLM_FLAGS = {
    "--llm-base-url": ["--base-url"],
    "--llm-api-key": ["--api-key"],
    "--llm-model": ["--model"],
    "--llm-local-model": ["--local-model"],
    "--llm-temperature": ["--temperature"],
    "--llm-top-p": ["--top-p"],
    "--llm-max-tokens": ["--max-tokens"],
    "--llm-concurrency": ["--concurrency"],
    "--llm-timeout": ["--timeout"],
    "--llm-max-retries": ["--max-retries"],
}
"""The spellings ``synthesize`` had before every command shared the ``--llm-*`` flags; they keep working."""


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``synthesize`` options."""
    data = parser.add_argument_group("seeds and corpus")
    data.add_argument(
        "--seeds",
        required=True,
        help="'offline' (the offline CHAMP task's train side), 'wordnet' (WordNet definitions of maths, statistics, "
        "physics, chemistry and computer-science concepts, scientific laws and equations), a BRIGHT-layout folder "
        "(each task's documents minus the gold documents of its queries), or a JSONL file of {id, content}.",
    )
    data.add_argument(
        "--tasks",
        type=_comma_list,
        default=None,
        help="Comma-separated tasks of a seed folder (default all); for a JSONL file its one task.",
    )
    data.add_argument(
        "--output",
        required=True,
        type=Path,
        help="Output folder: train/<task>.jsonl (training rows), work/ (stage logs), summary.json. "
        "Running again with the same folder resumes.",
    )
    data.add_argument("--corpus", default=None, help="JSONL of {id, content} to mine candidates from instead.")
    data.add_argument(
        "--exclude-gold",
        action="append",
        default=[],
        metavar="FOLDER",
        help="A BRIGHT-layout folder whose queries' gold documents must never seed (repeatable).",
    )
    data.add_argument("--instruction", default=None, help="Query instruction for the rows' 'prompt' field.")
    data.add_argument(
        "--min-chars",
        type=int,
        default=None,
        help="Shortest seed document in characters (default 200; 16 for --seeds offline or wordnet).",
    )
    data.add_argument("--max-chars", type=int, default=5000, help="Longest seed document in characters.")
    data.add_argument("--max-seeds", type=int, default=None, help="Seeds per task (default all).")
    data.add_argument("--queries-per-seed", type=int, default=1, help="Queries generated from each seed.")
    data.add_argument("--seed", type=int, default=42, help="Seed for sampling seeds, lengths and difficulties.")
    data.add_argument("--prompts", default=None, help="JSON file overlaid on the packaged prompts.json.")
    data.add_argument(
        "--hold-out-ood",
        action="store_true",
        help="With --seeds offline or wordnet: leave out everything the out-of-domain validation champ_concepts_ood "
        "holds out (its problems seed nothing; its held-out concepts are neither seeds nor candidates; WordNet "
        "definitions naming one are dropped).",
    )
    data.add_argument(
        "--train-side-rows",
        action="store_true",
        help="With --seeds offline: also write the TRAIN problems' real gold labels as rows "
        "(train/champ_concepts_train_gold.jsonl; BM25 hard negatives, worked solution as reasoning query).",
    )

    add_llm_arguments(
        parser,
        sampling={"temperature": 1.0, "top_p": 0.6},
        aliases=LEGACY_LLM_FLAGS,
        notes={
            "--llm-concurrency": "requests in flight (default 4; 16 for the local server, which batches them)",
            "--llm-max-tokens": "token cap of generated queries and reasoning (default 1024; local server: 160)",
        },
    )

    stages = parser.add_argument_group("stages")
    stages.add_argument("--clean-domain", action="store_true", help="Run stage 0 (Yes/No domain cleaning).")
    stages.add_argument("--miner", default="bm25", help="'bm25' or an encoder alias / model folder.")
    stages.add_argument("--mine-depth", type=int, default=1000, help="Documents retrieved per query.")
    stages.add_argument(
        "--keep-candidates",
        type=int,
        default=100,
        help="Candidates kept (and annotated) per query after dropping the source.",
    )
    stages.add_argument(
        "--annotation-style",
        choices=("auto", "reasoned", "direct"),
        default="auto",
        help="'reasoned' (analysis then <score>), 'direct' (score only, few-shot); auto: direct for "
        "the local server, reasoned for an endpoint.",
    )
    stages.add_argument(
        "--annotator-logits",
        action="store_true",
        help="Score stage 3 in-process from the score token's logits (small local models).",
    )
    stages.add_argument(
        "--annotator-model",
        default=None,
        help="Model folder for --annotator-logits (default: the local server's model).",
    )
    stages.add_argument("--annotator-batch-size", type=int, default=8)
    stages.add_argument(
        "--logit-calibration",
        choices=("none", "query"),
        default="none",
        help="Scores from logits: 'none' (most likely digit) or 'query' (each candidate's distribution divided by "
        "the mean over the query's candidates first; removes a small model's constant bias to one digit).",
    )
    stages.add_argument("--positive-threshold", type=int, default=3, help="Scores >= this are positives.")
    stages.add_argument(
        "--round-trip",
        type=int,
        default=0,
        metavar="K",
        help="Round-trip consistency filter (0: off): keep a query only when --round-trip-retriever ranks its seed "
        "document (a CHAMP problem seed: one of its gold concepts) in the top K of the corpus AND the annotator "
        "scores that document >= --positive-threshold; it becomes the row's positive, the candidates scored below "
        "the threshold its negatives (the ones scored above are masked). Verdicts: work/<task>/round_trip.jsonl.",
    )
    stages.add_argument(
        "--round-trip-retriever",
        default="bm25",
        help="The filter's independent retriever: 'bm25' (default) or an encoder alias / model folder, never the "
        "model being trained.",
    )
    stages.add_argument("--chunk-size", type=int, default=16, help="Seeds taken through all stages together.")
    stages.add_argument("--no-progress", action="store_true", help="No progress bars.")


def register(subparsers: Any) -> None:
    """Add ``synthesize`` to ``reasonembed-train`` (sets ``handler``, which returns an exit code)."""
    parser = subparsers.add_parser(
        "synthesize",
        help="ReMixer: synthesise reasoning-intensive training data with an LLM.",
        description="ReMixer data synthesis (stages 0-4 and reasoning queries); resumable.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``synthesize`` from parsed arguments; print where the data is and the counts per stage."""
    from reasonembed_rag.llm import LLMClient, LLMError, choose_llm_from_args

    from .annotator import LogitAnnotator
    from .pipeline import ReMixer, SynthesisAborted, SynthesisSettings
    from .prompts import PromptBook, PromptError
    from .seeds import SeedError, load_sources

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per LLM request otherwise
    try:
        choice = choose_llm_from_args(args)
    except ValueError as error:
        print(f"reasonembed-train synthesize: error: {error}", file=sys.stderr)
        return 2
    local = choice.local
    style = args.annotation_style if args.annotation_style != "auto" else ("direct" if local else "reasoned")
    concurrency = args.llm_concurrency or (LOCAL_CONCURRENCY if local else 4)
    generation_tokens = args.llm_max_tokens or (160 if local else 1024)
    try:
        prompts = PromptBook(args.prompts)
        sources = load_sources(
            args.seeds,
            args.tasks,
            corpus=args.corpus,
            exclude_gold=args.exclude_gold,
            instruction=args.instruction,
            min_chars=args.min_chars,
            max_chars=args.max_chars,
            max_seeds=args.max_seeds,
            seed=args.seed,
            hold_out_ood=args.hold_out_ood,
        )
        settings = SynthesisSettings(
            output=args.output,
            seed=args.seed,
            queries_per_seed=args.queries_per_seed,
            clean_domain=args.clean_domain,
            miner=args.miner,
            mine_depth=args.mine_depth,
            keep_candidates=args.keep_candidates,
            annotation_style=style,
            positive_threshold=args.positive_threshold,
            logit_calibration=args.logit_calibration,
            round_trip_k=args.round_trip,
            round_trip_retriever=args.round_trip_retriever,
            chunk_size=args.chunk_size,
            show_progress=not args.no_progress,
        )
        settings.max_tokens.update(generate=generation_tokens, reasoning=generation_tokens)
        if args.train_side_rows and str(args.seeds) != "offline":
            raise ValueError("--train-side-rows needs --seeds offline (only the offline task has a train split).")
    except (SeedError, PromptError, ValueError) as error:
        print(f"reasonembed-train synthesize: error: {error}", file=sys.stderr)
        return 2
    train_side = 0
    if args.train_side_rows:
        from .train_side import write_offline_train_rows

        path, train_side = write_offline_train_rows(args.output)
        print(f"Train-side gold rows: {train_side} added to {path}", file=sys.stderr)
    for source in sources:
        print(
            f"{source.task}: {len(source.seeds)} seeds, {len(source.corpus)} corpus documents ({source.stats})",
            file=sys.stderr,
        )
    with contextlib.ExitStack() as stack:
        try:
            endpoint = stack.enter_context(choice.open(announce=True, concurrency=concurrency))
            config = endpoint.config
            client = LLMClient(config)
            annotator = None
            if args.annotator_logits:
                annotator_model = args.annotator_model or (config.model if local else None)
                annotator = LogitAnnotator(annotator_model, batch_size=args.annotator_batch_size)
            remixer = ReMixer(
                settings,
                llm=client,
                concurrency=concurrency,
                prompts=prompts,
                annotator=annotator,
                run_info={
                    "llm": config.model,
                    "base_url": config.base_url,
                    "temperature": config.temperature,
                    "top_p": config.top_p,
                    "local_server": local,
                    "annotator_model": annotator.name if annotator else None,
                    "train_side_rows_added": train_side,
                },
            )
            summary = remixer.run(sources)
        except (SynthesisAborted, LLMError, RuntimeError, ValueError) as error:
            print(f"reasonembed-train synthesize: error: {error}", file=sys.stderr)
            return 1
    _report(summary, args.output)
    return 0


def _report(summary: dict[str, Any], output: Path) -> None:
    totals = summary["totals"]
    run_stats = summary["this_run"]
    generate, annotate, label = totals["generate"], totals["annotate"], totals["label"]
    print(f"Training rows: {label['rows']} in {output / 'train'}/ (summary: {output / 'summary.json'})")
    print(
        f"  queries: {generate['ok']} ok, {generate['duplicate']} duplicate, {generate['malformed']} malformed "
        f"{generate.get('malformed_reasons', {})}"
    )
    calibration = summary["settings"].get("logit_calibration")
    calibrated = (
        " (before calibration)" if summary["settings"]["annotation"] == "logits" and calibration != "none" else ""
    )
    print(
        f"  annotations: {annotate['scored']} scored, {annotate['unparseable']} unparseable, "
        f"scores{calibrated} {annotate.get('scores', {})}"
    )
    if summary["settings"].get("round_trip_k"):
        trip = totals["round_trip"]
        print(
            f"  round trip (top {summary['settings']['round_trip_k']} of {summary['settings']['round_trip_retriever']}"
            f" + annotator): {trip['kept']} kept of {trip['checked']}; dropped: {trip['retriever_miss']} missed by "
            f"the retriever, {trip['annotator_disagrees']} not confirmed by the annotator, {trip['no_target']} "
            "without a target"
        )
    print(
        f"  labels: {label['rows']} rows, {label['no_positive']} without a positive, {label['no_negative']} "
        f"without a negative, {label['no_reasoning']} without reasoning"
    )
    print(
        f"  this run: {run_stats['seconds']} s, {run_stats['queries_per_minute']} queries/min, "
        f"failed requests {run_stats['failed_requests']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m reasonembed_rag.training.remixer.cli`` (the same options as ``reasonembed-train synthesize``)."""
    parser = argparse.ArgumentParser(
        prog="python -m reasonembed_rag.training.remixer.cli", description="ReMixer data synthesis."
    )
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
