"""The LLM behind robustness paraphrases, ReMixer synthesis and the agents: one client, one local server, one choice.

* :mod:`.client` - :class:`LLMConfig`, :class:`LLMClient` (any OpenAI-compatible endpoint; retries, back-off,
  concurrency, token counts), :class:`ChatModel`, :class:`Completion`, :class:`LLMError`, :func:`map_concurrently`.
* :mod:`.server` - :class:`LocalLLMServer`: the offline default, a ``transformers serve`` of SmolLM2-135M-Instruct
  on 127.0.0.1, started and stopped by the project.
* :mod:`.choice` - :func:`choose_llm`: which LLM (flags > ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` /
  ``OPENAI_MODEL`` > the local server), and the ``--llm-*`` flags every command shares (:func:`add_llm_arguments`).

Example:
    >>> from reasonembed_rag.llm import LLMClient, choose_llm
    >>> with choose_llm().open() as endpoint:                       # doctest: +SKIP
    ...     LLMClient(endpoint.config).chat([{"role": "user", "content": "Hi"}], max_tokens=16).text
    'Hello! How can I help you today?'
"""

from __future__ import annotations

from .choice import (
    LLMChoice,
    LLMEndpoint,
    add_llm_arguments,
    choose_llm,
    choose_llm_from_args,
    display_model,
)
from .client import (
    OPENAI_DEFAULT_BASE,
    ChatModel,
    Completion,
    LLMClient,
    LLMConfig,
    LLMError,
    Message,
    TokenUsage,
    map_concurrently,
)
from .server import LocalLLMServer, default_local_model, exit_cleanly_on_sigterm, free_port

__all__ = [
    "OPENAI_DEFAULT_BASE",
    "ChatModel",
    "Completion",
    "LLMChoice",
    "LLMClient",
    "LLMConfig",
    "LLMEndpoint",
    "LLMError",
    "LocalLLMServer",
    "Message",
    "TokenUsage",
    "add_llm_arguments",
    "choose_llm",
    "choose_llm_from_args",
    "default_local_model",
    "display_model",
    "exit_cleanly_on_sigterm",
    "free_port",
    "map_concurrently",
]
