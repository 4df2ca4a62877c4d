"""The ``reasonembed-rag`` command line.

Sub-commands: ``models`` (the registry), ``embed`` (texts or JSONL in, ``.npy`` out), ``index`` and ``search``
(Chroma collections), ``bright`` (evaluation through the framework retrievers) and ``demo`` (the main job).
Each sub-command's parser lives next to the code it drives; this module only wires them together.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .jsonl import read_jsonl
from .models import REGISTRY, ModelNotAvailableError


def add_model_arguments(parser: argparse.ArgumentParser, *, default: str | None = "minilm-l6") -> None:
    """The model-loading options shared by every sub-command that embeds."""
    parser.add_argument(
        "--model", default=default, help=f"registry alias, Hub id, model folder or .gguf file (default: {default})"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: first GPU, else CPU)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 or auto (default: auto)")
    parser.add_argument("--max-length", type=int, default=None, help="maximum tokens per text (default: the model's)")


def load_encoder(args: argparse.Namespace):  # noqa: ANN201 - returns ReasonEmbedEncoder
    from .encoder import ReasonEmbedEncoder

    return ReasonEmbedEncoder.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, max_length=args.max_length
    )


def read_texts(path: Path, field: str | None) -> list[str]:
    """One text per line of a ``.txt`` file, or one field of each row of a ``.jsonl`` file."""
    if path.suffix != ".jsonl":
        return path.read_text(encoding="utf-8").splitlines()
    texts = []
    names = [field] if field else ["text", "content", "query"]
    for number, row in read_jsonl(path, error=lambda message: SystemExit(f"{message} Fix or remove that line.")):
        value = next((row[name] for name in names if name in row), None)
        if not isinstance(value, str):
            raise SystemExit(f"{path}:{number}: no string field {' / '.join(names)}; choose one with --field.")
        texts.append(value)
    return texts


def _embed(args: argparse.Namespace) -> int:
    import numpy as np

    texts = list(args.texts) + (read_texts(Path(args.input), args.field) if args.input else [])
    if not texts:
        raise SystemExit("Nothing to embed: give texts as arguments or --input FILE (.txt or .jsonl).")
    encoder = load_encoder(args)
    if args.kind == "queries":
        vectors = encoder.encode_queries(texts, task=args.task, instruction=args.instruction, show_progress=True)
    elif args.task or args.instruction:
        raise SystemExit("Documents never get an instruction: drop --task/--instruction or use --as queries.")
    else:
        vectors = encoder.encode_documents(texts, show_progress=True)
    np.save(args.output, vectors)
    print(f"{len(texts)} {args.kind} -> {args.output} ({vectors.shape[0]} x {vectors.shape[1]}, float32)")
    return 0


def _models(args: argparse.Namespace) -> int:
    for spec in REGISTRY.values():
        print(f"{spec.alias:34} {spec.source:8} {spec.pooling:10} {spec.licence:13} {spec.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reasonembed-rag",
        description="ReasonEmbed embeddings for RAG: embed, index into Chroma, search, evaluate on BRIGHT, demo.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser("models", help="list the known model aliases")
    models.set_defaults(func=_models)

    embed = commands.add_parser(
        "embed",
        help="embed texts into a .npy file",
        description="Embed texts (arguments, a .txt file with one text per line, or a .jsonl file) into float32 "
        "L2-normalised vectors saved with numpy.",
    )
    embed.add_argument("texts", nargs="*", help="texts to embed")
    embed.add_argument("--input", help=".txt (one text per line) or .jsonl file")
    embed.add_argument("--field", default=None, help="JSONL field to read (default: text, content or query)")
    embed.add_argument("--as", dest="kind", choices=["queries", "documents"], default="documents")
    embed.add_argument("--task", help="BRIGHT task whose instruction queries get (e.g. biology, aops)")
    embed.add_argument("--instruction", help="explicit query instruction (instead of --task)")
    embed.add_argument("--output", default="embeddings.npy", help="output .npy path (default: embeddings.npy)")
    add_model_arguments(embed)
    embed.set_defaults(func=_embed)

    from . import demo, store_cli
    from .evaluation import cli as evaluation_cli
    from .robustness import cli as robustness_cli

    for module in (store_cli, evaluation_cli, robustness_cli, demo):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ModelNotAvailableError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
