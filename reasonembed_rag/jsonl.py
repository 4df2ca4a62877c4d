"""The one JSONL reader, and the one append-only JSONL cache.

* :func:`read_jsonl` - rows of a ``.jsonl`` or ``.jsonl.gz`` file, with errors that name ``file:line``. Task
  folders, documents to index, training samples, ReMixer's stage files, the agents' answer cache and the trainer's
  log all read JSONL through it. Writing stays with each owner (their formats differ).
* :class:`JSONLCache` - rows keyed by their ``key`` field, appended and flushed one by one, so an interrupted run
  resumes where it stopped (the LLM reranker's scores and the query expansions live in one).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["JSONLCache", "JSONLError", "read_jsonl"]

logger = logging.getLogger(__name__)


class JSONLError(ValueError):
    """A line of a JSONL file that cannot be used; the message starts with ``file:line``."""


def read_jsonl(
    path: str | Path,
    *,
    fields: Sequence[str] = (),
    error: Callable[[str], BaseException] = JSONLError,
    skip: Callable[[Exception], None] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each non-blank line; every row is a JSON object.

    Args:
        path: A ``.jsonl`` file, or a gzip-compressed one (name ending in ``.gz``).
        fields: Fields every row must have.
        error: Builds the exception raised from its message (default :class:`JSONLError`); a caller passes its own
            ``ValueError`` subclass so its users catch one type.
        skip: Instead of raising, hand each bad line's exception to this function (to count or report it) and go on.

    Raises:
        The ``error`` type, naming ``file:line`` and what is wrong: bytes that are not UTF-8, malformed JSON, a value
        that is not an object, a missing field. A missing file raises ``FileNotFoundError``.

    Example:
        >>> for number, row in read_jsonl("documents.jsonl", fields=("id", "content")):  # doctest: +SKIP
        ...     print(number, row["id"])
    """
    path = Path(path)
    opener: Callable[..., Any] = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            problem = None
            try:
                # Without its newline, a cut-off line's error points at the line's end, not at "line 2 column 1".
                row = json.loads(raw.rstrip(b"\r\n").decode("utf-8"))
            except UnicodeDecodeError as decode_error:
                problem = (
                    f"not UTF-8 (byte 0x{raw[decode_error.start]:02x} at byte {decode_error.start + 1} of the line); "
                    "save the file as UTF-8"
                )
            except json.JSONDecodeError as json_error:
                problem = f"not valid JSON ({json_error.msg} at column {json_error.colno})"
            else:
                if not isinstance(row, dict):
                    problem = f"expected a JSON object, got {type(row).__name__}"
                else:
                    missing = [name for name in fields if name not in row]
                    if missing:
                        problem = f"missing field {missing[0]!r} (the row has {', '.join(map(repr, row)) or 'none'})"
            if problem is None:
                yield number, row
                continue
            exception = error(f"{path}:{number}: {problem}.")
            if skip is None or not isinstance(exception, Exception):  # a SystemExit from a command is never skipped
                raise exception
            skip(exception)


class JSONLCache:
    """Rows on disk, one JSON object a line, keyed by their ``key`` field (a later line wins), appended and flushed
    as each arrives: a killed run loses at most the line being written, and the next run asks only for the rest.

    A line that cannot be used (the torn last line of a killed run, or one edited by hand) is skipped with a warning
    naming ``file:line``, and its entry is made again: a cache line is only worth the request that made it. The
    file is opened for appending on the first :meth:`put` (a run that only reads never writes), and a torn last
    line is ended first, so the new row starts a line of its own.

    Example:
        >>> cache = JSONLCache("scores.jsonl")                      # doctest: +SKIP
        >>> cache.put({"key": "ab12", "score": 4.0})               # doctest: +SKIP
        >>> JSONLCache("scores.jsonl").get("ab12")                 # doctest: +SKIP
        {'key': 'ab12', 'score': 4.0}
    """

    def __init__(self, path: str | os.PathLike[str], *, fields: Sequence[str] = ()) -> None:
        """Read the rows already there.

        Args:
            path: The cache file (created, with its folder, on the first :meth:`put`).
            fields: Fields a row needs besides ``key`` to count (others are skipped with a warning).
        """
        self.path = Path(path)
        self.skipped = 0
        """Lines of the file that could not be used."""
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if self.path.is_file():
            for _, row in read_jsonl(self.path, fields=("key", *fields), skip=self._skip):
                self._rows[str(row["key"])] = row

    def _skip(self, error: Exception) -> None:
        self.skipped += 1
        logger.warning("Skipping an unusable cache line (its entry is made again): %s", error)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def get(self, key: str) -> dict[str, Any] | None:
        """The row stored under ``key``, or None."""
        return self._rows.get(key)

    def put(self, row: dict[str, Any]) -> None:
        """Store ``row`` (it must have a ``key``) and append it to the file at once."""
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                torn = self.path.is_file() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
                self._file = self.path.open("a", encoding="utf-8")
                if torn:
                    self._file.write("\n")
            self._rows[str(row["key"])] = row
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        """Close the file (a later :meth:`put` opens it again)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> JSONLCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
