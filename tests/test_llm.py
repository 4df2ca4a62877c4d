"""The one LLM client, local server and "which LLM" resolver (:mod:`reasonembed_rag.llm`), and the ``--llm-*`` flags
every command shares. The client runs against a mocked HTTP transport; the resolver is checked against the
environment and real command-line parsers; one slow test starts the REAL local server through the resolver."""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reasonembed_rag.llm import (
    LLMClient,
    LLMConfig,
    LLMError,
    add_llm_arguments,
    choose_llm,
    choose_llm_from_args,
    map_concurrently,
)

# ------------------------------------------------------------------------------------------------ client


def _client(handler, **config) -> tuple[LLMClient, list[float]]:
    waits: list[float] = []
    settings = {"base_url": "http://llm.test/v1", "api_key": "k", "model": "m", "max_retries": 3, **config}
    client = LLMClient(
        LLMConfig(**settings), sleep=waits.append, http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    return client, waits


def _ok(text: str = "hello") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
        },
    )


def test_client_retries_429_and_5xx_with_backoff_and_counts_tokens():
    answers = iter(
        [
            httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "2"}),
            httpx.Response(503, json={"error": {"message": "busy"}}),
            _ok("4"),
        ]
    )
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return next(answers)

    client, waits = _client(handler, temperature=1.0, top_p=0.6)
    completion = client.chat([{"role": "user", "content": "2+2?"}], max_tokens=5)
    assert completion.text == "4" and completion.finish_reason == "stop"
    assert len(seen) == 3 and seen[0]["max_tokens"] == 5 and seen[0]["top_p"] == 0.6 and seen[0]["model"] == "m"
    assert 1.0 <= waits[0] <= 2.0  # Retry-After (2 s) with jitter
    assert len(waits) == 2
    assert client.usage.snapshot() == {
        "requests": 1,
        "retries": 2,
        "failures": 0,
        "prompt_tokens": 11,
        "completion_tokens": 3,
    }


def test_client_gives_up_after_max_retries_and_does_not_retry_client_errors():
    client, waits = _client(lambda request: httpx.Response(500, json={"error": {"message": "down"}}))
    with pytest.raises(LLMError, match="after 4 attempts") as error:
        client.chat([{"role": "user", "content": "hi"}])
    assert error.value.retryable and len(waits) == 3
    assert waits[1] > waits[0] * 0.9  # back-off grows (jitter aside)
    client, waits = _client(lambda request: httpx.Response(400, json={"error": {"message": "bad"}}))
    with pytest.raises(LLMError, match="HTTP 400") as error:
        client.chat([{"role": "user", "content": "hi"}])
    assert not error.value.retryable and waits == []


def test_client_retries_connection_errors():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("refused")
        return _ok()

    client, waits = _client(handler)
    assert client.chat([{"role": "user", "content": "hi"}]).text == "hello"
    assert len(waits) == 1


def test_config_validation():
    with pytest.raises(ValueError, match="top_p"):
        LLMConfig(top_p=0)
    with pytest.raises(ValueError, match="--llm-model"):
        LLMClient(LLMConfig(base_url="http://x/v1"))


def test_map_concurrently_returns_every_result_and_errors():
    def work(value: int) -> int:
        if value == 3:
            raise LLMError("nope")
        return value * 2

    results = dict(map_concurrently(work, range(10), concurrency=3))
    assert set(results) == set(range(10))
    assert isinstance(results[3], LLMError) and results[4] == 8


# ------------------------------------------------------------------------------------------------ which LLM

ENDPOINT_ENV = {"OPENAI_BASE_URL": "http://env:1/v1", "OPENAI_API_KEY": "env-key", "OPENAI_MODEL": "env-model"}


