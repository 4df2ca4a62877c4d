"""Reading LLM replies: relevance scores, Yes/No verdicts, generated queries and reasoning.

Every parser returns a value or None plus a short reason; none raises on a bad reply, so a malformed reply is
skipped and counted by the caller, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_SCORE_TAGGED = re.compile(r"<score>\s*(.*?)\s*</score>", re.IGNORECASE | re.DOTALL)
_SCORE_VALUE = re.compile(r"^\[?\s*([1-5])(?:\.0)?\s*(?:/\s*5)?\s*\]?\.?$")
_SCORE_OPEN = re.compile(r"<score>\s*\[?\s*([1-5])(?![0-9]|\.[0-9])", re.IGNORECASE)
_SCORE_LABEL = re.compile(r"\b(?:relevance\s+)?score\s*(?:is|:|=)\s*\**\s*([1-5])(?![0-9.])", re.IGNORECASE)
_LEADING_LABEL = re.compile(
    r"^\s*(?:\*\*|#+\s*)?(?:new\s+|generated\s+|rewritten\s+)?(?:math\s+|coding\s+|competition\s+)?"
    r"(?:problem|question|query|post|task|instruction)(?:\s*\d+)?(?:\*\*)?\s*[:\-]\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)
_INTRO_LINE = re.compile(r"^\s*(?:sure|here(?:'s| is| are)|okay|certainly)\b[^\n]*:\s*\n", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.?!)\]`$]\s")

MIN_QUERY_CHARACTERS = 15
MIN_QUERY_WORDS = 3
MIN_REASONING_CHARACTERS = 20


def parse_score(reply: str) -> int | None:
    """The 1-5 relevance score in a reply, or None when there is none.

    Accepted, in this order: the last ``<score>N</score>`` (``N``, ``[N]``, ``N/5``); the last ``<score>N`` whose tag
    was cut or mangled (a stop string, the token limit, ``<score>4</score</score>``); a reply that is a bare ``N``;
    ``score: N`` / ``score is N``. A tag that holds anything else (``7``, ``3.5``, ``high``) is unparseable.

    Example:
        >>> parse_score("The passage states the key theorem. <score>4</score>")
        4
        >>> parse_score("<score>7</score>") is None
        True
    """
    if not isinstance(reply, str):
        return None
    tagged = _SCORE_TAGGED.findall(reply)
    if tagged:
        match = _SCORE_VALUE.match(tagged[-1].strip())
        if match:
            return int(match.group(1))
    opened = _SCORE_OPEN.findall(reply)
    if opened:
        return int(opened[-1])
    if tagged:
        return None
    bare = _SCORE_VALUE.match(reply.strip())
    if bare:
        return int(bare.group(1))
    labelled = _SCORE_LABEL.findall(reply)
    return int(labelled[-1]) if labelled else None


def parse_yes_no(reply: str) -> bool | None:
    """True for Yes, False for No, None when the reply says neither (or both).

    Example:
        >>> parse_yes_no("Yes, it is about biology.")
        True
    """
    if not isinstance(reply, str):
        return None
    words = re.findall(r"[a-z]+", reply.lower())
    if not words:
        return None
    if words[0] in ("yes", "no"):
        return words[0] == "yes"
    has_yes, has_no = "yes" in words, "no" in words
    return has_yes if has_yes != has_no else None


def _trim_truncated(text: str) -> str:
    """Cut a reply that hit the token limit back to its last complete sentence (or empty)."""
    ends = list(_SENTENCE_END.finditer(text + " "))
    return text[: ends[-1].start() + 1].rstrip() if ends else ""


def _echoes(text: str, fixed_sentences: Sequence[str]) -> bool:
    lowered = text.lower()
    return any(sentence.lower()[:60] in lowered for sentence in fixed_sentences if sentence)


def clean_query(
    reply: str,
    *,
    source: str,
    forbidden_phrases: Sequence[str] = (),
    prompt_sentences: Sequence[str] = (),
    truncated: bool = False,
) -> tuple[str | None, str]:
    """Turn a query-generation reply into a standalone query, or reject it.

    Args:
        reply: The LLM's reply.
        source: The seed document (a query that copies it whole is rejected).
        forbidden_phrases: Lower-case phrases that tie a query to its source ("the passage", "the given", ...).
        prompt_sentences: Fixed sentences of the prompt; a reply repeating one is an echo of the prompt.
        truncated: The reply hit the token limit; it is cut back to its last complete sentence.

    Returns:
        ``(query, "ok")`` or ``(None, reason)`` with reason one of ``empty``, ``too_short``, ``echo``,
        ``refers_to_source``, ``copies_source``, ``truncated``.

    Example:
        >>> clean_query("Problem: Find all primes p with p^2 + 2 prime.", source="Fermat ...")
        ('Find all primes p with p^2 + 2 prime.', 'ok')
    """
    text = (reply or "").strip()
    text = _INTRO_LINE.sub("", text, count=1).strip()
    text = _LEADING_LABEL.sub("", text, count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if truncated and text:
        text = _trim_truncated(text)
        if not text:
            return None, "truncated"
    if not text:
        return None, "empty"
    if len(text) < MIN_QUERY_CHARACTERS or len(text.split()) < MIN_QUERY_WORDS:
        return None, "too_short"
    if _echoes(text, prompt_sentences):
        return None, "echo"
    lowered = text.lower()
    if any(phrase in lowered for phrase in forbidden_phrases):
        return None, "refers_to_source"
    if len(source.strip()) >= 40 and source.strip() in text:
        return None, "copies_source"
    return text, "ok"


def clean_reasoning(reply: str, *, query: str, truncated: bool = False) -> tuple[str | None, str]:
    """Turn a reasoning reply into text for the reasoning query, or reject it.

    Returns:
        ``(reasoning, "ok")`` or ``(None, reason)`` with reason ``empty``, ``too_short``, ``repeats_query`` or
        ``truncated``.
    """
    text = (reply or "").strip()
    if truncated and text:
        text = _trim_truncated(text)
        if not text:
            return None, "truncated"
    if not text:
        return None, "empty"
    if len(text) < MIN_REASONING_CHARACTERS:
        return None, "too_short"
    if text.strip().lower() == query.strip().lower():
        return None, "repeats_query"
    return text, "ok"


def reasoning_query(query: str, reasoning: str) -> str:
    """The query expanded with the LLM's reasoning about the knowledge it needs (what Redapter encodes)."""
    return f"{query.strip()}\n{reasoning.strip()}"
