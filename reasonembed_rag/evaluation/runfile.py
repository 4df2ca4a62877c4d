"""TREC run files: ``qid Q0 docid rank score tag``, one line per kept hit, best first (what trec_eval, pytrec_eval,
ir-measures and BRIGHT's tools read).

``reasonembed-rag bright --save-run DIR`` writes ``DIR/<task>.run`` per task; ``--load-run DIR`` reads them back and
scores them without a model.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

RUN_SUFFIX = ".run"


def run_path(folder: str | os.PathLike[str], task: str) -> Path:
    """Where ``--save-run`` / ``--load-run`` keep a task's run: ``<folder>/<task>.run``."""
    return Path(folder) / f"{task}{RUN_SUFFIX}"


def run_tag(*parts: str) -> str:
    """A run tag without spaces: the parts (e.g. the model's last path component and the retrieval path) joined by
    ``.``, anything outside ``[A-Za-z0-9._-]`` replaced by ``_``."""
    names = [Path(part).name or part for part in parts if part]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", ".".join(names)) or "run"


def write_run(path: str | os.PathLike[str], run: Mapping[str, Mapping[str, float]], tag: str) -> int:
    """Write ``run`` (query id -> document id -> score) as a TREC run file, each query's hits best first (ties in
    document id order) and ranked 1..n; scores keep full float precision so that reading back scores identically.

    Returns:
        The number of lines written.
    """
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"A TREC run tag is one word, got {tag!r}; see run_tag().")
    lines = []
    for query_id, hits in run.items():
        for column, value in (("query id", query_id), *((f"document id of query {query_id}", d) for d in hits)):
            if not value or any(c.isspace() for c in value):
                raise ValueError(f"A TREC run file cannot hold a {column} with spaces or empty: {value!r}.")
        ranked = sorted(hits.items(), key=lambda hit: (-hit[1], hit[0]))
        lines += [f"{query_id} Q0 {doc} {rank} {score!r} {tag}" for rank, (doc, score) in enumerate(ranked, 1)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def read_run(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, float]], str | None]:
    """Read a TREC run file: (query id -> document id -> score, the first line's tag or None for an empty file).

    The rank column is checked to be an integer but not used: scores order the hits, as in trec_eval.

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: A malformed line (not 6 columns, a rank that is not an integer, a score that is not a finite
            number) or a document listed twice for one query, naming ``path:line``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No run file at {path}; write one with `reasonembed-rag bright --save-run DIR`.")
    run: dict[str, dict[str, float]] = {}
    tag = None
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            where = f"{path}:{number}"
            if len(parts) != 6:
                raise ValueError(
                    f"{where}: expected 6 columns 'qid Q0 docid rank score tag', got {len(parts)}: "
                    f"{line.strip()!r:.120}"
                )
            query_id, _, doc_id, rank, score_text, line_tag = parts
            try:
                int(rank)
                score = float(score_text)
            except ValueError:
                raise ValueError(
                    f"{where}: rank must be an integer and score a number, got {rank!r} and {score_text!r}."
                ) from None
            if not math.isfinite(score):
                raise ValueError(f"{where}: score must be a finite number, got {score_text!r}.")
            hits = run.setdefault(query_id, {})
            if doc_id in hits:
                raise ValueError(f"{where}: document {doc_id!r} is listed twice for query {query_id!r}.")
            hits[doc_id] = score
            tag = tag or line_tag
    return run, tag
