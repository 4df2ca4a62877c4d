"""Second-stage reranking: score (query, document) pairs and reorder a first-stage ranking.

* :class:`ScoreDistribution` / :func:`digit_distribution` - a 1-5 relevance belief read from the score token's
  log-probabilities (the one mechanism behind ReMixer's logit annotator and :class:`LLMReranker`).
* :class:`LLMReranker` - pointwise relevance from any OpenAI-compatible endpoint: the 1-5 digit's expected value
  from ``top_logprobs`` where the server returns them, else the generated digit. Every score is cached on disk as
  it arrives (keyed by endpoint, model, prompt version, query and document), so an interrupted run resumes.
* :class:`CrossEncoderReranker` - a transformers ``AutoModelForSequenceClassification`` folder.
* :func:`load_reranker` - a reranker object, or a cross-encoder folder loaded.
* :func:`rerank_texts` / :func:`rerank_hits` / :func:`rerank_run` - the reordering rule: the top ``k`` by rerank
  score (ties by first-stage rank), then everything beyond ``k`` in first-stage order.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .jsonl import JSONLCache
from .llm import LLMError, Message
from .llm.client import Counters

DIGITS = ("1", "2", "3", "4", "5")
"""The relevance scale, worst to best, each one token for the tokenizers we use."""
PROMPT_VERSION = "pointwise-1to5-v1"
"""Part of every cache key: change it whenever :func:`relevance_messages` changes."""
UNSCORED = 3.0
"""The score of a pair the LLM gave no digit for: the scale's midpoint, i.e. no evidence either way. Such a pair
stays with the documents judged 3, in first-stage order, below those judged 4-5 and above those judged 1-2 (sorting
it last would let any document the LLM answered for, even a "1", jump ahead of it). The cache stores ``null`` for
it, so this rule applies at reading time."""


@dataclass(frozen=True)
class ScoreDistribution:
    """A belief over the five relevance scores."""

    probabilities: tuple[float, ...]
    """P(1) ... P(5), renormalised over the five digits."""

    @property
    def score(self) -> int:
        """The most likely score (ties go to the lower one)."""
        return 1 + max(range(5), key=lambda i: (self.probabilities[i], -i))

    @property
    def expected(self) -> float:
        """The expected score, 1-5: graded, so pairs with the same most likely digit still order."""
        return sum((i + 1) * p for i, p in enumerate(self.probabilities))


def digit_distribution(logprobs: Mapping[str, float]) -> ScoreDistribution | None:
    """The 1-5 distribution from one token's alternatives (token text -> log-probability), renormalised over the
    digits among them (a digit absent from the alternatives gets 0); None when none is a digit."""
    best: dict[str, float] = {}
    for token, logprob in logprobs.items():
        digit = token.strip()
        if digit in DIGITS and logprob > best.get(digit, -math.inf):
            best[digit] = logprob
    if not best:
        return None
    top = max(best.values())
    weights = [math.exp(best[d] - top) if d in best else 0.0 for d in DIGITS]
    total = sum(weights)
    return ScoreDistribution(tuple(round(w / total, 6) for w in weights))


def relevance_messages(query: str, document: str) -> list[Message]:
    """The pointwise prompt: one query, one document, answer with one digit."""
    return [
        {
            "role": "system",
            "content": "You judge whether a document helps answer a query. Reply with one digit from 1 to 5 and "
            "nothing else: 1 = unrelated, 2 = same topic but no help, 3 = somewhat helpful, 4 = helpful, "
            "5 = gives exactly the knowledge needed.",
        },
        {"role": "user", "content": f"Query:\n{query}\n\nDocument:\n{document}\n\nRelevance (1-5):"},
    ]


class Reranker(Protocol):
    """Scores documents for one query; higher is more relevant."""

    name: str
    """What scored (for reports and cache keys)."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A cross-encoder folder (transformers ``AutoModelForSequenceClassification``): one logit per pair, or the
    log-probability of the last label when the head has several (``[irrelevant, relevant]``).

    Example:
        >>> reranker = CrossEncoderReranker("path/to/cross-encoder")         # doctest: +SKIP
        >>> reranker.score("Why is the sky blue?", ["Rayleigh scattering", "Tax law"])  # doctest: +SKIP
        [7.1, -9.3]
    """

    def __init__(
        self, path: str | os.PathLike[str], *, device: str | None = None, batch_size: int = 16, max_length: int = 512
    ) -> None:
        """Load the model.

        Args:
            path: A local folder with ``config.json``, weights and a tokenizer.
            device: Torch device (default: first GPU, else CPU).
            batch_size: Pairs per forward pass.
            max_length: Longest pair in tokens (the document is cut first).
        """
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ValueError(
                f"--rerank {path!r} is not a cross-encoder folder (no config.json there); pass 'llm' or a folder "
                "saved by transformers' AutoModelForSequenceClassification.save_pretrained."
            )
        self.name = str(folder)
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        network: Any = AutoModelForSequenceClassification.from_pretrained(folder)
        self.model = network.to(self.device).eval()

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """One score per document, in order."""
        import torch

        scores: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(documents), self.batch_size):
                batch = list(documents[start : start + self.batch_size])
                inputs = self.tokenizer(
                    [query] * len(batch),
                    batch,
                    padding=True,
                    truncation="only_second",
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                logits = self.model(**inputs).logits.float()
                values = logits[:, 0] if logits.shape[-1] == 1 else torch.log_softmax(logits, dim=-1)[:, -1]
                scores.extend(values.cpu().tolist())
        return scores


@dataclass
class RerankCost(Counters):
    """What reranking cost so far (cache hits cost nothing)."""

    pairs: int = 0
    """Pairs scored, cached ones included."""
    cached: int = 0
    """Pairs answered from the cache."""
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unscored: int = 0
    """Replies requested now that carried no digit (scored :data:`UNSCORED`)."""

    def as_dict(self) -> dict[str, int]:
        """Every count, read at one moment."""
        return self.snapshot()


class RerankCache(JSONLCache):
    """Scores on disk, one JSON line per pair (``key``, ``score``, ...), appended and flushed as each arrives, so a
    killed run loses at most the line being written (:class:`~reasonembed_rag.jsonl.JSONLCache`)."""


def default_cache_path() -> Path:
    """``<cache_dir>/rerank/scores.jsonl`` (see :func:`reasonembed_rag.models.cache_dir`)."""
    from .models import cache_dir

    return cache_dir() / "rerank" / "scores.jsonl"


class LLMReranker:
    """Pointwise LLM reranking through any OpenAI-compatible endpoint, cached and resumable.

    Each (query, document) pair is one chat request asking for a 1-5 digit at temperature 0. Where the server
    returns ``top_logprobs`` the score is the digit's expected value (graded: pairs that both say "4" still order);
    where it does not (``transformers serve`` ignores the field; other servers answer with an error) the first
    request finds out, and it and every later one read the generated digit.

    Example:
        >>> from reasonembed_rag.llm import LLMClient, choose_llm
        >>> with choose_llm().open() as endpoint:                                          # doctest: +SKIP
        ...     reranker = LLMReranker(LLMClient(endpoint.config), endpoint=endpoint.config.base_url)
        ...     reranker.score("Why is the sky blue?", ["Rayleigh scattering ...", "Tax law ..."])
        [4.0, 1.0]
    """

    def __init__(
        self,
        client: Any,
        *,
        endpoint: str | None = None,
        cache: str | os.PathLike[str] | RerankCache | None = None,
        document_characters: int = 2000,
        top_logprobs: int = 10,
        concurrency: int | None = None,
        map_function: Callable[..., Any] | None = None,
    ) -> None:
        """Build the reranker.

        Args:
            client: An :class:`~reasonembed_rag.llm.LLMClient` (or anything with its ``chat`` and ``config.model``).
            endpoint: The endpoint's identity for cache keys (its base URL); default ``client.config.base_url``.
            cache: A JSONL file (or a :class:`RerankCache`) to read and extend; default :func:`default_cache_path`.
            document_characters: Documents are cut to this many characters before prompting.
            top_logprobs: Alternatives asked for per token (0: never ask, read the generated digit).
            concurrency: Requests in flight (default: the client's config).
            map_function: Runs the requests (default :func:`reasonembed_rag.llm.map_concurrently`).
        """
        from .llm import map_concurrently

        config = getattr(client, "config", None)
        self.client = client
        self.model = str(getattr(config, "model", None) or "model")
        self.endpoint = endpoint or str(getattr(config, "base_url", None) or "")
        self.name = f"llm:{self.model}@{self.endpoint}"
        self.cache = cache if isinstance(cache, RerankCache) else RerankCache(cache or default_cache_path())
        self.document_characters = document_characters
        self.top_logprobs = top_logprobs
        self.use_logprobs: bool | None = None if top_logprobs > 0 else False
        """None until the first request shows whether the server returns log-probabilities."""
        self.concurrency = concurrency or int(getattr(config, "concurrency", 1) or 1)
        self.map = map_function or map_concurrently
        self.cost = RerankCost()
        self._probe = threading.Lock()

    def key(self, query: str, document: str) -> str:
        """The cache key of one pair (the document as it is sent, i.e. already cut)."""
        parts = [self.endpoint, self.model, PROMPT_VERSION, query, document[: self.document_characters]]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def _ask(self, messages: list[Message], logprobs: bool) -> Any:
        if logprobs:
            return self.client.chat(messages, max_tokens=3, temperature=0.0, top_p=1.0, top_logprobs=self.top_logprobs)
        return self.client.chat(messages, max_tokens=3, temperature=0.0, top_p=1.0)

    def _request(self, messages: list[Message]) -> Any:
        """One reply; the first request decides (once, for every thread) whether to ask for log-probabilities."""
        if self.use_logprobs is not None:
            return self._ask(messages, self.use_logprobs)
        with self._probe:
            if self.use_logprobs is None:
                try:
                    completion = self._ask(messages, True)
                except LLMError as error:
                    if error.retryable:
                        raise
                    completion = self._ask(messages, False)  # a server that rejects logprobs: read digits
                    self.use_logprobs = False
                    return completion
                self.use_logprobs = bool(completion.top_logprobs)
                return completion
        return self._ask(messages, self.use_logprobs)

    def _score_pair(self, job: tuple[str, str, str]) -> dict[str, Any]:
        key, query, document = job
        completion = self._request(relevance_messages(query, document))
        distribution = next(
            (d for d in (digit_distribution(alts) for alts in completion.top_logprobs) if d is not None), None
        )
        if distribution is not None:
            row: dict[str, Any] = {"score": distribution.expected, "probabilities": list(distribution.probabilities)}
        else:
            digit = re.search(r"[1-5]", completion.text)
            row = {"score": float(digit.group()) if digit else None, "reply": completion.text[:40]}
            self.cost.add(unscored=0 if digit else 1)
        self.cost.add(
            requests=1, prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens
        )
        return {"key": key, **row}

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """One score per document (1-5; :data:`UNSCORED` where the reply had no digit); only uncached pairs are
        requested."""
        keys = [self.key(query, document) for document in documents]
        todo = {}
        for key, document in zip(keys, documents, strict=True):
            if self.cache.get(key) is None and key not in todo:
                todo[key] = (key, query, document[: self.document_characters])
        self.cost.add(pairs=len(documents), cached=len(documents) - len(todo))
        jobs = list(todo.values())
        if jobs:
            # Probe first, alone, so the logprobs question is settled before the threads start.
            first = self._score_pair(jobs[0])
            self.cache.put(first)
            for _, result in self.map(self._score_pair, jobs[1:], concurrency=self.concurrency):
                if isinstance(result, Exception):
                    raise result
                self.cache.put(result)
        scores = [self.cache.get(key)["score"] for key in keys]  # type: ignore[index]
        return [UNSCORED if score is None else float(score) for score in scores]


def load_reranker(reranker: Reranker | str | os.PathLike[str], **options: Any) -> Reranker:
    """A :class:`Reranker` as given, or a :class:`CrossEncoderReranker` loaded from a folder (``options`` go to it).
    An LLM reranker needs an endpoint: build :class:`LLMReranker` yourself."""
    if isinstance(reranker, str | os.PathLike):
        if str(reranker) == "llm":
            raise ValueError(
                "reranker='llm' needs an endpoint: pass LLMReranker(LLMClient(config)) instead of the string."
            )
        return CrossEncoderReranker(reranker, **options)
    return reranker


def rerank_texts(reranker: Reranker, query: str, texts: Sequence[str]) -> list[tuple[int, float]]:
    """``(index into texts, rerank score)``, best first; equal scores keep the given order."""
    scores = reranker.score(query, list(texts)) if texts else []
    return [(i, float(scores[i])) for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i))]


def rerank_hits(
    query: str,
    hits: Sequence[tuple[str, float]],
    documents: Mapping[str, str],
    reranker: Reranker,
    top_k: int,
) -> list[tuple[str, float]]:
    """Rerank the first ``top_k`` of ``hits`` (best first) and keep the rest after them in first-stage order.

    Returns ``(doc_id, score)`` best first. The scores are the new ranks turned into a decreasing sequence
    (``len(hits) - position``): rerank scores and first-stage scores are not on one scale, and a metric that sorts
    by score must see exactly this order.
    """
    if top_k < 1:
        raise ValueError(f"--rerank-top-k must be at least 1, got {top_k}.")
    head = list(hits[:top_k])
    order = rerank_texts(reranker, query, [documents[doc_id] for doc_id, _ in head])
    ranked = [head[i][0] for i, _ in order] + [doc_id for doc_id, _ in hits[top_k:]]
    return [(doc_id, float(len(ranked) - position)) for position, doc_id in enumerate(ranked)]


def rerank_run(
    run: Mapping[str, Mapping[str, float]],
    queries: Mapping[str, str],
    documents: Mapping[str, str],
    reranker: Reranker,
    top_k: int,
    *,
    excluded: Mapping[str, Sequence[str]] | None = None,
    show_progress: bool | None = None,
) -> dict[str, dict[str, float]]:
    """Rerank a whole run (``{query_id: {doc_id: score}}``); ``excluded`` ids are dropped first, so the top ``k``
    are ``k`` documents the metric will count (as the official scorer drops them before ranking)."""
    from tqdm.auto import tqdm

    excluded = excluded or {}
    reranked = {}
    for query_id, scores in tqdm(run.items(), desc=f"rerank ({reranker.name})", disable=not show_progress):
        dropped = set(excluded.get(query_id, ()))
        hits = sorted(((d, s) for d, s in scores.items() if d not in dropped), key=lambda hit: (-hit[1], hit[0]))
        reranked[query_id] = dict(rerank_hits(queries[query_id], hits, documents, reranker, top_k))
    return reranked
