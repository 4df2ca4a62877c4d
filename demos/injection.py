"""Prompt-injection defence for retrieved text: fenced data blocks with a per-run nonce, safe block headers, and a
best-effort redaction of sentences that address the assistant.

The defence is the fence: every document reaches the LLM between ``BEGIN DOCUMENT [id] #nonce`` and
``END DOCUMENT #nonce`` lines, the nonce is random per run and named in the system prompt, and a document can neither
close its own block (marker-like lines inside it are neutralised) nor forge one through its id (an id that is not
plain one-line text is shown as a stable surrogate). Redaction is defence in depth on top: it normalises text the way
an attacker would try to hide an instruction (NFKC, so full-width letters become ASCII; zero-width and other format
characters dropped; common Cyrillic and Greek look-alikes folded to Latin) and replaces each sentence that matches an
instruction-like pattern (English, French, Spanish, German, Italian, Portuguese, Russian, Chinese) by
:data:`REDACTED`. Patterns cannot catch every paraphrase; a model that follows instructions in its input can still
be steered by one they miss.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from typing import Protocol

__all__ = ["FENCE_LINE", "REDACTED", "fence_documents", "header_id", "normalise_for_matching", "redact_instructions"]

REDACTED = "[instruction-like text removed]"

# Look-alike letters an attacker swaps into English words so that the patterns miss them; folded for matching only.
_LOOKALIKES = str.maketrans("аеорсухіјѕԁɡıοιαεκνϳ", "aeopcyxijsdgioiaekvj")
_VERBS = (
    r"ignore|disregard|forget|override|bypass|neglect"  # English
    r"|ignorez|ignorer|oubliez|oublie|négligez"  # French
    r"|ignora|ignorad|olvida|olvide|olvidad|omite"  # Spanish, Italian
    r"|ignoriere|ignorieren|ignorier|vergiss|vergessen|missachte"  # German
    r"|dimentica|dimenticate"  # Italian
    r"|esqueça|esqueca|desconsidere"  # Portuguese
    r"|игнорируй|игнорируйте|забудь|забудьте"  # Russian
)
_RULES = (
    r"instructions?|prompts?|rules|directions|directives?|guidelines|context|commands?"
    r"|consignes?|règles|instrucciones|reglas|indicaciones|anweisungen|instruktionen|regeln|vorgaben"
    r"|istruzioni|regole|instruções|instrucoes|regras|инструкции|указания|правила"
)
_EARLIER = (
    r"(?:everything|anything|all)\s+(?:above|before|said|prior|previous|earlier)"
    r"|the\s+above(?=\s*(?:and\b|,|$))"
)
_INJECTION = re.compile(
    rf"\b(?:{_VERBS})\b[^.!?\n]{{0,60}}(?:\b(?:{_RULES})\b|\b(?:{_EARLIER})\b)"
    r"|\bsystem\s*(?:prompt|message|note|override|instruction)s?\b"
    r"|\b(?:new|updated|real|actual)\s+instructions?\b|\bnouvelles\s+instructions\b|\bneue\s+anweisungen\b"
    r"|\byou\s+(?:must|should|will|are\s+required\s+to)\s+(?:now\s+|always\s+|only\s+)?"
    r"(?:answer|reply|respond|say|output|print)\b"
    r"|\b(?:always|only|just)\s+(?:answer|reply|respond|say|output|print)\b"
    r"|\b(?:answer|reply|respond)\s+(?:only\s+|always\s+)?(?:with\s+)?\S{1,20}\s+(?:to|for)\s+(?:every|all|any)\b"
    r"|^\W*(?:please\s+)?(?:print|output|say|answer|reply|respond)\s+(?:with\s+)?(?:only\s+|just\s+)?\S{1,12}\W*$"
    r"|^\W*(?:final\s+)?answer\s*(?:is\s*)?[:：]"  # a line that mimics the agent's own answer line
    r"|^\W*(?:system|assistant|developer)\s*[:：]"  # a forged chat turn
    r"|<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|>"
    r"|\[/?inst\]|<</?sys>>"
    r"|(?:忽略|无视|忽视|忘记|忘掉|不要理会)[^。！？\n]{0,20}(?:指令|指示|说明|规则|提示|要求)",
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCE = re.compile(r"[^.!?。！？\n]*(?:[.!?。！？]+|\n|$)")
FENCE_LINE = re.compile(r"^\s*(?:BEGIN|END)\s+DOCUMENT\b.*$", re.IGNORECASE | re.MULTILINE)
"""A line that looks like a block marker (neutralised inside documents, dropped from replies)."""
_PLAIN_ID = re.compile(r"[^\[\]\\\s](?:[^\[\]\\\n]{0,118}[^\[\]\\\s])?")


class _Document(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str: ...


def normalise_for_matching(text: str) -> str:
    """``text`` as the patterns see it: NFKC (full-width letters become ASCII), format characters (zero-width
    spaces and joiners, BOM, soft hyphens) removed, case folded. Never shown to the LLM: NFKC turns ``x²`` into
    ``x2``."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(character for character in text if unicodedata.category(character) != "Cf").casefold()


