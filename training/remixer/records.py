"""Append-only JSONL files keyed by content hashes: what lets a killed synthesis run resume exactly.

Each stage appends one record per finished item, flushed (and fsynced) at once, with a ``key`` derived from the
content it was made from. On start the file is read back: complete records say what is done, a torn last line from
a kill is cut off, and later appends of an existing key are refused, so a resumed run has no duplicates and loses
no finished row.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reasonembed_rag.jsonl import read_jsonl


def content_hash(*parts: str) -> str:
    """A stable 20-hex-digit key for the given texts (order matters; parts cannot run into each other).

    Example:
        >>> content_hash("biology", "Why do leaves fall?")
        '76fe580610180edc71e7'
    """
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()[:20]


def _not_left_by_a_kill(message: str) -> ValueError:
    return ValueError(
        f"{message} It is not the last line, so it was not left by a killed run. Fix or remove the file to start "
        "that stage again."
    )


class JsonlLog:
    """One append-only JSONL file whose records are unique by a key.

    Args:
        path: The file (created with its folder on first append).
        key: A field name holding each record's key, or None when the caller passes keys to :meth:`append`
            (records then are kept as written and keyed by ``key_of``).
        key_of: For files whose rows carry no key field (the training rows): computes the key from a row.
        sync: fsync after each append (crash safety beyond the process; off only for throw-away files).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, key: str | None = "key", key_of: Any = None, sync: bool = True
    ) -> None:
        if (key is None) == (key_of is None):
            raise ValueError("Pass exactly one of key= (a field name) or key_of= (a function of the row).")
        self.path = Path(path)
        self._key_of = key_of if key_of is not None else (lambda row: row[key])
        self.sync = sync
        self.records: dict[str, dict[str, Any]] = {}
        self.repaired_bytes = 0
        """Bytes of a torn last line cut off when the file was opened (a previous run was killed mid-write)."""
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = data.rfind(b"\n") + 1  # a last line without its newline was being written when the run died
        if good_end < len(data):
            self.repaired_bytes = len(data) - good_end
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
        for _, row in read_jsonl(self.path, error=_not_left_by_a_kill):
            self.records.setdefault(self._key_of(row), row)

    def __contains__(self, key: object) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self.records.values()))

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def append(self, row: dict[str, Any]) -> bool:
        """Write ``row`` unless its key is already recorded; True when written."""
        key = self._key_of(row)
        if key in self.records:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            if self.sync:
                os.fsync(handle.fileno())
        self.records[key] = row
        return True
