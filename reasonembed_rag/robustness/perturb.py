"""Query perturbations at a word-change rate: misspelling, word-order shuffle, synonym swap, word and stopword removal.

Words are the query's whitespace-separated tokens (punctuation and formulas stay attached to them). A perturbation
at rate ``r`` picks ``k = max(1, round(r * words))`` tokens among those it may touch (its *eligible* tokens) and
changes exactly those, leaving every other token as it was; when fewer tokens are eligible it changes all of them
and reports the smaller share (:attr:`Perturbed.changed`). Families:

* ``misspelling``: one typo in each picked word, chosen at random among neighbour swap, substitution, QWERTY
  neighbour, deletion and insertion; eligible: words of at least 3 letters that are not stopwords (the letters only:
  surrounding punctuation is kept).
* ``shuffle``: the picked tokens trade places (a cyclic rotation, so each one moves); at least 2 are picked.
* ``synonym``: each picked word is replaced by a WordNet synonym (:mod:`.wordnet`); eligible: non-stopword words
  of at least 3 letters that WordNet has a synonym for.
* ``word_removal``: the picked tokens are deleted (at least one token always remains); eligible: every token.
* ``stopword_removal``: the picked stopwords are deleted; eligible: stopwords.

``paraphrase`` (an LLM rewrite of the whole query) lives in :mod:`.paraphrase`. Stopwords: NLTK's English list
(179 words, as shipped by bm25s). Everything is deterministic given ``(seed, family, query id)``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FAMILIES = ("misspelling", "shuffle", "synonym", "word_removal", "stopword_removal", "paraphrase")
"""Every perturbation family, as named in the JSON report."""
LOCAL_FAMILIES = FAMILIES[:-1]
"""The families computed here, without an LLM."""
TYPOS = ("neighbour_swap", "substitution", "qwerty", "deletion", "insertion")
DEFAULT_RATE = 0.2

_QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORD = re.compile(r"^([^A-Za-z]*)([A-Za-z]+)([^A-Za-z]*)$")


def _qwerty_neighbours() -> dict[str, str]:
    """Keys touching each letter on a QWERTY keyboard: left and right, and the staggered rows above and below."""
    stagger = (0.0, 0.25, 0.75)  # how far each row starts to the right of the top row, in key widths
    position = {ch: (row, col + stagger[row]) for row, keys in enumerate(_QWERTY_ROWS) for col, ch in enumerate(keys)}
    return {
        ch: "".join(
            sorted(
                other
                for other, (r, x) in position.items()
                if other != ch and ((r == row and abs(x - col) == 1) or (abs(r - row) == 1 and abs(x - col) < 1))
            )
        )
        for ch, (row, col) in position.items()
    }


QWERTY_NEIGHBOURS = _qwerty_neighbours()


def stopwords() -> frozenset[str]:
    """NLTK's English stopword list (179 words), as shipped by bm25s."""
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)


@dataclass(frozen=True)
class Perturbed:
    """A perturbed query: its text, how many of its words were changed, and how many words it had."""

    text: str
    changed: int
    words: int

    @property
    def changed_fraction(self) -> float:
        return self.changed / self.words if self.words else 0.0


def check_rate(rate: float) -> float:
    """``rate`` as a float in [0, 1], or a ValueError that names the value."""
    try:
        value = float(rate)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Word-change rate must be a number between 0 and 1, got {rate!r}.") from error
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Word-change rate must be between 0 and 1 (0.2 changes one word in five), got {rate!r}.")
    return value


def check_names(names: Sequence[str] | str, accepted: Sequence[str], *, what: str, flag: str) -> list[str]:
    """``names`` (a list or a comma-separated string) validated against ``accepted``, without duplicates.

    An unknown name raises a ValueError naming it, listing the accepted values and the command-line ``flag``.
    """
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in names if name not in accepted]
    if unknown:
        raise ValueError(
            f"Unknown {what} {unknown[0]!r}. Accepted values: {', '.join(accepted)} "
            f"(comma-separated; e.g. {flag} {','.join(accepted[:2])})."
        )
    return list(dict.fromkeys(names))


def check_families(families: Sequence[str] | str) -> list[str]:
    """The perturbation families, validated (see :func:`check_names`)."""
    return check_names(families, FAMILIES, what="perturbation family", flag="--families")


def words_to_change(rate: float, words: int) -> int:
    """How many of ``words`` a perturbation at ``rate`` changes: ``max(1, round(rate * words))`` (0 for rate 0)."""
    if rate <= 0.0 or words == 0:
        return 0
    return min(words, max(1, int(rate * words + 0.5)))


def _core(token: str) -> tuple[str, str, str] | None:
    """(leading punctuation, letters, trailing punctuation) for a token whose middle is letters only."""
    match = _WORD.match(token)
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _same_case(letter: str, like: str) -> str:
    return letter.upper() if like.isupper() else letter