def test_flags_win_over_the_environment_field_by_field():
    choice = choose_llm(base_url="http://flag:2/v1", model="flag-model", environ=ENDPOINT_ENV)
    assert choice.source == "flags" and not choice.local
    assert (choice.config.base_url, choice.config.model, choice.config.api_key) == (
        "http://flag:2/v1",
        "flag-model",
        "env-key",  # not given as a flag: the environment fills it
    )
    # a model flag alone keeps the environment's endpoint
    choice = choose_llm(model="flag-model", environ=ENDPOINT_ENV)
    assert (choice.source, choice.config.base_url, choice.identity) == ("flags", "http://env:1/v1", "flag-model")


def test_the_environment_wins_over_the_local_server():
    choice = choose_llm(environ=ENDPOINT_ENV, temperature=0.3, concurrency=None)
    assert choice.source == "environment" and not choice.local
    assert (choice.config.base_url, choice.config.api_key, choice.config.model) == tuple(ENDPOINT_ENV.values())
    assert choice.config.temperature == 0.3 and choice.config.concurrency == LLMConfig().concurrency
    # OPENAI_MODEL alone means the openai client's default endpoint (api.openai.com)
    choice = choose_llm(environ={"OPENAI_MODEL": "gpt-4o-mini"})
    assert choice.source == "environment" and choice.description == "gpt-4o-mini at https://api.openai.com/v1"


def test_nothing_configured_means_the_local_server(tmp_path):
    for environ in ({}, {"OPENAI_API_KEY": "a key names no endpoint"}):
        choice = choose_llm(environ=environ)
        assert choice.source == "default" and choice.local and choice.config is None
    # asked for explicitly, the local server wins over the environment; a folder of its own implies it
    assert choose_llm(local=True, environ=ENDPOINT_ENV).source == "local"
    choice = choose_llm(local_model=tmp_path, threads=2, environ=ENDPOINT_ENV)
    assert (choice.source, choice.identity, choice.threads) == ("local", str(tmp_path), 2)  # known without starting


def test_contradictions_and_gaps_are_errors_that_name_the_fix():
    with pytest.raises(ValueError, match="no model name: pass --llm-model"):
        choose_llm(base_url="http://x:1/v1", environ={})
    with pytest.raises(ValueError, match="no model name"):
        choose_llm(environ={"OPENAI_BASE_URL": "http://x:1/v1"})
    with pytest.raises(ValueError, match="--llm-local"):
        choose_llm(local=True, base_url="http://x:1/v1", model="m", environ={})
    with pytest.raises(ValueError, match="top_p"):
        choose_llm(local=True, top_p=0.0, environ={})  # checked before any server starts


def test_opening_an_endpoint_starts_nothing_and_merges_settings():
    choice = choose_llm(environ=ENDPOINT_ENV, temperature=0.3)
    with choice.open(concurrency=7) as endpoint:
        assert not endpoint.local and endpoint.startup_seconds is None
        assert (endpoint.config.temperature, endpoint.config.concurrency) == (0.3, 7)
        assert endpoint.config.model == "env-model" and endpoint.description == "env-model at http://env:1/v1"


# ------------------------------------------------------------------------------------------------ shared flags


def _command_parsers() -> dict[str, argparse.ArgumentParser]:
    """The parser of every command that talks to an LLM, as users reach it."""
    from reasonembed_rag.cli import build_parser as rag_parser
    from reasonembed_rag.demos.compare import build_parser as compare_parser
    from reasonembed_rag.training.cli import build_parser as train_parser

    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return action.choices[name]

    rag = rag_parser()
    return {
        "robustness": sub(rag, "robustness"),
        "demo": sub(rag, "demo"),
        "synthesize": sub(train_parser()[0], "synthesize"),
        "compare": compare_parser(),
    }


def _llm_flags(parser: argparse.ArgumentParser) -> set[str]:
    return set(re.findall(r"--llm-[a-z-]+", parser.format_help()))


ENDPOINT_FLAGS = {
    "--llm-base-url",
    "--llm-api-key",
    "--llm-model",
    "--llm-local",
    "--llm-local-model",
    "--llm-threads",
    "--llm-timeout",
    "--llm-max-retries",
}
SAMPLING_FLAGS = {"--llm-temperature", "--llm-top-p", "--llm-max-tokens", "--llm-concurrency"}


