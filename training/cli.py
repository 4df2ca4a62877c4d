"""``reasonembed-train``: the training command line.

Subcommands:

* ``train`` - InfoNCE or Redapter training, writing a model folder (see :mod:`training.trainer`).
* ``export`` - export the model of a checkpoint (adapter or merged).
* ``card`` - add ``reasonembed-rag bright`` results to a model folder and regenerate its model card.
* ``wise-ft`` - scale a LoRA model's adapter by alpha (weight averaging with the backbone, WiSE-FT).
* ``soup`` - average several LoRA runs of one recipe (seeds) into one adapter (a uniform model soup).
* ``synthesize`` - ReMixer data synthesis, registered by :mod:`training.remixer.cli` when that module is present.
* ``champ-data`` - training rows for the out-of-domain validation split (:mod:`training.remixer.train_side`).

Adding a subcommand: write a module with ``register(subparsers)`` that adds its parser and sets
``handler=`` through ``set_defaults`` (a callable taking the parsed namespace, returning an exit code or None), and
list the module in :data:`SUBCOMMAND_MODULES`. A listed module that does not exist is skipped; one that fails to
import (a missing optional dependency) is reported when its subcommand could have been used.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "reasonembed_rag.training.remixer.cli",
    "reasonembed_rag.training.remixer.train_side",
)
"""Modules with a ``register(subparsers)`` hook, imported when present: ReMixer's ``synthesize``, ``champ-data``."""

Registrar = Callable[[Any], None]


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def register_train(subparsers: Any) -> None:
    """The ``train`` subcommand."""
    from reasonembed_rag.models import POOLINGS

    from .trainer import TrainingArguments

    defaults = TrainingArguments(data="", model="", output="")
    parser = subparsers.add_parser(
        "train",
        help="train an embedding model with Redapter or InfoNCE",
        description="Train a ReasonEmbed-style embedding model on JSONL rows {prompt, query, reasoning_query, pos, "
        "neg} (the released ReasonEmbed data schema) and write a model folder that "
        "ReasonEmbedEncoder.from_pretrained loads.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    what = parser.add_argument_group("what to train")
    what.add_argument("--data", required=True, help="training JSONL file, or a folder of them (one task per file)")
    what.add_argument(
        "--model", required=True, help="backbone: registry alias (smollm2-135m, minilm-l6), Hub id, or folder"
    )
    what.add_argument("--loss", choices=["redapter", "infonce"], default=defaults.loss)
    what.add_argument("--output", required=True, help="model folder to write (log and checkpoints go there too)")
    what.add_argument("--name", help="model name for the card (default: the output folder's name)")
    what.add_argument(
        "--query-format", default=defaults.query_format, help="query format the model is trained (and recorded) with"
    )
    what.add_argument(
        "--pooling",
        choices=POOLINGS,
        default=None,
        help="pooling the model is trained (and recorded) with (default: the backbone's; last-token for decoders)",
    )

    method = parser.add_argument_group("LoRA or full fine-tuning (default: LoRA for decoders, full for encoders)")
    choice = method.add_mutually_exclusive_group()
    choice.add_argument("--full", dest="lora", action="store_false", default=None, help="full fine-tuning")
    choice.add_argument("--lora", dest="lora", action="store_true", default=None, help="LoRA, also for encoders")
    method.add_argument("--lora-rank", type=int, default=defaults.lora_rank)
    method.add_argument("--lora-alpha", type=int, default=defaults.lora_alpha)
    method.add_argument("--lora-dropout", type=float, default=defaults.lora_dropout)
    method.add_argument(
        "--lora-targets",
        type=_comma_list,
        default=None,
        help="comma-separated module names (default: all attention + MLP projections)",
    )

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument(
        "--lr", "--learning-rate", dest="learning_rate", type=float, default=defaults.learning_rate
    )
    optimisation.add_argument("--warmup-ratio", type=float, default=defaults.warmup_ratio)
    optimisation.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    optimisation.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm, help="0 disables")
    optimisation.add_argument("--epochs", type=int, default=defaults.epochs)
    optimisation.add_argument("--max-steps", type=int, default=None, help="optimiser steps (default: the epochs')")
    optimisation.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="queries per device and micro-batch (default: the data's batch_size, else 8)",
    )
    optimisation.add_argument(
        "--group-size",
        type=int,
        default=None,
        help="passages per query, 1 positive + hard negatives (default: the data's train_group_size, else 16)",
    )
    optimisation.add_argument("--grad-accum", type=int, default=defaults.grad_accum)
    optimisation.add_argument("--query-max-length", type=int, default=defaults.query_max_length)
    optimisation.add_argument("--passage-max-length", type=int, default=defaults.passage_max_length)
    optimisation.add_argument(
        "--reasoning-query-max-length", type=int, default=None, help="default: --query-max-length"
    )
    optimisation.add_argument("--temperature", type=float, default=defaults.temperature)
    optimisation.add_argument(
        "--redapter-warmup-steps",
        type=int,
        default=defaults.redapter_warmup_steps,
        help="optimiser steps of plain InfoNCE before Redapter weighting starts",
    )
    optimisation.add_argument(
        "--mask-false-negatives",
        action="store_true",
        help="leave a query's other positives out of its negatives when the batch holds them (small corpora)",
    )
    optimisation.add_argument("--seed", type=int, default=defaults.seed)

    running = parser.add_argument_group("running")
    running.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: a GPU if there is one)")
    running.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 autocast (default: on with a CUDA GPU that supports it)",
    )
    running.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory")
    running.add_argument(
        "--sub-batch-size",
        type=int,
        default=defaults.sub_batch_size,
        help="texts per forward pass, 0 = all at once (lowers memory, same result)",
    )
    running.add_argument(
        "--save-steps", type=int, default=defaults.save_steps, help="checkpoint every N steps (0: none)"
    )
    running.add_argument(
        "--save-total-limit",
        type=int,
        default=defaults.save_total_limit,
        help="keep the newest N checkpoints (0: all)",
    )
    running.add_argument("--checkpoint-dir", default=None, help="default: OUTPUT/checkpoints")
    running.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        help="continue from the newest checkpoint, or from the checkpoint folder given",
    )
    running.add_argument(
        "--skip-malformed", action="store_true", help="skip and count malformed rows instead of stopping at the first"
    )
    running.add_argument("--overwrite", action="store_true", help="replace a model already in --output")
    running.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    export = parser.add_argument_group("export")
    export.add_argument(
        "--export-form",
        choices=["adapter", "merged"],
        default=defaults.export_form,
        help="LoRA runs: base + adapter (small) or merged full weights",
    )
    export.add_argument(
        "--adapter-dtype",
        choices=["float32", "float16", "bfloat16"],
        default=defaults.adapter_dtype,
        help="storage dtype of the adapter weights (float16 halves the size)",
    )
    parser.set_defaults(handler=_run_train)


