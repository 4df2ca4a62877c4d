"""Distributed embedding with Ray Data (:mod:`reasonembed_rag.distributed`, ``index --ray``) on a local 2-CPU cluster.

Ray binds to every interface and picks the machine's network address, so each Ray part runs in a subprocess inside a
fresh network namespace that has only loopback (``unshare -n``), with its own Ray temp folder; the test skips when the
namespace cannot be made (not root). The collections are compared in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="needs the ray extra: pip install 'reasonembed-rag[ray]'")
chromadb = pytest.importorskip("chromadb")
champ_dataset = pytest.importorskip("champ_dataset")

pytestmark = pytest.mark.slow

DOCUMENTS = 1500
REPO = Path(__file__).resolve().parents[1]


def _namespace_refusal() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2) to keep Ray on loopback"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare -n is not permitted here ({probe.stderr.strip()}); Ray must run on a loopback-only network"
    return None


@pytest.fixture(scope="module")
def loopback():
    refusal = _namespace_refusal()
    if refusal:
        pytest.skip(refusal)


def run_isolated(argv: list[str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a loopback-only network namespace with its own Ray temp folder; fail with its output."""
    # A short folder: Ray's socket paths inside it must stay under the 107-byte AF_UNIX limit.
    ray_temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": ray_temp,
        "PYTHONPATH": str(REPO),
    }
    command = "ip link set lo up && exec " + " ".join(_quote(part) for part in argv)
    try:
        result = subprocess.run(
            ["unshare", "-n", "bash", "-c", command], env=env, capture_output=True, text=True, timeout=timeout
        )
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert result.returncode == 0, f"{argv} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-6000:]}"
    return result


def _quote(part: str) -> str:
    return "'" + part.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> Path:
    """About 1,500 real documents: CHAMP's concepts, hints and problems, then restated variants under new ids."""
    data = champ_dataset.load("v0")
    base = [(key, item.text) for items in (data.concepts, data.hints, data.problems) for key, item in items.items()]
    rows = [{"id": key, "content": text} for key, text in base]
    for number in range(DOCUMENTS - len(rows)):
        key, text = base[number % len(base)]
        rows.append({"id": f"{key}-v{number}", "content": f"Restated ({number}): {text.lower()}"})
    path = tmp_path_factory.mktemp("ray-docs") / "documents.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_collection(folder: Path, name: str) -> dict[str, tuple[np.ndarray, str]]:
    collection = chromadb.PersistentClient(path=str(folder)).get_collection(name, embedding_function=None)
    got = collection.get(include=["embeddings", "documents"], limit=collection.count() + 1)
    assert len(got["ids"]) == len(set(got["ids"])), "duplicate ids in the collection"
    return {
        doc_id: (np.asarray(vector, dtype=np.float32), text)
        for doc_id, vector, text in zip(got["ids"], got["embeddings"], got["documents"], strict=True)
    }


def test_index_with_ray_equals_single_process_index(loopback, documents, tmp_path):
    from reasonembed_rag.cli import main

    chroma = tmp_path / "chroma"
    assert main(["index", str(documents), "--collection", "single", "--chroma", str(chroma), "--no-progress"]) == 0
    result = run_isolated(
        [sys.executable, "-m", "reasonembed_rag.cli", "index", str(documents), "--collection", "distributed",
         "--chroma", str(chroma), "--ray", "local", "--ray-workers", "2", "--no-progress"],
    )  # fmt: skip
    assert "documents/s" in result.stdout and "2 workers" in result.stdout, result.stdout
    single, distributed = read_collection(chroma, "single"), read_collection(chroma, "distributed")
    assert len(single) == DOCUMENTS
    assert set(distributed) == set(single)
    ids = sorted(single)
    assert [distributed[i][1] for i in ids] == [single[i][1] for i in ids]
    cosines = np.einsum(
        "ij,ij->i", np.stack([single[i][0] for i in ids]), np.stack([distributed[i][0] for i in ids])
    )
    assert cosines.min() >= 0.9999, f"lowest cosine {cosines.min():.6f} at {ids[int(cosines.argmin())]}"


CRASHING_JOB = """
import os, sys, tempfile
from reasonembed_rag.distributed import connect, index_with_ray
from reasonembed_rag.encoder import ReasonEmbedEncoder
from reasonembed_rag.jsonl import read_jsonl
from reasonembed_rag.store import ChromaStore

documents_path, chroma, marker = sys.argv[1:4]
rows = [row for _, row in read_jsonl(documents_path)]

def crash_once():
    # Loaded in each actor: the first encoder call anywhere creates the marker and kills its worker process.
    encoder = ReasonEmbedEncoder.from_pretrained("minilm-l6")
    encode = encoder.encode_documents
    def encode_or_die(texts, **kwargs):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return encode(texts, **kwargs)
        os._exit(1)
    encoder.encode_documents = encode_or_die
    return encoder

store = ChromaStore("resumed", ReasonEmbedEncoder.from_pretrained("minilm-l6"), chroma=chroma)
first = store.add_documents(rows[:500], show_progress=False)  # a job that was killed after 500 documents
connect("local", num_cpus=2, include_dashboard=False, _temp_dir=tempfile.mkdtemp(dir=os.environ["RAY_TMPDIR"]))
job = index_with_ray(store, rows + rows[:7], model=crash_once, workers=2, batch_size=64, show_progress=False)
again = index_with_ray(store, rows, model="minilm-l6", workers=2, show_progress=False)
print("RESULT", first.added, job.report.added, job.report.already_present, job.report.duplicates, again.report.added,
      again.report.already_present, store.count())
"""


def test_a_killed_worker_and_a_resumed_job_lose_and_repeat_nothing(loopback, documents, tmp_path):
    script = tmp_path / "crashing_job.py"
    script.write_text(textwrap.dedent(CRASHING_JOB))
    marker = tmp_path / "worker-killed"
    chroma = tmp_path / "chroma"
    result = run_isolated([sys.executable, str(script), str(documents), str(chroma), str(marker)])
    assert marker.exists(), "no worker was killed: the test did not exercise a restart"
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    first, added, present, repeated, added_again, present_again, count = map(int, line.split()[1:])
    assert (first, added, present, repeated) == (500, DOCUMENTS - 500, 500, 7)
    assert (added_again, present_again, count) == (0, DOCUMENTS, DOCUMENTS)
    stored = read_collection(chroma, "resumed")
    expected = {json.loads(line)["id"]: json.loads(line)["content"] for line in documents.read_text().splitlines()}
    assert {doc_id: text for doc_id, (_, text) in stored.items()} == expected


def test_bright_with_ray_scores_as_without(loopback, tmp_path):
    from reasonembed_rag.cli import main

    single, distributed = tmp_path / "single.json", tmp_path / "ray.json"
    common = ["bright", "--data", "offline", "--tasks", "champ_concepts", "--model", "minilm-l6"]
    assert main([*common, "--chroma", str(tmp_path / "single"), "--output", str(single)]) == 0
    result = run_isolated(
        [sys.executable, "-m", "reasonembed_rag.cli", *common, "--chroma", str(tmp_path / "ray"), "--output",
         str(distributed), "--ray", "local"],
    )  # fmt: skip
    assert "champ_concepts: Ray embedded 89 documents" in result.stdout, result.stdout
    expected, got = json.loads(single.read_text()), json.loads(distributed.read_text())
    for name, value in expected["mean"].items():
        assert got["mean"][name] == pytest.approx(value, abs=1e-4), name
