"""``reasonembed-rag robustness``: query perturbations and corpus poisoning for any retriever, through the same
data sources and retrieval paths as ``reasonembed-rag bright``."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..evaluation.tasks import load_tasks
from ..llm import LLMChoice, LLMConfig, add_llm_arguments, choose_llm_from_args
from ..robustness.perturb import DEFAULT_RATE, FAMILIES
from ..robustness.poison import ATTACKS, DEFAULT_SIZES, HOTFLIP_STARTS, HotFlipSettings
from ..robustness.report import markdown_section, plot
from ..robustness.runner import run_robustness
from ..robustness.settings import DEFAULT_SEEDS, RobustnessSettings
from .common import add_task_arguments, exit_on_sigterm, load_model, task_names


@contextlib.contextmanager
def _llm(choice: LLMChoice, families: list[str]) -> Iterator[LLMConfig | None]:
    """The LLM config for paraphrases, or None: paraphrasing is opt-in, so the offline default (a local server that
    nothing asked for) does not run; --llm-local asks for it, --llm-base-url / --llm-model or OPENAI_* name another."""
    if "paraphrase" not in families or choice.source == "default":
        yield None
        return
    with choice.open(announce=True) as endpoint:
        yield endpoint.config


def _robustness(args: argparse.Namespace) -> int:
    hotflip = HotFlipSettings(args.hotflip_steps, args.hotflip_candidates, args.hotflip_tokens, args.hotflip_start)
    settings = RobustnessSettings(  # checked before anything is loaded, so a bad flag fails at once
        families=args.families,
        rate=args.rate,
        seeds=args.seeds,
        poison_sizes=[] if args.poison_sizes.lower() in ("", "0", "none") else args.poison_sizes,
        attacks=args.attacks,
        hotflip=hotflip,
        max_queries=args.max_queries,
    )
    choice = choose_llm_from_args(args)
    tasks = load_tasks(args.data, task_names(args), instruction=args.instruction)
    model = load_model(args)
    # A run stopped with SIGTERM still deletes its scratch poisoned collection on the way out.
    with exit_on_sigterm(), _llm(choice, settings.families) as llm:
        payload = run_robustness(
            tasks,
            [model],
            via=args.via,
            chroma=args.chroma,
            families=settings.families,
            rate=settings.rate,
            seeds=settings.seeds,
            poison_sizes=settings.poison_sizes,
            attacks=settings.attacks,
            hotflip=settings.hotflip,
            max_queries=settings.max_queries,
            llm=llm,
            show_progress=True,
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2) + "\n")
    picture = plot(payload, output.with_suffix(".png"))
    report = markdown_section(payload, heading="#", plot_path=picture.name)
    output.with_suffix(".md").write_text(report)
    print(report)
    print(f"results written to {output}, {output.with_suffix('.md')} and {picture}")
    return 0


def register(commands: Any) -> None:
    """Add ``robustness`` to the ``reasonembed-rag`` parser."""
    parser = commands.add_parser(
        "robustness",
        help="query perturbations and corpus poisoning for a model (or bm25)",
        description="Measure how a retriever holds up when queries are perturbed (misspelling, word-order shuffle, "
        "WordNet synonym swap, word and stopword removal, LLM paraphrase) and when adversarial passages are "
        "injected into its corpus (query-copy and HotFlip attacks; ASR@5/10/20/50). Scored like `bright`; "
        "passages go into a scratch copy of the collection, never the original. Writes JSON, Markdown and a plot.",
    )
    add_task_arguments(parser)
    parser.add_argument("--output", default="robustness.json", help="JSON path; .md and .png go beside it")
    parser.add_argument(
        "--families", default=",".join(FAMILIES), help=f"perturbation families (default: all: {','.join(FAMILIES)})"
    )
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help=f"share of words changed, 0-1 (default {DEFAULT_RATE})"
    )
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help=f"seeds per family (default {DEFAULT_SEEDS})")
    parser.add_argument(
        "--poison-sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="numbers of injected passages, comma-separated (default 10,50; 'none' to skip poisoning)",
    )
    parser.add_argument(
        "--attacks", default=",".join(ATTACKS), help=f"poisoning attacks (default {','.join(ATTACKS)})"
    )
    defaults = HotFlipSettings()
    parser.add_argument("--hotflip-steps", type=int, default=defaults.steps, help="flips tried per passage")
    parser.add_argument("--hotflip-candidates", type=int, default=defaults.candidates, help="tokens scored per flip")
    parser.add_argument("--hotflip-tokens", type=int, default=defaults.tokens, help="adversarial passage length")
    parser.add_argument(
        "--hotflip-start",
        choices=HOTFLIP_STARTS,
        default=defaults.start,
        help="start from the query-copy passage (default) or from random tokens",
    )
    parser.add_argument("--max-queries", type=int, default=None, help="seeded sample of queries per task")
    add_llm_arguments(
        parser,
        sampling={"temperature": 0.7, "top_p": 0.9, "max_tokens": 1024, "concurrency": 2},
        title="LLM for paraphrases (any OpenAI-compatible endpoint; none by default: OPENAI_* or --llm-local)",
    )
    parser.set_defaults(func=_robustness)
