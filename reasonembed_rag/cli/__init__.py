"""The ``reasonembed-rag`` command line: the top layer, the only part of ``reasonembed_rag`` that may dispatch to
``reasonembed_rag.training`` and ``reasonembed_rag.demos``.

One module per command group, each with a ``register(commands)`` that adds its sub-commands:

* :mod:`.embed` - ``models`` (the registry) and ``embed`` (texts or JSONL in, ``.npy`` out);
* :mod:`.store` - ``index`` and ``search`` (Chroma collections);
* :mod:`.bright` - ``bright`` (evaluation through the framework retrievers);
* :mod:`.robustness` - ``robustness`` (query perturbations and corpus poisoning);
* :mod:`.demo` - ``demo`` (the main job and its report);
* :mod:`.common` - the flags and loaders they share (imports none of the others).

This module only wires them together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..models import ModelNotAvailableError
from . import bright, demo, embed, robustness, store

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``reasonembed-rag`` parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="reasonembed-rag",
        description="ReasonEmbed embeddings for RAG: embed, index into Chroma, search, evaluate on BRIGHT, demo.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (embed, store, bright, robustness, demo):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``reasonembed-rag`` with ``argv`` (default: the process arguments); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ModelNotAvailableError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
