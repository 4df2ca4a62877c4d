"""Real processes on one embedded Chroma folder: two ``index`` runs at once, Ctrl-C during ``index``, and
``index --verify`` repairing what unlocked writers broke (issue 14, item 1 and the interruption of item 3).

Every run is a real ``python -m reasonembed_rag.cli`` subprocess. The fast tests use a tiny real model folder built
from a config; the slow test is the issue's probe with MiniLM and 600 documents per writer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import chromadb
import numpy as np
import pytest
from filelock import FileLock

from reasonembed_rag import ReasonEmbedEncoder
from reasonembed_rag.store import LOCK_FILE, ChromaStore, VerifyReport

from .tiny_models import WORDS, build_tiny_decoder

ENVIRONMENT = {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return str(build_tiny_decoder(tmp_path_factory.mktemp("tiny-model"), hidden_size=16))


def document_lines(prefix: str, count: int) -> list[str]:
    """JSONL lines of documents made of random words the tiny model knows, so that their vectors differ (an HNSW
    search over many identical vectors may miss some, which would look like lost documents)."""
    rng = np.random.default_rng(len(prefix))
    rows = ({"id": f"{prefix}-{i}", "content": " ".join(rng.choice(WORDS, 12))} for i in range(count))
    return [json.dumps(row) + "\n" for row in rows]


def write_documents(path: Path, prefix: str, count: int) -> Path:
    path.write_text("".join(document_lines(prefix, count)))
    return path


def index_command(source: Path, chroma: Path, model: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "reasonembed_rag.cli", "index", str(source), "--collection", "shared",
        "--chroma", str(chroma), "--model", model, "--no-progress", *extra,
    ]  # fmt: skip


def assert_whole(chroma: Path, model: str, expected: int) -> None:
    """Counted == searchable == readable with vectors, and the store's verify finds nothing missing."""
    with ChromaStore("shared", ReasonEmbedEncoder.from_pretrained(model), chroma=chroma, create=False) as store:
        assert store.count() == expected
        assert len(store.collection.get(include=["embeddings"])["ids"]) == expected
        probe = np.ones(store.dimension, dtype=np.float32) / np.sqrt(store.dimension)
        hits = store.search_by_vectors(probe, k=expected + 10)[0]
        assert len({hit.id for hit in hits}) == expected
        assert store.verify() == VerifyReport()


def run_two_writers(tmp_path: Path, model: str, count: int, batch: int, *, contend: bool) -> list[str]:
    chroma = tmp_path / "db"
    sources = [write_documents(tmp_path / f"{name}.jsonl", name, count) for name in ("first", "second")]
    holder = None
    if contend:
        # Hold the lock first so that both writers start while it is taken: both must wait, deterministically.
        chroma.mkdir()
        holder = FileLock(chroma / LOCK_FILE, thread_local=False)
        holder.acquire()
    commands = [index_command(source, chroma, model, "--batch-size", str(batch)) for source in sources]
    logs = [tmp_path / f"writer-{i}.log" for i in range(len(commands))]
    processes = []
    for command, log in zip(commands, logs, strict=True):
        with log.open("w") as handle:
            processes.append(
                subprocess.Popen(command, env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=handle, text=True)
            )
    if holder is not None:
        deadline = time.monotonic() + 600
        while not all("waiting for the lock" in log.read_text() for log in logs):
            assert all(process.poll() is None for process in processes), [log.read_text() for log in logs]
            assert time.monotonic() < deadline, "the writers never reached the lock"
            time.sleep(0.5)
        holder.release()
    outputs = []
    for process, log in zip(processes, logs, strict=True):
        out, _ = process.communicate(timeout=900)
        assert process.returncode == 0, log.read_text()
        assert f"Added {count} documents" in out
        outputs.append(log.read_text())
    assert_whole(chroma, model, 2 * count)
    return outputs


def test_two_concurrent_index_runs_lose_nothing(tmp_path, tiny_model):
    errors = run_two_writers(tmp_path, tiny_model, 200, 20, contend=True)
    for err in errors:
        assert f"waiting for the lock on {tmp_path / 'db'} held by another writer" in err


@pytest.mark.slow
def test_two_concurrent_index_runs_lose_nothing_with_minilm(tmp_path):
    """The issue's probe: before the lock, 1 run in 3 counted 1200 documents of which 1100 were searchable."""
    run_two_writers(tmp_path, "minilm-l6", 600, 100, contend=False)


def test_ctrl_c_during_index_keeps_what_was_written_and_a_rerun_completes(tmp_path, tiny_model):
    chroma = tmp_path / "db"
    pipe = tmp_path / "documents.pipe"
    os.mkfifo(pipe)
    process = subprocess.Popen(
        index_command(pipe, chroma, tiny_model, "--batch-size", "10"),
        env=ENVIRONMENT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The first 95 documents: nine chunks of ten are written, the tenth waits for more input when Ctrl-C comes.
    lines = document_lines("doc", 120)
    writer = threading.Thread(target=lambda: _feed(pipe, lines[:95]), daemon=True)
    writer.start()
    deadline = time.monotonic() + 300
    while _count(chroma) < 90:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the index run wrote nothing"
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "Interrupted: 90 documents were saved to 'shared' in this run (it holds 90)" in err
    assert "Run the same command again to resume" in err
    assert _count(chroma) == 90
    source = tmp_path / "documents.jsonl"
    source.write_text("".join(lines))
    rerun = subprocess.run(index_command(source, chroma, tiny_model), env=ENVIRONMENT, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "Added 30 documents" in rerun.stdout and "90 already there" in rerun.stdout
    assert_whole(chroma, tiny_model, 120)


def test_index_verify_repairs_what_unlocked_writers_broke(tmp_path, tiny_model):
    chroma = tmp_path / "db"
    ChromaStore("shared", ReasonEmbedEncoder.from_pretrained(tiny_model), chroma=chroma).close()
    helper = Path(__file__).with_name("unlocked_writers.py")
    subprocess.run([sys.executable, str(helper), str(chroma), "shared", "700"], env=ENVIRONMENT, check=True)
    # The source holds the bare vectors' documents, so indexing adds back the ones verify had to remove.
    source = tmp_path / "bare.jsonl"
    source.write_text("".join(json.dumps({"id": f"bare-{i}", "content": f"bare {i}"}) + "\n" for i in range(350, 700)))
    result = subprocess.run(
        index_command(source, chroma, tiny_model, "--verify"), env=ENVIRONMENT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "700 documents were missing from the vector index, 350 embedded again; 350 stored without text were " \
        "removed" in result.stdout
    assert "Added 350 documents" in result.stdout
    assert_whole(chroma, tiny_model, 2100)


def _feed(pipe: Path, lines: list[str]) -> None:
    """Write lines into the named pipe and keep it open (the reader then waits for more, as for a slow source)."""
    handle = open(pipe, "w")  # noqa: SIM115 - left open on purpose until the test process ends
    handle.writelines(lines)
    handle.flush()
    _open_pipes.append(handle)


_open_pipes: list = []


def _count(chroma: Path) -> int:
    if not (chroma / "chroma.sqlite3").exists():
        return 0
    with chromadb.PersistentClient(path=str(chroma)) as client:
        try:
            return client.get_collection("shared", embedding_function=None).count()
        except chromadb.errors.NotFoundError:
            return 0
