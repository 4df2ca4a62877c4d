"""Chat with any OpenAI-compatible endpoint: the one LLM client of the project.

* :class:`LLMConfig` / :class:`LLMClient` - the ``openai`` client with sampling settings, a thread pool for
  concurrency, retries with exponential back-off (429, 408, 409, 5xx, timeouts, connection errors; the server's
  ``Retry-After`` is honoured) and token usage counted across threads.
* :func:`map_concurrently` - any function over many items on a bounded thread pool, a failed request yielded in
  place of its result.

Which endpoint to talk to (flags, ``OPENAI_*``, or the local server) is :mod:`reasonembed_rag.llm.choice`'s job; the
local server itself lives in :mod:`reasonembed_rag.llm.server`. Nothing here knows about its callers' prompts.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

Message = dict[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""

OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"
"""Where requests go when a config names no base URL."""
RETRYABLE_STATUS = frozenset({408, 409, 429})
"""HTTP statuses worth retrying besides 5xx (timeout, conflict, rate limit), as the openai client itself does."""


class LLMError(RuntimeError):
    """A chat request failed for good (after retries, or with an error that retrying cannot fix)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Completion:
    """One chat reply."""

    text: str
    """The assistant message (empty string when the server sent none)."""
    finish_reason: str | None = None
    """``stop`` (natural end or a stop string), ``length`` (hit ``max_tokens``), or what the server says."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    top_logprobs: tuple[dict[str, float], ...] = ()
    """Per generated token, its most likely alternatives (token text -> log-probability); filled only when the
    request asked for ``top_logprobs`` and the server returned them."""


class ChatModel(Protocol):
    """What ReMixer needs from an LLM: one chat call. :class:`LLMClient` and test fakes implement it."""

    def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
    ) -> Completion: ...


@dataclass
class Counters:
    """Counts that many threads add to; :meth:`snapshot` reads a consistent copy of every public field."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        """Add each named count (``add(requests=1, prompt_tokens=120)``) under the lock."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, Any]:
        """Every public field's value, read at one moment."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


@dataclass
class TokenUsage(Counters):
    """Requests and tokens counted across threads (read a consistent copy with :meth:`snapshot`)."""

    requests: int = 0
    """Requests answered successfully."""
    retries: int = 0
    """Attempts that failed with a retryable error and were tried again."""
    failures: int = 0
    """Requests that failed for good."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class LLMConfig:
    """Where the LLM is and how to sample from it, as given: the environment is read by
    :func:`reasonembed_rag.llm.choose_llm`, never here."""

    base_url: str | None = None
    """``http://host:port/v1``; None: :data:`OPENAI_DEFAULT_BASE` (api.openai.com)."""
    api_key: str | None = None
    """The endpoint's key; local servers accept any value."""
    model: str | None = None
    """The model name the endpoint expects (for ``transformers serve``: the served folder path)."""
    temperature: float = 1.0
    top_p: float = 0.6
    max_tokens: int = 1024
    """Default cap on generated tokens per reply (callers may pass their own per call)."""
    concurrency: int = 4
    """Requests in flight at once (threads)."""
    timeout: float = 300.0
    """Seconds per attempt before it counts as a timeout (and is retried)."""
    max_retries: int = 5
    """Retries after the first attempt for retryable errors."""
    backoff_initial: float = 1.0
    """Seconds before the first retry; doubled after each further failure, with jitter."""
    backoff_max: float = 60.0
    seed: int | None = None
    """Sampling seed sent with each request (servers that support it become reproducible)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be between 0 and 2, got {self.temperature}.")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        for name in ("max_tokens", "concurrency"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}.")


def _retry_after(error: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``), if it said."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _classify(error: BaseException) -> tuple[bool, str]:
    """(retryable, short description) for an exception raised by the openai client."""
    import openai

    if isinstance(error, openai.APITimeoutError):
        return True, "timeout"
    if isinstance(error, openai.APIConnectionError):
        return True, f"connection error ({error})"
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        return status in RETRYABLE_STATUS or status >= 500, f"HTTP {status}: {str(error)[:300]}"
    return False, f"{type(error).__name__}: {error}"


class LLMClient:
    """A chat client for any OpenAI-compatible endpoint, with retries, back-off, concurrency and usage counts.

    Example:
        >>> config = LLMConfig(base_url="http://127.0.0.1:8000/v1", api_key="x", model="m")
        >>> client = LLMClient(config)  # doctest: +SKIP
        >>> client.chat([{"role": "user", "content": "2+2?"}], max_tokens=8).text  # doctest: +SKIP
        '4'
    """

    def __init__(
        self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep, http_client: Any = None
    ) -> None:
        """Build the client.

        Args:
            config: Endpoint and sampling settings.
            sleep: How to wait between retries (tests pass a fake to run instantly).
            http_client: An ``httpx.Client`` for the openai client (proxies, custom transports, tests).

        Raises:
            ValueError: no model name was given (``--llm-model`` or ``OPENAI_MODEL``).
        """
        if not config.model:
            raise ValueError(
                "No LLM model name: pass --llm-model (or set OPENAI_MODEL) naming the model the endpoint serves."
            )
        try:
            import openai
        except ImportError as error:  # pragma: no cover - a declared dependency of the train extra
            raise ImportError("The LLM client needs the openai package: pip install 'openai>=1.40,<3'") from error
        self.config = config
        self.usage = TokenUsage()
        self._sleep = sleep
        # The client's own retries are off: this class retries, counts and backs off itself.
        self._client = openai.OpenAI(
            base_url=config.base_url or OPENAI_DEFAULT_BASE,  # None would make openai read OPENAI_BASE_URL itself
            api_key=config.api_key or "not-needed",
            timeout=config.timeout,
            max_retries=0,
            http_client=http_client,
        )

    def __repr__(self) -> str:
        return f"LLMClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        top_logprobs: int | None = None,
    ) -> Completion:
        """Send one chat request, retrying retryable failures with exponential back-off.

        Args:
            messages: The conversation, oldest first.
            max_tokens: Cap on generated tokens (default: the config's).
            temperature: Sampling temperature (default: the config's).
            top_p: Nucleus sampling mass (default: the config's).
            stop: Strings that end the reply.
            top_logprobs: Ask for this many alternatives per generated token (OpenAI's ``logprobs`` and
                ``top_logprobs``). Servers without them ignore the request (``transformers serve`` logs a warning
                and returns none) or answer with an error.

        Returns:
            The reply text, finish reason and token counts.

        Raises:
            LLMError: the request failed for good; ``retryable`` says whether retrying later might help.
        """
        request: dict[str, Any] = {
            "model": self.config.model,
            "messages": list(messages),
            "max_tokens": int(max_tokens or self.config.max_tokens),
            "temperature": self.config.temperature if temperature is None else temperature,
            "top_p": self.config.top_p if top_p is None else top_p,
        }
        if stop:
            request["stop"] = list(stop)
        if top_logprobs:
            request["logprobs"] = True
            request["top_logprobs"] = int(top_logprobs)
        if self.config.seed is not None:
            request["seed"] = self.config.seed
        delay = self.config.backoff_initial
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self._client.chat.completions.create(**request)
            except Exception as error:  # noqa: BLE001 - classified below; unknown errors are not retried
                retryable, description = _classify(error)
                if not retryable:
                    self.usage.add(failures=1)
                    raise LLMError(
                        f"LLM request to {self.config.base_url or OPENAI_DEFAULT_BASE} failed: {description}",
                        retryable=False,
                    ) from error
                if attempt == self.config.max_retries:
                    self.usage.add(failures=1)
                    raise LLMError(
                        f"LLM request to {self.config.base_url or OPENAI_DEFAULT_BASE} failed after {attempt + 1} "
                        f"attempts: {description}. Check that the server is up, or raise --llm-max-retries.",
                        retryable=True,
                    ) from error
                wait = _retry_after(error) or delay
                wait = min(self.config.backoff_max, wait) * (0.5 + random.random() / 2)
                logger.warning("LLM request failed (%s); retry %d in %.1f s", description, attempt + 1, wait)
                self.usage.add(retries=1)
                self._sleep(wait)
                delay = min(self.config.backoff_max, delay * 2)
                continue
            return self._completion(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _completion(self, response: Any) -> Completion:
        choices = getattr(response, "choices", None) or []
        choice = choices[0] if choices else None
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None) or ""
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        self.usage.add(requests=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        tokens = getattr(getattr(choice, "logprobs", None), "content", None) or []
        alternatives = tuple(
            {str(top.token): float(top.logprob) for top in (getattr(token, "top_logprobs", None) or [])}
            for token in tokens
        )
        return Completion(
            text, getattr(choice, "finish_reason", None), prompt_tokens, completion_tokens, alternatives
        )

    def chat_many(
        self, conversations: Sequence[Sequence[Message]], **options: Any
    ) -> Iterator[tuple[int, Completion | LLMError]]:
        """Run many chats on the thread pool; yield ``(index, completion or error)`` as each one finishes."""
        return map_concurrently(
            lambda messages: self.chat(messages, **options), conversations, concurrency=self.config.concurrency
        )


def map_concurrently(
    function: Callable[[T], R], items: Iterable[T], *, concurrency: int
) -> Iterator[tuple[int, R | LLMError]]:
    """Call ``function`` on every item with up to ``concurrency`` threads; yield ``(index, result)`` as they finish.

    An :class:`LLMError` raised by ``function`` is yielded in place of the result, so one failed request does not
    stop the others; any other exception propagates. At most ``2 * concurrency`` calls are queued at a time, so a
    caller that stops early leaves little work behind.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}.")

    def call(item: T) -> R | LLMError:
        try:
            return function(item)
        except LLMError as error:
            return error

    iterator = iter(enumerate(items))
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        pending: dict[concurrent.futures.Future[R | LLMError], int] = {}
        try:
            for index, item in iterator:
                pending[pool.submit(call, item)] = index
                if len(pending) >= 2 * concurrency:
                    break
            while pending:
                done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    yield index, future.result()
                    following = next(iterator, None)
                    if following is not None:
                        pending[pool.submit(call, following[1])] = following[0]
        finally:
            for future in pending:
                future.cancel()