def typo(word: str, rng: random.Random, kind: str | None = None) -> str:
    """One typo in ``word`` (letters only, length >= 2), of ``kind`` or a random one of :data:`TYPOS`.

    The result always differs from ``word``: a typo that would leave it unchanged (swapping two equal letters) is
    replaced by another kind.
    """
    kinds = [kind] if kind else list(TYPOS)
    for _ in range(20):
        chosen = rng.choice(kinds)
        i = rng.randrange(len(word))
        if chosen == "neighbour_swap":
            i = min(i, len(word) - 2)
            result = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif chosen == "substitution":
            letter = rng.choice(_LETTERS.replace(word[i].lower(), ""))
            result = word[:i] + _same_case(letter, word[i]) + word[i + 1 :]
        elif chosen == "qwerty":
            letter = rng.choice(QWERTY_NEIGHBOURS[word[i].lower()])
            result = word[:i] + _same_case(letter, word[i]) + word[i + 1 :]
        elif chosen == "deletion":
            result = word[:i] + word[i + 1 :]
        elif chosen == "insertion":
            i = rng.randrange(len(word) + 1)
            result = word[:i] + _same_case(rng.choice(_LETTERS), word[max(0, i - 1)]) + word[i:]
        else:
            raise ValueError(f"Unknown typo kind {chosen!r}. Accepted values: {', '.join(TYPOS)}.")
        if result != word:
            return result
        kinds = [k for k in TYPOS if k != "neighbour_swap"]
    raise AssertionError(f"no typo changes {word!r}")  # pragma: no cover - substitution always changes a letter


class Perturber:
    """Applies the local families to query texts.

    Args:
        rate: Share of words to change, in [0, 1].
        synonyms: Word -> synonyms; default WordNet 3.0 (:func:`.wordnet.load_wordnet`), loaded on first use.
    """

    def __init__(self, rate: float = DEFAULT_RATE, *, synonyms: Callable[[str], list[str]] | None = None) -> None:
        self.rate = check_rate(rate)
        self._synonyms = synonyms
        self._stopwords = stopwords()

    def synonyms(self, word: str) -> list[str]:
        if self._synonyms is None:
            from .wordnet import load_wordnet

            self._synonyms = load_wordnet().synonyms
        return self._synonyms(word)

    def _is_stopword(self, token: str) -> bool:
        return token.lower().strip(".,;:!?\"'()[]") in self._stopwords

    def _content_word(self, token: str) -> str | None:
        """The letters of a token that a misspelling or synonym may touch (>= 3 letters, not a stopword)."""
        parts = _core(token)
        if parts is None or len(parts[1]) < 3 or parts[1].lower() in self._stopwords:
            return None
        return parts[1]

    def perturb(self, text: str, family: str, *, seed: int | str) -> Perturbed:
        """Perturb one query; the same ``(text, family, seed)`` always gives the same result."""
        if family not in LOCAL_FAMILIES:
            if family in FAMILIES:
                raise ValueError(f"Family {family!r} needs an LLM: use robustness.paraphrase, not Perturber.")
            check_families([family])
        rng = random.Random(f"{seed}\x1f{family}\x1f{text}")
        tokens = text.split()
        target = words_to_change(self.rate, len(tokens))
        if family == "misspelling":
            eligible = [i for i, t in enumerate(tokens) if self._content_word(t)]
            return self._replace(tokens, eligible, target, rng, self._misspell)
        if family == "synonym":
            eligible = [i for i, t in enumerate(tokens) if (word := self._content_word(t)) and self.synonyms(word)]
            return self._replace(tokens, eligible, target, rng, self._synonym)
        if family == "shuffle":
            return self._shuffle(tokens, max(target, 2) if len(tokens) >= 2 and target else target, rng)
        if family == "word_removal":
            return self._remove(tokens, list(range(len(tokens))), min(target, len(tokens) - 1), rng)
        eligible = [i for i, t in enumerate(tokens) if self._is_stopword(t)]
        return self._remove(tokens, eligible, min(target, len(tokens) - 1), rng)

    @staticmethod
    def _pick(eligible: list[int], count: int, rng: random.Random) -> list[int]:
        return sorted(rng.sample(eligible, min(count, len(eligible)))) if count > 0 else []

    def _replace(
        self,
        tokens: list[str],
        eligible: list[int],
        target: int,
        rng: random.Random,
        change: Callable[[str, random.Random], str],
    ) -> Perturbed:
        picked = self._pick(eligible, target, rng)
        result = list(tokens)
        for i in picked:
            lead, letters, trail = _core(tokens[i]) or ("", tokens[i], "")
            result[i] = lead + change(letters, rng) + trail
        return Perturbed(" ".join(result), len(picked), len(tokens))

    @staticmethod
    def _misspell(word: str, rng: random.Random) -> str:
        return typo(word, rng)

    def _synonym(self, word: str, rng: random.Random) -> str:
        choice = rng.choice(self.synonyms(word))
        if word[:1].isupper():
            choice = choice[:1].upper() + choice[1:]
        return choice

    def _shuffle(self, tokens: list[str], target: int, rng: random.Random) -> Perturbed:
        picked = self._pick(list(range(len(tokens))), target, rng)
        if len(picked) < 2:
            return Perturbed(" ".join(tokens), 0, len(tokens))
        order = list(picked)
        rng.shuffle(order)
        result = list(tokens)
        for source, destination in zip(order, order[1:] + order[:1], strict=True):
            result[destination] = tokens[source]
        changed = sum(result[i] != tokens[i] for i in picked)
        return Perturbed(" ".join(result), changed, len(tokens))

    def _remove(self, tokens: list[str], eligible: list[int], target: int, rng: random.Random) -> Perturbed:
        removed = set(self._pick(eligible, target, rng))
        kept = [t for i, t in enumerate(tokens) if i not in removed]
        return Perturbed(" ".join(kept), len(removed), len(tokens))

    def perturb_many(self, texts: Sequence[str], family: str, *, seed: int | str) -> list[Perturbed]:
        """Perturb several queries (each with its own random stream derived from ``seed`` and its text)."""
        return [self.perturb(text, family, seed=seed) for text in texts]
