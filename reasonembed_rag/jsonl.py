"""The one JSONL reader: rows of a ``.jsonl`` or ``.jsonl.gz`` file, with errors that name ``file:line``.

Task folders, documents to index, training samples, ReMixer's stage files, the agents' answer cache and the
trainer's log all read JSONL through :func:`read_jsonl`. Writing stays with each owner (their formats differ).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["JSONLError", "read_jsonl"]


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
