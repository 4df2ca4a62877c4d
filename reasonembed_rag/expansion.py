"""Test-time reasoning expansion: an LLM writes the reasoning a query needs, and it is appended to the query.

BRIGHT's reasoning queries (``--reasoning-queries gpt4_reason``) are a strong LLM's reasoning, written before
retrieval, about what the query needs. :class:`QueryExpander` does the same at test time with any
OpenAI-compatible endpoint (the local ``transformers serve`` of SmolLM2-135M-Instruct by default): it asks for a
short solution sketch naming the ideas, theorems and methods the query needs, and returns
``query + "\\n" + sketch``. Every retriever then searches with that text, BM25 included (BRIGHT runs BM25 on its
reasoning queries too).

* :class:`QueryExpander` - cached, resumable, concurrent expansion; the LLM (a local server) starts only when a
  query is not in the cache.
* :func:`expansion_messages` - the prompt (:data:`PROMPT_VERSION` names it in every cache key).
* :func:`clean_sketch` - a reply made fit to append, or nothing when it holds nothing to search.
* :class:`ExpansionStats` - what expansion cost and how many replies failed.
* :func:`default_cache_path` - where expansions are cached unless told otherwise.

The framework retrievers that expand before they search live in :mod:`reasonembed_rag.integrations`
(``ChromaStore.llama_index_retriever(..., expand=expander)`` / ``langchain_retriever(..., expand=expander)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jsonl import JSONLCache
from .llm import (
    LLMChoice,
    LLMClient,
    LLMConfig,
    LLMEndpoint,
    LLMError,
    Message,
    choose_llm,
    display_model,
    map_concurrently,
)
from .llm.client import Counters

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "PROMPT_VERSION",
    "SEPARATOR",
    "ExpansionStats",
    "QueryExpander",
    "clean_sketch",
    "default_cache_path",
    "expansion_messages",
]

PROMPT_VERSION = "sketch-v1"
"""Part of every cache key: change it whenever :func:`expansion_messages` changes."""
DEFAULT_MAX_TOKENS = 128
"""Tokens a sketch may take: enough for a few sentences naming the ideas (SmolLM2-135M rambles beyond)."""
SEPARATOR = "\n"
"""Between the query and its reasoning, as BRIGHT's reasoning queries append."""
_SYSTEM = (
    "You are an expert problem solver helping a search engine. Do not search and do not give a final answer. "
    "Write a short solution sketch for the query: the key idea, and the theorems, formulas, concepts or methods "
    "it needs, each named explicitly. At most five sentences."
)


def expansion_messages(query: str, instruction: str | None = None) -> list[Message]:
    """The prompt: the task instruction (what the search will look for) and the query; reply with a sketch."""
    task = f"The search task: {instruction}\n\n" if instruction else ""
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": f"{task}Query:\n{query}\n\nSolution sketch (the ideas and named theorems):"},
    ]


def default_cache_path() -> Path:
    """``<cache_dir>/expansions/expansions.jsonl`` (see :func:`reasonembed_rag.models.cache_dir`)."""
    from .models import cache_dir

    return cache_dir() / "expansions" / "expansions.jsonl"


