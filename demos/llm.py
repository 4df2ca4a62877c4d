"""The agents' framework-side LLM pieces; which endpoint to use is the core's decision.

The endpoint (flags, ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``OPENAI_MODEL``, else a local ``transformers serve``
of SmolLM2) comes from :func:`reasonembed_rag.llm.choose_llm`, as for robustness and ReMixer. Here:

* :func:`resolve_mode` - ``tools`` or ``loop`` for ``auto``: one probe request offers the model a search tool and
  checks whether a tool call comes back (models that cannot call tools, like SmolLM2-135M, answer in prose, and
  servers that reject tools count as "cannot"). The probe runs once per endpoint and model in a process.
* :func:`llama_index_llm`, :func:`langchain_chat_model` - the frameworks' own OpenAI-compatible chat models.
* :func:`usage_from_raw` - token counts from a framework's raw OpenAI response.
"""

from __future__ import annotations

import logging
from typing import Any

from reasonembed_rag.llm import OPENAI_DEFAULT_BASE, LLMConfig

from .core import SEARCH_TOOL_DESCRIPTION, SEARCH_TOOL_NAME

__all__ = [
    "detect_tool_calling",
    "langchain_chat_model",
    "llama_index_llm",
    "resolve_mode",
    "usage_from_raw",
]

logger = logging.getLogger(__name__)

DEFAULT_CONTEXT_WINDOW = 8192
"""Context window LlamaIndex assumes for an endpoint model (SmolLM2's; raise it with ``context_window=``)."""
_PROBE_TOKENS = 64
_PROBE_MESSAGE = "Use the search_documents tool to find documents about the Pythagorean theorem."
_PROBES: dict[tuple[str, str], tuple[bool, str]] = {}


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
