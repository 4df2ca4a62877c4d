"""Helpers for the store and framework integration tests: corpora, exact search, a Chroma server, subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Corpus:
    """Documents (ids and texts) and query texts."""

    ids: list[str]
    texts: list[str]
    queries: list[str]


@dataclass(frozen=True)
class IndexedCorpus:
    """A corpus indexed into a persisted collection: the store, its folder, and what indexing reported."""

    store: Any
    path: Path
    report: Any


class ExactSearch:
    """Brute-force cosine search over precomputed, L2-normalised vectors."""

    def __init__(self, ids: list[str], documents: np.ndarray, queries: np.ndarray) -> None:
        self.ids = ids
        self.documents = documents
        self.queries = queries
        self.scores = queries @ documents.T

    def top_ids(self, k: int, scores: np.ndarray | None = None) -> list[list[str]]:
        scores = self.scores if scores is None else scores
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[self.ids[j] for j in row] for row in order]

    def top_scores(self, k: int) -> np.ndarray:
        return -np.sort(-self.scores, axis=1)[:, :k]

    def assert_same_ranking(
        self, rankings: list[list[str]], k: int, *, scores: np.ndarray | None = None, tolerance: float = 1e-5
    ) -> None:
        """Each ranking is the exact top ``k``: documents whose exact scores tie (duplicate texts) may swap places."""
        scores = self.scores if scores is None else scores
        assert len(rankings) == len(scores)
        position = {doc_id: j for j, doc_id in enumerate(self.ids)}
        for query, ranking in enumerate(rankings):
            expected_ids = self.top_ids(k, scores[query : query + 1])[0]
            assert len(ranking) == len(expected_ids) and len(set(ranking)) == len(ranking), (ranking, expected_ids)
            got = scores[query, [position[doc_id] for doc_id in ranking]]
            want = -np.sort(-scores[query])[: len(ranking)]
            assert np.allclose(got, want, atol=tolerance), f"query {query}: got {ranking}, exact {expected_ids}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def chroma_server(path: Path, *, timeout: float = 60.0) -> Iterator[str]:
    """Run ``chroma run`` on a free local port for the duration of the block; yields its URL."""
    executable = Path(sys.executable).with_name("chroma")
    if not executable.exists():
        raise FileNotFoundError(f"The chroma command is not installed next to {sys.executable}.")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(path.parent / f"chroma-server-{port}.log", "wb")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [str(executable), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"chroma run exited with code {process.returncode}; see {log.name}.")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"chroma run did not answer on {url} within {timeout:.0f} s; see {log.name}.")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def run_python(code: str, *args: str, timeout: float = 180.0) -> Any:
    """Run ``code`` in a fresh interpreter (offline, this checkout importable) and parse the JSON it prints last."""
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise AssertionError(f"Subprocess failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
