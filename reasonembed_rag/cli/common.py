"""Flags and loaders shared by the ``reasonembed-rag`` sub-commands: the model flags, the data/model/path flags of
``bright`` and ``robustness``, and loading what they name.

The bottom of the command-line layer: every other ``cli`` module may import this one; it imports none of them.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..evaluation.runner import VIAS
from ..evaluation.tasks import OFFLINE
from ..models import QUANTIZATIONS
from ..retrieval import load_retriever


@contextlib.contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Inside the block, SIGTERM (``kill``, a job scheduler's stop) exits through ``SystemExit(143)``, so ``finally``
    blocks and context managers run (say, deleting a scratch collection) instead of the process vanishing."""

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1 (``--keep 0`` would score nothing and report 0.0)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def read_text_file(path: Path) -> str:
    """A UTF-8 text file's contents; a missing file or bytes that are not UTF-8 exit with a message naming the file
    (and line) and the fix instead of a traceback."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SystemExit(f"{path} does not exist; check the path.") from None
    except IsADirectoryError:
        raise SystemExit(f"{path} is a folder; give a file.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SystemExit(
            f"{path}:{line}: not UTF-8 (byte 0x{raw[error.start]:02x}); save the file as UTF-8."
        ) from None


def add_model_arguments(parser: argparse.ArgumentParser, *, default: str | None = "minilm-l6") -> None:
    """The model-loading options shared by every sub-command that embeds."""
    parser.add_argument(
        "--model", default=default, help=f"registry alias, Hub id, model folder or .gguf file (default: {default})"
    )
    devices = parser.add_mutually_exclusive_group()
    devices.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: first GPU, else CPU)")
    devices.add_argument(
        "--devices",
        type=_device_list,
        default=None,
        help="several devices at once, e.g. cuda:0,cuda:1: one model copy each, batches spread over them",
    )
    parser.add_argument("--dtype", default=None, help="float32, bfloat16, float16 or auto (default: auto)")
    parser.add_argument("--max-length", type=int, default=None, help="maximum tokens per text (default: the model's)")
    parser.add_argument(
        "--query-max-length", type=int, default=None, help="maximum tokens per query (default: --max-length)"
    )
    parser.add_argument(
        "--doc-max-length", type=int, default=None, help="maximum tokens per document (default: --max-length)"
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=None,
        help="padded tokens per forward pass (default: 2048 on CPU, 65536 on GPU); lower it if memory runs out",
    )
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default=None,
        help="int8: dynamic int8 linear layers on CPU; 8bit / 4bit: bitsandbytes weights on CUDA "
        "(pip install bitsandbytes) (default: none)",
    )


def _device_list(value: str) -> list[str]:
    devices = [part.strip() for part in value.split(",") if part.strip()]
    if not devices:
        raise argparse.ArgumentTypeError(f"no device in {value!r}; give e.g. cuda:0,cuda:1")
    return devices


def load_encoder(args: argparse.Namespace):  # noqa: ANN201 - returns ReasonEmbedEncoder
    """The encoder named by :func:`add_model_arguments`' flags (imported here so ``--help`` stays fast)."""
    from ..encoder import ReasonEmbedEncoder

    return ReasonEmbedEncoder.from_pretrained(
        args.model,
        device=args.device,
        devices=args.devices,
        dtype=args.dtype,
        max_length=args.max_length,
        query_max_length=args.query_max_length,
        document_max_length=args.doc_max_length,
        batch_tokens=args.batch_tokens,
        quantize=args.quantize,
    )


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """The data, model and retrieval-path flags shared by ``bright`` and ``robustness``."""
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


def task_names(args: argparse.Namespace) -> list[str] | None:
    """``--tasks`` as a list (None: every task in ``--data``)."""
    return [t.strip() for t in args.tasks.split(",")] if args.tasks else None


def load_model(args: argparse.Namespace) -> Any:
    """``--model``: :class:`~reasonembed_rag.retrieval.BM25` for ``bm25``, else the encoder loaded with the model
    flags."""
    return load_retriever(args.model, load=lambda _: load_encoder(args))
