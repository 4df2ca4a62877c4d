"""The ``reasonembed-rag index`` and ``reasonembed-rag search`` sub-commands (Chroma collections).

``index`` reads a JSONL file (one ``{"id": ..., "content": ...}`` object per line, like BRIGHT's
``documents.jsonl``; ``.jsonl.gz`` too) or a folder of text files (ids are the paths relative to the folder; links
leading out of it are skipped) and streams it into a collection in small chunks; running it again adds only new ids,
so it also resumes an interrupted run. ``--verify`` first re-embeds records missing from the vector index,
``--reembed`` rebuilds the collection for a changed model. An embedded folder takes one writer at a time (the second
waits for the first). ``search`` prints ranked ids, cosine scores and snippets. Both take
``--chroma PATH|http://host:port``, ``--collection``, ``--model`` and ``--task`` or ``--instruction``; the model
defaults to the one that built the collection.

This module only parses arguments and prints; the work is in :mod:`reasonembed_rag.store`, imported when a command
runs so that ``reasonembed-rag --help`` does not import chromadb.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..jsonl import read_jsonl
from .common import add_model_arguments, load_encoder, positive_int, read_text_file

__all__ = ["add_index_parser", "add_search_parser", "register"]

DEFAULT_MODEL = "minilm-l6"
DEFAULT_PATTERNS = "*.txt,*.md"


def register(subparsers: Any) -> None:
    """Add both sub-commands to the ``reasonembed-rag`` parser."""
    add_index_parser(subparsers)
    add_search_parser(subparsers)


def _add_collection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", required=True, help="collection name (3-512 characters of [a-zA-Z0-9._-])")
    parser.add_argument(
        "--chroma",
        default=None,
        help="Chroma folder or server URL http://host:port (default: $REASONEMBED_RAG_HOME/chroma, else "
        "~/.local/share/reasonembed-rag/chroma)",
    )
    add_model_arguments(parser, default=None)
    instruction = parser.add_mutually_exclusive_group()
    instruction.add_argument("--task", help="task whose instruction queries get (e.g. biology, theoremqa_theorems)")
    instruction.add_argument("--instruction", help="explicit query instruction (instead of --task)")


def add_index_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``index`` sub-command: JSONL file or folder of text files -> collection."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "index",
        help="put a JSONL file or a folder of text files into a Chroma collection",
        description="Embed documents and add them to a Chroma collection (created in cosine space if missing). "
        "Ids already in the collection are skipped without embedding, so re-running adds only new documents. "
        "The model defaults to the one that built the collection, else minilm-l6.",
    )
    parser.add_argument("source", type=Path, help="a .jsonl / .jsonl.gz file with id and content fields, or a folder")
    _add_collection_arguments(parser)
    parser.add_argument("--id-field", default="id", help="JSONL field holding the document id (default: id)")
    parser.add_argument("--content-field", default="content", help="JSONL field holding the text (default: content)")
    parser.add_argument(
        "--pattern",
        default=DEFAULT_PATTERNS,
        help=f"comma-separated file name patterns read from a folder, recursively (default: {DEFAULT_PATTERNS})",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="documents embedded and written per chunk; an interruption loses at most one (default: 256)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="first find documents the collection counts but its vector index lacks (left by two writers at once "
        "before the folder lock) and embed them again",
    )
    parser.add_argument(
        "--reembed",
        action="store_true",
        help="delete the collection and embed everything again, e.g. after the model was trained again",
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for another writer on the same Chroma folder (default: 600; concurrent writers "
        "belong on a Chroma server)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="embed on a Ray cluster (needs the ray extra): 'local' (the default when the flag has no value) starts "
        "one on this machine, 'auto' or host:port joins one; this process writes the vectors (see docs/scale.md)",
    )
    parser.add_argument(
        "--ray-workers", type=int, default=None, help="encoder actors with --ray (default: one per GPU, else per CPU)"
    )
    parser.set_defaults(func=run_index)
    return parser


def add_search_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``search`` sub-command: queries -> ranked ids, scores and snippets."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "search",
        help="search a Chroma collection",
        description="Print the k nearest documents of each query: rank, cosine score, id and a snippet. The model "
        "defaults to the one that built the collection.",
    )
    parser.add_argument("queries", nargs="+", help="one or more queries")
    _add_collection_arguments(parser)
    parser.add_argument("-k", "--top-k", dest="k", type=int, default=10, help="documents per query (default: 10)")
    parser.add_argument("--snippet-chars", type=int, default=160, help="characters of text shown (default: 160)")
    parser.add_argument("--json", action="store_true", help="print JSON: one list of hits per query")
    parser.set_defaults(func=run_search)
    return parser


def run_index(args: argparse.Namespace) -> int:
    """Index ``args.source`` into ``args.collection``; print what was added.

    Ctrl-C stops cleanly (exit status 130): the chunks already written stay, and running the command again resumes.
    """
    from ..store import ChromaStore, FolderLockedError, IndexingInterrupted, recorded_model

    source: Path = args.source
    if not source.exists():
        raise SystemExit(f"{source} does not exist: give a .jsonl file (id and content per line) or a folder.")
    if source.is_dir():
        files, outside = _folder_files(source, args.pattern)
        for link in outside:
            print(f"skipped {link}: it links outside {source}", file=sys.stderr)
        if not files:
            raise SystemExit(f"No files matching {args.pattern} under {source}; choose others with --pattern.")
        documents: Iterator[dict[str, str]] = _read_folder(source, files)
        total: int | None = len(files)
    else:
        documents = _read_jsonl(source, args.id_field, args.content_field)
        # A pipe (say <(zcat ...)) can be read only once: no count for the progress bar then.
        total = _count_lines(source) if source.is_file() else None
    recorded = recorded_model(args.collection, chroma=args.chroma)
    # --reembed may change the model on purpose: the recorded one is then only the default.
    args.model = (args.model or recorded or DEFAULT_MODEL) if args.reembed else _check_model(
        args.model, recorded, args.collection
    )
    try:
        encoder = load_encoder(args)
        store = ChromaStore(
            args.collection,
            encoder,
            chroma=args.chroma,
            task=args.task,
            instruction=args.instruction,
            reembed=args.reembed,
            lock_timeout=args.lock_timeout,
        )
    except FolderLockedError as error:
        raise SystemExit(str(error)) from None
    except KeyboardInterrupt:
        print("Interrupted before any document was written.", file=sys.stderr)
        return 130
    show_progress = False if args.no_progress else None
    with store:
        before = store.count()
        try:
            if args.verify:
                found = store.verify(repair=True, show_progress=show_progress)
                removed = f"; {len(found.removed)} stored without text were removed" if found.removed else ""
                print(
                    f"Verified {store.name!r}: {len(found.missing)} documents were missing from the vector index, "
                    f"{found.reembedded} embedded again{removed}."
                )
                before = store.count()
            if args.ray:
                from ..distributed import connect, index_with_ray

                connect(args.ray, include_dashboard=False)
                job = index_with_ray(
                    store,
                    documents,
                    model=args.model,
                    workers=args.ray_workers,
                    write_batch_size=args.batch_size,
                    dtype=args.dtype,
                    max_length=args.max_length,
                    show_progress=show_progress,
                    total=total,
                )
                report = job.report
                print(
                    f"Ray: {job.workers} workers embedded {report.added} documents in {job.seconds:.1f} s "
                    f"({job.documents_per_second:.1f} documents/s)."
                )
            else:
                report = store.add_documents(
                    documents, batch_size=args.batch_size, show_progress=show_progress, total=total
                )
        except (IndexingInterrupted, KeyboardInterrupt):
            holds = store.count()
            print(
                f"\nInterrupted: {holds - before} documents were saved to {store.name!r} in this run (it holds "
                f"{holds}). Run the same command again to resume: documents already saved are skipped.",
                file=sys.stderr,
            )
            return 130
        print(
            f"Added {report.added} documents to {store.name!r} with {args.model} ({report.already_present} already "
            f"there, {report.duplicates} repeated ids skipped); it now holds {store.count()}. {store.location}."
        )
    return 0


def run_search(args: argparse.Namespace) -> int:
    """Search ``args.collection`` for each query; print ranked hits."""
    from ..store import ChromaStore, recorded_model

    if args.k < 1:
        raise SystemExit(f"-k must be at least 1, got {args.k}.")
    recorded = recorded_model(args.collection, chroma=args.chroma)
    if recorded is None and args.model is None:
        raise SystemExit(
            f"Collection {args.collection!r} not found (or built without reasonembed-rag) in "
            f"{args.chroma or 'the default Chroma folder'}: index it first with reasonembed-rag index ... "
            f"--collection {args.collection}, or check --chroma."
        )
    args.model = _check_model(args.model, recorded, args.collection)
    try:
        store = ChromaStore(
            args.collection,
            load_encoder(args),
            chroma=args.chroma,
            task=args.task,
            instruction=args.instruction,
            create=False,
        )
    except LookupError as error:
        raise SystemExit(str(error)) from error
    results = store.search(args.queries, k=args.k, include_content=True)
    if args.json:
        output = [
            {"query": query, "hits": [{"rank": rank, **asdict(hit)} for rank, hit in enumerate(hits, 1)]}
            for query, hits in zip(args.queries, results, strict=True)
        ]
        json.dump(output, sys.stdout, indent=1, default=dict)
        print()
        return 0
    for query, hits in zip(args.queries, results, strict=True):
        print(f"query: {query}")
        if not hits:
            print("  (no documents in the collection)")
        for rank, hit in enumerate(hits, 1):
            print(f"  {rank:>3}  {hit.score:.4f}  {hit.id}  {_snippet(hit.content, args.snippet_chars)}")
    return 0


def _check_model(model: str | None, recorded: str | None, collection: str) -> str:
    """The model to load: the one asked for, else the collection's; refuse a mismatch before loading anything."""
    if model is not None and recorded is not None and model != recorded:
        raise ValueError(
            f"Collection {collection!r} was built with model {recorded!r}, not {model!r}; their vectors cannot be "
            f"mixed. Use --model {recorded} (or leave --model out), or index into another collection."
        )
    return model or recorded or DEFAULT_MODEL


