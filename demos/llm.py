"""The LLM behind the agents: any OpenAI-compatible endpoint, offline a local ``transformers serve`` of SmolLM2.

* :func:`llm_endpoint` - a context manager giving the :class:`~training.llm.LLMConfig` to use: the one passed in,
  else ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``OPENAI_MODEL`` from the environment, else a
  :class:`~training.llm.LocalLLMServer` started on 127.0.0.1 for the duration and stopped after.
* :func:`resolve_mode` - ``tools`` or ``loop`` for ``auto``: one probe request offers the model a search tool and
  checks whether a tool call comes back (models that cannot call tools, like SmolLM2-135M, answer in prose, and
  servers that reject tools count as "cannot"). The probe runs once per endpoint and model in a process.
* :func:`llama_index_llm`, :func:`langchain_chat_model` - the frameworks' own OpenAI-compatible chat models.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reasonembed_rag.training.llm import LLMConfig, LocalLLMServer

from .core import SEARCH_TOOL_DESCRIPTION, SEARCH_TOOL_NAME

__all__ = [
    "detect_tool_calling",
    "display_model",
    "langchain_chat_model",
    "llama_index_llm",
    "llm_endpoint",
    "llm_endpoint_identity",
    "resolve_mode",
    "usage_from_raw",
]

logger = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"
DEFAULT_CONTEXT_WINDOW = 8192
"""Context window LlamaIndex assumes for an endpoint model (SmolLM2's; raise it with ``context_window=``)."""
_PROBE_TOKENS = 64
_PROBE_MESSAGE = "Use the search_documents tool to find documents about the Pythagorean theorem."
_PROBES: dict[tuple[str, str], tuple[bool, str]] = {}


@contextlib.contextmanager
def llm_endpoint(
    config: LLMConfig | None = None,
    *,
    model: str | None = None,
    base_url: str | None = None,
    threads: int | None = 1,
    quiet: bool = False,
) -> Iterator[tuple[LLMConfig, str]]:
    """The endpoint to use, and a one-line description of where it came from.

    Args:
        config: Use this endpoint as is.
        model: Model name (overrides ``OPENAI_MODEL``).
        base_url: ``http://host:port/v1`` (overrides ``OPENAI_BASE_URL``).
        threads: torch threads of a local server (1 is fastest on a busy 2-core machine).
        quiet: Do not print when a local server starts.

    Yields:
        ``(config, description)``. Without ``config``, ``model``/``base_url`` or the ``OPENAI_*`` variables, a local
        ``transformers serve`` of SmolLM2-135M-Instruct runs while the context is open.

    Raises:
        ValueError: a base URL is set but no model name.
    """
    if config is not None:
        yield config, f"{display_model(config.model)} at {config.base_url or OPENAI_DEFAULT_BASE}"
        return
    if base_url or model or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_MODEL"):
        resolved = LLMConfig.from_env(base_url=base_url, model=model)
        if not resolved.model:
            raise ValueError(
                f"An LLM endpoint is set ({resolved.base_url}) but no model name: pass --llm-model NAME or set "
                "OPENAI_MODEL to the model the endpoint serves."
            )
        yield resolved, f"{display_model(resolved.model)} at {resolved.base_url or OPENAI_DEFAULT_BASE}"
        return
    if not quiet:
        print("Starting a local LLM (transformers serve of SmolLM2-135M-Instruct on 127.0.0.1) ...", flush=True)
    with LocalLLMServer(threads=threads) as server:
        yield server.config(), f"local transformers serve of SmolLM2-135M-Instruct at {server.base_url}"


def display_model(model: str | None) -> str:
    """A model name for reports: a local folder (what ``transformers serve`` calls its model) by its last part."""
    text = str(model)
    return Path(text).name if os.path.isabs(text) else text


def llm_endpoint_identity(config: LLMConfig | None = None, *, model: str | None = None) -> str:
    """The model name :func:`llm_endpoint` would use, found without starting anything (for cache keys)."""
    if config is not None:
        return str(config.model)
    if model or os.environ.get("OPENAI_MODEL"):
        return str(model or os.environ["OPENAI_MODEL"])
    from reasonembed_rag.training.llm import default_local_model

    return str(default_local_model())


def detect_tool_calling(config: LLMConfig) -> tuple[bool, str]:
    """Whether the endpoint's model answers a tool-offering request with a tool call, and why we think so."""
    key = (config.base_url or OPENAI_DEFAULT_BASE, str(config.model))
    if key in _PROBES:
        return _PROBES[key]
    import openai

    client = openai.OpenAI(
        base_url=config.base_url, api_key=config.api_key or "not-needed", timeout=config.timeout, max_retries=1
    )
    tool = {
        "type": "function",
        "function": {
            "name": SEARCH_TOOL_NAME,
            "description": SEARCH_TOOL_DESCRIPTION,
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    }
    try:
        response = client.chat.completions.create(
            model=str(config.model),
            messages=[{"role": "user", "content": _PROBE_MESSAGE}],
            tools=[tool],  # type: ignore[list-item]
            max_tokens=_PROBE_TOKENS,
            temperature=0.0,
        )
    except openai.APIStatusError as error:
        verdict = (False, f"the endpoint rejected a request offering a tool (HTTP {error.status_code})")
    except openai.OpenAIError as error:
        raise RuntimeError(
            f"Could not reach the LLM at {key[0]} to probe tool calling ({type(error).__name__}: {error}). Check the "
            "server, or pass --mode loop / --mode tools to skip the probe."
        ) from error
    else:
        message = response.choices[0].message if response.choices else None
        if message is not None and message.tool_calls:
            verdict = (True, "the model answered a probe with a tool call")
        else:
            verdict = (False, "the model answered a probe without a tool call")
    _PROBES[key] = verdict
    return verdict


def resolve_mode(mode: str, config: LLMConfig) -> tuple[str, str]:
    """``(tools | loop, reason)`` for ``mode`` (``auto`` probes the endpoint once, see :func:`detect_tool_calling`)."""
    from .core import MODES

    if mode not in MODES:
        raise ValueError(f"Unknown agent mode {mode!r}; use one of {', '.join(MODES)}.")
    if mode != "auto":
        return mode, f"{mode} (chosen explicitly)"
    capable, why = detect_tool_calling(config)
    chosen = "tools" if capable else "loop"
    return chosen, f"{chosen} (auto: {why})"


def llama_index_llm(
    config: LLMConfig,
    *,
    max_tokens: int,
    temperature: float = 0.0,
    function_calling: bool = False,
    context_window: int = DEFAULT_CONTEXT_WINDOW,
) -> Any:
    """LlamaIndex's ``OpenAILike`` for the endpoint (flagged function-calling for the tool-calling agent).

    Tool requests leave out ``tool_choice="auto"`` and ``parallel_tool_calls=True``: both are the API's defaults, and
    some OpenAI-compatible servers (``transformers serve``) reject requests that carry them.
    """
    from llama_index.llms.openai_like import OpenAILike

    class EndpointLLM(OpenAILike):
        def _prepare_chat_with_tools(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            prepared = super()._prepare_chat_with_tools(*args, **kwargs)
            if prepared.get("tool_choice") == "auto":
                prepared.pop("tool_choice")
            if prepared.get("parallel_tool_calls") is True:
                prepared.pop("parallel_tool_calls")
            return prepared

    return EndpointLLM(
        model=str(config.model),
        api_base=config.base_url or OPENAI_DEFAULT_BASE,
        api_key=config.api_key or "not-needed",
        is_chat_model=True,
        is_function_calling_model=function_calling,
        context_window=context_window,
        temperature=temperature,
        max_tokens=max_tokens,
        timeout=config.timeout,
        max_retries=config.max_retries,
        # A client per request: agents run each question in its own event loop, and a pooled async client would
        # outlive the loop it was opened in.
        reuse_client=False,
    )


def langchain_chat_model(config: LLMConfig, *, max_tokens: int, temperature: float = 0.0) -> Any:
    """LangChain's ``ChatOpenAI`` for the endpoint."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=str(config.model),
        base_url=config.base_url or OPENAI_DEFAULT_BASE,
        api_key=config.api_key or "not-needed",  # type: ignore[arg-type]
        temperature=temperature,
        max_tokens=max_tokens,  # type: ignore[call-arg]
        timeout=config.timeout,
        max_retries=config.max_retries,
    )


def usage_from_raw(raw: Any) -> dict[str, int]:
    """``{"prompt_tokens", "completion_tokens"}`` from an OpenAI response (object or dict); zeros when absent."""
    usage = raw.get("usage") if isinstance(raw, dict) else getattr(raw, "usage", None)
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0}

    def read(name: str) -> int:
        value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
        return int(value or 0)

    return {"prompt_tokens": read("prompt_tokens"), "completion_tokens": read("completion_tokens")}
