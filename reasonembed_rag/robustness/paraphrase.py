"""The ``paraphrase`` family: an LLM behind any OpenAI-compatible endpoint rewrites each query.

The client is :class:`reasonembed_rag.llm.LLMClient` (retries, back-off, concurrency). The endpoint is the project's
one LLM choice (:func:`reasonembed_rag.llm.choose_llm`: ``--llm-*`` flags, else ``OPENAI_BASE_URL`` /
``OPENAI_API_KEY`` / ``OPENAI_MODEL``). Paraphrasing is opt-in because it costs an LLM call per query and seed: when
nothing names an endpoint and ``--llm-local`` is not given, the family is skipped with a note
(:func:`paraphrase_unavailable`). Each seed sends its own sampling seed, so servers that honour it give reproducible
paraphrases. A reply that is empty, or that is not a rewrite (the same text), keeps the original query and is
counted as ``unchanged``; a reply that keeps fewer than :data:`MIN_OVERLAP` of the query's content words (typically
an answer instead of a rewrite) keeps it too, counted as ``rejected``; a failed request likewise (``failed``). Small
local models may ignore the sampling seed (a ``transformers serve`` of SmolLM2-135M-Instruct gave the same
paraphrases for every seed).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from ..llm import LLMClient, LLMConfig, LLMError
from .perturb import Perturbed

SYSTEM = (
    "You rewrite search queries in other words. You never answer or solve them. Keep every number, formula and "
    "name. Reply with the rewritten query only."
)
PROMPT = "Rewrite, changing about {percent}% of the words: {query}"
EXAMPLE = (
    "How many ways can 5 people sit around a round table?",
    "In how many ways can 5 people be seated around a circular table?",
)
"""One worked example sent before each query (small models answer the question instead without it)."""
MIN_OVERLAP = 0.2
"""A reply sharing fewer of the query's content words than this is not a paraphrase (often an answer): rejected."""
_PREFIX = re.compile(r"^\s*(?:rewritten query|paraphrased? query|paraphrase|query|rewrite)\s*:\s*", re.IGNORECASE)


def paraphrase_unavailable(config: LLMConfig | None) -> str | None:
    """Why paraphrases cannot be made with ``config``, or None when they can."""
    if config is None or not config.model:
        return (
            "skipped: no LLM configured. Set --llm-base-url and --llm-model (or OPENAI_BASE_URL and OPENAI_MODEL), "
            "or pass --llm-local to start a local transformers serve of SmolLM2-135M-Instruct."
        )
    return None


def clean_reply(reply: str) -> str:
    """The paraphrase in a reply: first non-empty paragraph, without a "Rewritten query:" label or quotes."""
    text = next((part.strip() for part in re.split(r"\n\s*\n", reply.strip()) if part.strip()), "")
    text = _PREFIX.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def paraphrase_queries(
    texts: Sequence[str],
    config: LLMConfig,
    *,
    rate: float,
    seed: int,
    max_tokens: int | None = None,
    show_progress: bool | None = None,
) -> tuple[list[Perturbed], dict[str, int]]:
    """Paraphrase each text once with the LLM of ``config``, seeded with ``seed``.

    Returns:
        The paraphrases (``changed`` is the number of the original's words that no longer occur in the paraphrase)
        and counts: ``requests``, ``rewritten``, ``unchanged`` (empty or identical reply), ``rejected``, ``failed``.
    """
    from tqdm.auto import tqdm

    client = LLMClient(dataclasses.replace(config, seed=seed))
    budget = max_tokens or max(64, min(config.max_tokens, 2 * max((len(t.split()) for t in texts), default=0) + 48))
    conversations = [messages(text, rate) for text in texts]
    results: list[Perturbed | None] = [None] * len(texts)
    counts = {"requests": len(texts), "rewritten": 0, "unchanged": 0, "rejected": 0, "failed": 0}
    progress = tqdm(total=len(texts), desc=f"paraphrase seed {seed}", unit="query", disable=not show_progress)
    with progress:
        for index, reply in client.chat_many(conversations, max_tokens=budget):
            original = texts[index]
            text = "" if isinstance(reply, LLMError) else clean_reply(reply.text)
            if isinstance(reply, LLMError):
                counts["failed"] += 1
            elif not text or text == original:
                counts["unchanged"] += 1
            elif content_overlap(original, text) < MIN_OVERLAP:
                counts["rejected"] += 1
                text = original
            else:
                counts["rewritten"] += 1
            results[index] = _as_perturbed(original, text or original)
            progress.update(1)
    return [r for r in results if r is not None], counts


def messages(query: str, rate: float) -> list[dict[str, str]]:
    """The chat sent for one query: instructions, one worked example, the query."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": PROMPT.format(percent=round(100 * rate), query=EXAMPLE[0])},
        {"role": "assistant", "content": EXAMPLE[1]},
        {"role": "user", "content": PROMPT.format(percent=round(100 * rate), query=query)},
    ]


def content_overlap(original: str, paraphrase: str) -> float:
    """Share of the original's distinct content words (not stopwords) that the paraphrase still contains."""
    from .perturb import stopwords

    stop = stopwords()
    words = {w for w in re.findall(r"[a-z0-9]+", original.lower()) if w not in stop}
    if len(words) < 3:
        return 1.0
    kept = set(re.findall(r"[a-z0-9]+", paraphrase.lower()))
    return len(words & kept) / len(words)


def _as_perturbed(original: str, paraphrase: str) -> Perturbed:
    words = original.split()
    kept = set(paraphrase.lower().split())
    return Perturbed(paraphrase, sum(w.lower() not in kept for w in words), len(words))