def test_every_command_shows_the_same_llm_flags_in_its_help():
    flags = {name: _llm_flags(parser) for name, parser in _command_parsers().items()}
    for name in ("demo", "compare"):  # the agents sample with their own settings
        assert flags[name] == ENDPOINT_FLAGS, name
    for name in ("robustness", "synthesize"):  # these sample from the LLM themselves
        assert flags[name] == ENDPOINT_FLAGS | SAMPLING_FLAGS, name


def test_the_same_flags_choose_the_same_llm_in_every_command(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    flags = ["--llm-base-url", "http://h:9/v1", "--llm-model", "m", "--llm-api-key", "k", "--llm-timeout", "9"]
    required = {"robustness": ["--model", "bm25"], "synthesize": ["--seeds", "offline", "--output", "out"]}
    configs = {}
    for name, parser in _command_parsers().items():
        choice = choose_llm_from_args(parser.parse_args([*required.get(name, []), *flags]))
        assert choice.source == "flags", name
        configs[name] = (choice.config.base_url, choice.config.model, choice.config.api_key, choice.config.timeout)
    assert set(configs.values()) == {("http://h:9/v1", "m", "k", 9.0)}
    for name, parser in _command_parsers().items():
        assert choose_llm_from_args(parser.parse_args(required.get(name, []))).source == "default", name
        local = parser.parse_args([*required.get(name, []), "--llm-local", "--llm-threads", "3"])
        assert (choose_llm_from_args(local).source, choose_llm_from_args(local).threads) == ("local", 3), name


def test_sampling_defaults_belong_to_the_command():
    parser = argparse.ArgumentParser()
    add_llm_arguments(parser, sampling={"temperature": 0.2, "concurrency": 3}, aliases={"--llm-model": ["--model"]})
    args = parser.parse_args(["--model", "m"])
    assert (args.llm_model, args.llm_temperature, args.llm_concurrency, args.llm_top_p) == ("m", 0.2, 3, None)
    choice = choose_llm_from_args(args, max_tokens=50)  # None leaves LLMConfig's default; callers may add settings
    assert (choice.config.temperature, choice.config.top_p, choice.config.max_tokens) == (0.2, LLMConfig().top_p, 50)


# ------------------------------------------------------------------------------------------------ local server


def test_sigterm_unwinds_so_servers_are_stopped(tmp_path: Path) -> None:
    """A killed command must run its cleanup (the local LLM server is stopped in a ``with`` block)."""
    marker = tmp_path / "cleaned"
    script = (
        "import sys, time\n"
        "from reasonembed_rag.llm import exit_cleanly_on_sigterm\n"
        "exit_cleanly_on_sigterm()\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "finally:\n"
        f"    open({str(marker)!r}, 'w').write('stopped')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 30
    assert marker.read_text() == "stopped"


@pytest.mark.slow
def test_the_resolver_starts_and_stops_the_real_local_server(monkeypatch):
    """--llm-local through the shared flags: a real ``transformers serve`` answers, and is gone after the block."""
    pytest.importorskip("fastapi")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # --llm-local wins over the environment
    monkeypatch.setenv("OPENAI_MODEL", "not-this-one")
    parser = argparse.ArgumentParser()
    add_llm_arguments(parser, sampling={"max_tokens": 8})
    choice = choose_llm_from_args(parser.parse_args(["--llm-local"]))
    with choice.open(temperature=0.0) as endpoint:
        assert endpoint.local and endpoint.config.base_url.startswith("http://127.0.0.1:")
        assert endpoint.config.model == choice.identity  # the name known before the start is the one served
        reply = LLMClient(endpoint.config).chat([{"role": "user", "content": "Say hello."}])
        assert reply.text.strip() and reply.completion_tokens <= 8
        url = endpoint.config.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/models", timeout=2)
