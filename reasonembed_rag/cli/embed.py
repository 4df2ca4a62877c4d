"""The ``reasonembed-rag embed`` sub-command (texts or JSONL in, ``.npy`` out) and ``models`` (the registry)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..jsonl import read_jsonl
from ..models import REGISTRY
from .common import add_model_arguments, load_encoder, read_text_file


def read_texts(path: Path, field: str | None) -> list[str]:
    """One text per line of a ``.txt`` file, or one field of each row of a ``.jsonl`` file."""
    if not path.exists():
        raise SystemExit(f"--input {path} does not exist; give a .txt file (one text per line) or a .jsonl file.")
    if path.suffix != ".jsonl":
        return read_text_file(path).splitlines()
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

    output = Path(args.output)
    if output.suffix != ".npy":
        output = output.with_name(output.name + ".npy")  # numpy.save adds it; say where the file really is
    if not output.parent.is_dir():
        raise SystemExit(f"The folder of --output {output} does not exist; create {output.parent} or choose another.")
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
    np.save(output, vectors)
    print(f"{len(texts)} {args.kind} -> {output} ({vectors.shape[0]} x {vectors.shape[1]}, float32)")
    return 0


def _models(args: argparse.Namespace) -> int:
    for spec in REGISTRY.values():
        print(f"{spec.alias:34} {spec.source:8} {spec.pooling:10} {spec.licence:13} {spec.description}")
    return 0


def register(commands: Any) -> None:
    """Add ``models`` and ``embed`` to the ``reasonembed-rag`` parser."""
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
    embed.add_argument(
        "--output", default="embeddings.npy", help="output .npy path, .npy added if missing (default: embeddings.npy)"
    )
    add_model_arguments(embed)
    embed.set_defaults(func=_embed)