def _snippet(text: str | None, limit: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: max(limit - 3, 0)] + "..."


def _count_lines(path: Path) -> int:
    """Non-blank lines, counted on bytes: bytes that are not UTF-8 are reported by the reader, with their line."""
    with gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _read_jsonl(path: Path, id_field: str, content_field: str) -> Iterator[dict[str, str]]:
    for number, row in read_jsonl(path, error=lambda message: SystemExit(f"{message} Fix or remove that line.")):
        if id_field not in row or not isinstance(row.get(content_field), str):
            raise SystemExit(
                f"{path}:{number}: needs an {id_field!r} field and a string {content_field!r} field, got "
                f"{sorted(row)}; name the fields with --id-field / --content-field."
            )
        doc_id = row[id_field]
        if not isinstance(doc_id, str) or not doc_id:
            raise SystemExit(
                f"{path}:{number}: the {id_field!r} field is {json.dumps(doc_id)}, not a non-empty string. Ids are "
                "not converted, because 1 and \"1\" (or null and \"None\") would then name the same document: "
                "write ids as JSON strings."
            )
        yield {"id": doc_id, "content": row[content_field]}


def _folder_files(folder: Path, patterns: str) -> tuple[list[Path], list[Path]]:
    """Files under ``folder`` matching ``patterns``, and the matches that are links leading out of the folder.

    A link to a file elsewhere (say /etc/passwd) would put that file's text into the collection, so only files whose
    real path lies inside the folder are read.
    """
    root = folder.resolve()
    found = {path for pattern in patterns.split(",") if pattern.strip() for path in folder.rglob(pattern.strip())}
    inside: list[Path] = []
    outside: list[Path] = []
    for path in sorted(found):
        if not path.is_file():
            continue
        (inside if path.resolve().is_relative_to(root) else outside).append(path)
    return inside, outside


def _read_folder(folder: Path, files: list[Path]) -> Iterator[dict[str, str]]:
    for path in files:
        yield {"id": path.relative_to(folder).as_posix(), "content": read_text_file(path)}