def _run_train(namespace: argparse.Namespace) -> int:
    from .trainer import TrainingArguments, train

    values = {k: v for k, v in vars(namespace).items() if k not in ("handler", "command")}
    result = train(TrainingArguments.from_dict(values))
    last = result.history[-1] if result.history else None
    summary = f"Trained {result.steps} steps in {result.seconds:.0f} s; model folder: {result.output}"
    if last is not None:
        summary += f" (last loss {last.loss:.4f})"
    print(summary)
    return 0


def register_export(subparsers: Any) -> None:
    """The ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export the model of a training checkpoint",
        description="Rebuild a run from one of its checkpoints and write a model folder (adapter or merged).",
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint-<step> folder")
    parser.add_argument("--output", required=True, help="model folder to write")
    parser.add_argument("--form", choices=["adapter", "merged"], default="adapter")
    parser.add_argument(
        "--adapter-dtype", choices=["float32", "float16", "bfloat16"], default=None, help="default: the run's"
    )
    parser.set_defaults(handler=_run_export)


def _run_export(namespace: argparse.Namespace) -> int:
    from .trainer import export_checkpoint

    folder = export_checkpoint(
        namespace.checkpoint, namespace.output, form=namespace.form, adapter_dtype=namespace.adapter_dtype
    )
    print(f"Wrote {folder}")
    return 0


def register_card(subparsers: Any) -> None:
    """The ``card`` subcommand."""
    parser = subparsers.add_parser(
        "card",
        help="add measured results to a model folder's card",
        description="Store `reasonembed-rag bright --output` result files in MODEL/results.json (rows of the same "
        "model are replaced) and regenerate MODEL/README.md with the results table.",
    )
    parser.add_argument("model", help="a model folder written by `reasonembed-train train`")
    parser.add_argument("--results", nargs="+", required=True, help="results.json files, one row each")
    parser.add_argument(
        "--note",
        help="a sentence printed under the results table (replaces an earlier one), e.g. which rows saw a task's "
        "queries in training",
    )
    parser.set_defaults(handler=_run_card)


def _run_card(namespace: argparse.Namespace) -> int:
    from .export import add_results

    print(f"Wrote {add_results(namespace.model, namespace.results, note=namespace.note)}")
    return 0


def register_wise_ft(subparsers: Any) -> None:
    """The ``wise-ft`` subcommand."""
    parser = subparsers.add_parser(
        "wise-ft",
        help="average a LoRA model with its backbone (scale the adapter)",
        description="Scale a LoRA adapter folder's weight delta by ALPHA in place: the weights become backbone + "
        "ALPHA x (trained - backbone) (WiSE-FT); the factor is recorded in the model card.",
    )
    parser.add_argument("model", help="a LoRA adapter model folder written by `reasonembed-train train`")
    parser.add_argument("--alpha", type=float, required=True, help="0 = the backbone, 1 = the model as trained")
    parser.set_defaults(handler=_run_wise_ft)


def _run_wise_ft(namespace: argparse.Namespace) -> int:
    from .export import scale_adapter

    print(f"Scaled {scale_adapter(namespace.model, namespace.alpha)} by {namespace.alpha}")
    return 0


def register_soup(subparsers: Any) -> None:
    """The ``soup`` subcommand."""
    parser = subparsers.add_parser(
        "soup",
        help="average LoRA runs of one recipe (seeds) into one adapter",
        description="Write the uniform model soup of LoRA adapter folders (the mean of their weights) to OUTPUT as "
        "one exact LoRA adapter whose rank is the sum of theirs; --alpha also applies WiSE-FT to the soup.",
    )
    parser.add_argument("models", nargs="+", help="LoRA adapter model folders written by `reasonembed-train train`")
    parser.add_argument("--output", required=True, help="the soup's model folder (new)")
    parser.add_argument("--alpha", type=float, default=1.0, help="WiSE-FT on the soup: 1 = the soup as averaged")
    parser.set_defaults(handler=_run_soup)


def _run_soup(namespace: argparse.Namespace) -> int:
    from .export import soup_adapters

    folder = soup_adapters(namespace.models, namespace.output, alpha=namespace.alpha)
    print(f"Wrote the soup of {len(namespace.models)} runs to {folder}")
    return 0


REGISTRARS: list[Registrar] = [register_train, register_export, register_card, register_wise_ft, register_soup]
"""Built-in subcommands."""


def _optional_registrars() -> tuple[list[Registrar], list[str]]:
    """``register`` hooks of the modules in :data:`SUBCOMMAND_MODULES` that exist, and import failures."""
    found: list[Registrar] = []
    failures: list[str] = []
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name and (name == error.name or name.startswith(error.name + ".")):
                continue  # the module (or its package) is not there: no such subcommand
            failures.append(f"{name}: {error}")
            continue
        except ImportError as error:
            failures.append(f"{name}: {error}")
            continue
        register = getattr(module, "register", None)
        if callable(register):
            found.append(register)
        else:
            failures.append(f"{name}: no register(subparsers) function")
    return found, failures


def build_parser() -> tuple[argparse.ArgumentParser, list[str], list[str]]:
    """The argument parser, its subcommand names, and the optional subcommand modules that failed to load."""
    parser = argparse.ArgumentParser(
        prog="reasonembed-train",
        description="ReasonEmbed training: ReMixer data synthesis, Redapter / InfoNCE training, export.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    optional, failures = _optional_registrars()
    for register in [*REGISTRARS, *optional]:
        register(subparsers)
    return parser, sorted(subparsers.choices), failures


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``reasonembed-train``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser, commands, failures = build_parser()
    wanted = next((a for a in arguments if not a.startswith("-")), None)
    if failures and (wanted is None or wanted not in commands):
        for failure in failures:
            print(f"note: a subcommand module could not be loaded: {failure}", file=sys.stderr)
    namespace = parser.parse_args(arguments)
    handler = getattr(namespace, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from reasonembed_rag.models import ModelNotAvailableError

    from .data import TrainingDataError

    try:
        code = handler(namespace)
    except (TrainingDataError, ModelNotAvailableError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"reasonembed-train {namespace.command}: error: {error}", file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