def _addresses_the_assistant(text: str) -> bool:
    normalised = normalise_for_matching(text)
    # Folding look-alikes would garble Russian, so both spellings are tried.
    return any(_INJECTION.search(form) for form in (normalised, normalised.translate(_LOOKALIKES)))


def redact_instructions(text: str) -> tuple[str, bool]:
    """Replace each sentence of ``text`` that addresses the assistant with :data:`REDACTED` (best effort).

    Returns:
        The text, and whether anything was replaced.
    """
    pieces, changed = [], False
    for sentence in _SENTENCE.findall(text):
        if _addresses_the_assistant(sentence):
            lead = sentence[: len(sentence) - len(sentence.lstrip(" \t"))]
            pieces.append(lead + REDACTED + ("\n" if sentence.endswith("\n") else ""))
            changed = True
        else:
            pieces.append(sentence)
    return ("".join(pieces).strip(), True) if changed else (text, False)


def header_id(doc_id: str, *, redact: bool = True) -> str:
    """How a document id appears in its block header and in citations.

    A plain id (one line of at most 120 printable characters, without brackets or backslashes) appears as
    it is. Any other id (a newline could forge an ``END DOCUMENT`` line and a fake system turn), and with ``redact``
    an instruction-like one, appears as ``id-<hash>``, stable per id; :meth:`AgentRun.finish` maps citations back.

    Raises:
        TypeError: ``doc_id`` is not a string.
    """
    if not isinstance(doc_id, str):
        raise TypeError(f"A document id must be a str, got {type(doc_id).__name__}: {doc_id!r:.80}.")
    plain = _PLAIN_ID.fullmatch(doc_id) is not None and all(
        unicodedata.category(character)[0] not in "CZ" or character == " " for character in doc_id
    )
    if plain and not (redact and _addresses_the_assistant(doc_id)):
        return doc_id
    return "id-" + hashlib.sha256(doc_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def fence_documents(
    documents: Sequence[_Document], *, nonce: str, redact: bool = True
) -> tuple[str, list[str], dict[str, str]]:
    """Documents as data blocks fenced by ``nonce``.

    Lines inside a document that look like block markers are neutralised, so a document cannot end its own block.

    Returns:
        The blocks, the ids whose instruction-like text was removed, and ``{header id: id}`` for every document.
    """
    if not re.fullmatch(r"\w+", nonce):
        raise ValueError(f"A fence nonce must be letters and digits only, got {nonce!r}.")
    blocks, redacted, shown = [], [], {}
    for document in documents:
        name = header_id(document.id, redact=redact)
        shown[name] = document.id
        text = FENCE_LINE.sub("(marker removed)", document.text)
        if redact:
            text, changed = redact_instructions(text)
            if changed:
                redacted.append(document.id)
        blocks.append(f"BEGIN DOCUMENT [{name}] #{nonce}\n{text.strip()}\nEND DOCUMENT #{nonce}")
    return "\n\n".join(blocks), redacted, shown