@dataclass
class ExpansionStats(Counters):
    """What expansion did so far, counted across calls (read with :meth:`as_dict`)."""

    queries: int = 0
    """Queries expanded, cached ones and failures included."""
    cached: int = 0
    """Answered from the cache (no request)."""
    generated: int = 0
    """New sketches written by the LLM (and cached)."""
    failed: int = 0
    """Queries left as they were: the request failed, or the reply was empty. Not cached, so a rerun retries them."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    """Wall time spent waiting for the LLM (server start-up excluded)."""

    def as_dict(self) -> dict[str, Any]:
        """The counts, the seconds rounded, and the tokens per second."""
        counts = self.snapshot()
        counts["seconds"] = round(counts["seconds"], 2)
        counts["tokens_per_second"] = (
            round(counts["completion_tokens"] / self.seconds, 1) if self.seconds > 0 else None
        )
        return counts


class QueryExpander:
    """Appends an LLM's reasoning (a short solution sketch) to each query; cached on disk and resumable.

    Each query costs one greedy chat request (temperature 0), sent concurrently; each usable reply is cached as it
    arrives, keyed by the LLM's identity, :data:`PROMPT_VERSION`, ``max_tokens``, the instruction and the query, and
    never by the retrieval model, so every retriever reuses one expansion. A failed request or an empty reply leaves
    the query as it was; it is counted in :attr:`stats` and not cached, so a rerun (a new expander) asks again, while
    this expander does not (the framework retrievers would otherwise ask once more, one query at a time).

    A local server starts only when some query is not in the cache (a fully cached run starts none). Inside
    ``with expander:`` it stays up until the block ends; outside, each :meth:`expand` call that needs it starts and
    stops it.

    Example:
        >>> from reasonembed_rag.expansion import QueryExpander
        >>> with QueryExpander(instruction="Given a Math problem, retrieve relevant theorems.") as expander:
        ...     expander.expand(["How many primes divide 2^10 - 1?"])        # doctest: +SKIP
        ['How many primes divide 2^10 - 1?\\nFactor 2^10 - 1 = (2^5 - 1)(2^5 + 1) = 31 * 33 ... difference of squares']
    """

    def __init__(
        self,
        llm: LLMChoice | LLMEndpoint | LLMConfig | Any = None,
        *,
        cache: str | os.PathLike[str] | JSONLCache | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        instruction: str | None = None,
        concurrency: int | None = None,
        identity: str | None = None,
        show_progress: bool | None = None,
    ) -> None:
        """Build the expander (nothing starts yet).

        Args:
            llm: Which LLM: an :class:`~reasonembed_rag.llm.LLMChoice` (default
                :func:`~reasonembed_rag.llm.choose_llm`: ``OPENAI_*``, else the local server), an open
                :class:`~reasonembed_rag.llm.LLMEndpoint`, an :class:`~reasonembed_rag.llm.LLMConfig`, or any object
                with :class:`~reasonembed_rag.llm.LLMClient`'s ``chat`` (a client, or a scripted model in tests).
            cache: The JSONL cache file (or an open :class:`~reasonembed_rag.jsonl.JSONLCache`); default
                :func:`default_cache_path`.
            max_tokens: Cap on the sketch's tokens.
            instruction: The task instruction put in the prompt when :meth:`expand` is given none.
            concurrency: Requests in flight (default: the endpoint's, 16 for the local server).
            identity: The LLM's name in cache keys (default: the model the choice, endpoint or client names).
            show_progress: Show a progress bar while generating.

        Raises:
            ValueError: ``max_tokens`` or ``concurrency`` is below 1.
        """
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}.")
        self._choice: LLMChoice | None = None
        self._chat: Any = None
        if llm is None:
            llm = choose_llm()
        if isinstance(llm, LLMChoice):
            self._choice = llm
            model = llm.identity
        elif isinstance(llm, LLMEndpoint | LLMConfig):
            config = llm.config if isinstance(llm, LLMEndpoint) else llm
            self._chat = LLMClient(config)
            model = str(config.model)
        elif callable(getattr(llm, "chat", None)):
            self._chat = llm
            model = str(getattr(getattr(llm, "config", None), "model", None) or type(llm).__name__)
        else:
            raise TypeError(
                f"llm must be an LLMChoice, LLMEndpoint, LLMConfig or an object with a chat method, got {llm!r}."
            )
        # A local transformers serve names its model by folder, one under this machine's cache: the folder's name,
        # not its path, keys the cache, so the default choice and an endpoint pointing at that server share entries.
        self.identity = identity or (f"local:{display_model(model)}" if os.path.isabs(model) else model)
        self.description = self._choice.description if self._choice is not None else self.identity
        """What writes the sketches, in one line (the endpoint's own description once a server has started)."""
        if not isinstance(cache, JSONLCache):
            cache = JSONLCache(cache or default_cache_path(), fields=("expansion",))
        self.cache = cache
        self.max_tokens = max_tokens
        self.instruction = instruction
        self.concurrency = concurrency
        self.show_progress = show_progress
        self.stats = ExpansionStats()
        self._stack: contextlib.ExitStack | None = None
        self._failed: set[str] = set()

    def __repr__(self) -> str:
        return f"QueryExpander({self.identity!r}, cache={str(self.cache.path)!r}, max_tokens={self.max_tokens})"

    # ------------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> QueryExpander:
        self._stack = contextlib.ExitStack()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop a local server this expander started, and close the cache file."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()
        if self._choice is not None:
            self._chat = None  # the endpoint is gone; a later call opens it again
        self.cache.close()

    @contextlib.contextmanager
    def _llm(self) -> Iterator[Any]:
        """The chat model, opening the choice (a local server starts) if it is not open yet."""
        if self._chat is not None:
            yield self._chat
            return
        assert self._choice is not None
        if self._stack is not None:  # inside `with expander:` the endpoint stays open until the block ends
            endpoint = self._stack.enter_context(self._choice.open(announce=bool(self.show_progress)))
            self._chat = LLMClient(endpoint.config)
            self.description = endpoint.description
            yield self._chat
            return
        with self._choice.open(announce=bool(self.show_progress)) as endpoint:
            self.description = endpoint.description
            yield LLMClient(endpoint.config)

    # ------------------------------------------------------------------------------------------------- expanding

    def key(self, query: str, instruction: str | None = None) -> str:
        """The cache key of one query's expansion (the retrieval model plays no part in it)."""
        parts = [self.identity, PROMPT_VERSION, self.max_tokens, instruction, query]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def expand(self, queries: Sequence[str], *, instruction: str | None = None) -> list[str]:
        """Each query followed by :data:`SEPARATOR` and its sketch (a query whose expansion failed, unchanged).

        Args:
            queries: Query texts (repeats cost one request).
            instruction: The task instruction for the prompt (default: the expander's).

        Raises:
            RuntimeError: a local server could not start.
        """
        instruction = instruction if instruction is not None else self.instruction
        keys = [self.key(query, instruction) for query in queries]
        todo = {
            key: query
            for key, query in zip(keys, queries, strict=True)
            if key not in self.cache and key not in self._failed
        }
        self.stats.add(queries=len(queries), cached=sum(1 for key in keys if key in self.cache))
        if todo:
            self._failed |= self._generate(todo, instruction)
        self.stats.add(failed=sum(1 for key in keys if key in self._failed))
        expanded = []
        for key, query in zip(keys, queries, strict=True):
            row = self.cache.get(key)
            expanded.append(query if row is None else f"{query}{SEPARATOR}{row['expansion']}")
        return expanded

    def expand_query(self, query: str, *, instruction: str | None = None) -> str:
        """One query expanded (see :meth:`expand`)."""
        return self.expand([query], instruction=instruction)[0]

    def _generate(self, todo: dict[str, str], instruction: str | None) -> set[str]:
        """Ask for every sketch in ``todo`` (key -> query), caching each usable one; the keys that failed."""
        from tqdm.auto import tqdm

        keys = list(todo)
        failed = set()
        with self._llm() as chat:
            concurrency = self.concurrency or int(getattr(getattr(chat, "config", None), "concurrency", 1) or 1)

            def ask(key: str) -> Any:
                return chat.chat(
                    expansion_messages(todo[key], instruction),
                    max_tokens=self.max_tokens,
                    temperature=0.0,
                    top_p=1.0,
                )

            started = time.perf_counter()
            progress = tqdm(total=len(keys), desc="expanding queries", disable=not self.show_progress)
            try:
                for index, reply in map_concurrently(ask, keys, concurrency=concurrency):
                    progress.update()
                    key = keys[index]
                    if isinstance(reply, LLMError):
                        failed.add(key)
                        continue
                    self.stats.add(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
                    sketch = clean_sketch(reply.text)
                    if not sketch:
                        failed.add(key)
                        continue
                    self.stats.add(generated=1)
                    self.cache.put({"key": key, "expansion": sketch, "finish_reason": reply.finish_reason})
            finally:
                progress.close()
                self.stats.add(seconds=time.perf_counter() - started)
        return failed

    def summary(self) -> dict[str, Any]:
        """For reports (``results.json``): the LLM, prompt, cache and :attr:`stats`."""
        return {
            "llm": self.description,
            "identity": self.identity,
            "prompt_version": PROMPT_VERSION,
            "max_tokens": self.max_tokens,
            "cache": str(self.cache.path),
            **self.stats.as_dict(),
        }


def clean_sketch(text: str) -> str:
    """The sketch as it will be appended: stripped; empty when it holds no letter or digit (nothing to search).

    A looping reply is kept as generated: dropping its repeated lines and echoes of the instruction scored lower on
    the out-of-domain validation (docs/measurements.md).
    """
    text = text.strip()
    return text if any(character.isalnum() for character in text) else ""
