"""scripts/sweep_shipped_model.py end to end on a tiny model: the validation problems are held out of training, every
run is scored and logged once (a rerun skips it), the best is retrained as Redapter and InfoNCE twins that load."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

from reasonembed_rag import ReasonEmbedEncoder

from .tiny_models import WORDS, build_tiny_decoder

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sweep_shipped_model.py"
INSTRUCTION = "Given a Math problem, retrieve relevant concepts and theorems that help answer the problem."


@pytest.fixture(scope="module")
def sweep():
    sys.path.insert(0, str(SCRIPT.parent))  # spawned workers import the module by name
    spec = importlib.util.spec_from_file_location("sweep_shipped_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep_shipped_model"] = module
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(SCRIPT.parent))
    sys.modules.pop("sweep_shipped_model", None)


def _layout(root: Path) -> tuple[Path, Path, list[str]]:
    """A BRIGHT-layout tasks folder (test + train side over one corpus) and the training rows for it."""
    rng = random.Random(0)
    concepts = {f"C{i}": " ".join(rng.choice(WORDS) for _ in range(8)) for i in range(10)}
    tasks = root / "tasks"
    problems = {}
    for task, count in (("champ_concepts", 6), ("champ_concepts_train", 16)):
        folder = tasks / task
        folder.mkdir(parents=True)
        (folder / "instruction.txt").write_text(INSTRUCTION)
        (folder / "documents.jsonl").write_text(
            "\n".join(json.dumps({"id": k, "content": v}) for k, v in concepts.items()) + "\n"
        )
        rows = []
        for i in range(count):
            query = f"{task} problem {i}: " + " ".join(rng.choice(WORDS) for _ in range(6))
            gold = rng.sample(sorted(concepts), 2)
            rows.append({"id": f"{task}-{i}", "query": query, "gold_ids": gold, "excluded_ids": []})
            problems[query] = gold
        (folder / "examples.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = root / "data"
    data.mkdir()
    gold_rows, queries = [], []
    for query, gold in problems.items():
        if not query.startswith("champ_concepts_train"):
            continue
        queries.append(query)
        others = [v for k, v in concepts.items() if k not in gold]
        gold_rows.append(
            {
                "prompt": INSTRUCTION,
                "query": query,
                "reasoning_query": query + " so use the theorem",
                "pos": [concepts[g] for g in gold],
                "neg": others[:3],
            }
        )
    (data / "champ_concepts_train_gold.jsonl").write_text("\n".join(json.dumps(r) for r in gold_rows) + "\n")
    synthetic = [
        {**row, "query": f"made up {i}", "reasoning_query": f"made up {i} why"} for i, row in enumerate(gold_rows[:4])
    ]
    (data / "champ_concepts_train.jsonl").write_text("\n".join(json.dumps(r) for r in synthetic) + "\n")
    return tasks, data, queries


def test_sweep_holds_out_validation_scores_each_run_once_and_trains_both_twins(tmp_path, sweep, capsys):
    tasks, data, train_queries = _layout(tmp_path)
    model = build_tiny_decoder(tmp_path / "tiny", "qwen3")
    output = tmp_path / "sweep"
    argv = [
        "--data",
        str(data),
        "--tasks-root",
        str(tasks),
        "--output",
        str(output),
        "--grid",
        "smoke",
        "--device",
        "cpu",
        "--model",
        str(model),
    ]
    assert sweep.main(argv) == 0

    held_out = {json.loads(line)["query"] for line in (data / sweep.GOLD_FILE).read_text().splitlines()} - {
        json.loads(line)["query"] for line in (output / "split" / sweep.GOLD_FILE).read_text().splitlines()
    }
    assert 0 < len(held_out) < len(train_queries)  # a quarter, by a hash of the problem
    assert (output / "split" / "champ_concepts_train.jsonl").read_text() == (
        data / "champ_concepts_train.jsonl"
    ).read_text()

    summary = json.loads((output / "summary.json").read_text())
    assert summary["validation_queries"] == len(held_out)
    [run] = summary["runs"]
    assert 0 <= run["validation"] <= 100 and 0 <= run["test"] <= 100 and run["steps"] == 2
    assert set(summary["final"]) == {"reasonembed-smollm2-135m", "reasonembed-basic-smollm2-135m"}
    for name, loss in (("reasonembed-smollm2-135m", "redapter"), ("reasonembed-basic-smollm2-135m", "infonce")):
        folder = output / "final" / name
        assert json.loads((folder / "training_args.json").read_text())["loss"] == loss
        vectors = ReasonEmbedEncoder.from_pretrained(folder, device="cpu").encode_documents(["prime number"])
        assert vectors.shape[0] == 1

    capsys.readouterr()
    assert sweep.main([*argv, "--no-final"]) == 0  # resumable: the logged run is not trained again
    assert len((output / "sweep.jsonl").read_text().splitlines()) == 1
    assert "chosen" in capsys.readouterr().out


def test_planned_steps_count_full_batches_per_task(tmp_path, sweep):
    (tmp_path / "a.jsonl").write_text("{}\n" * 10)
    (tmp_path / "b.jsonl").write_text("{}\n" * 3)
    assert sweep.planned_steps(tmp_path, {"batch_size": 4, "epochs": 2}) == 2 * (2 + 1)
    assert sweep.planned_steps(tmp_path, {"batch_size": 4, "max_steps": 7}) == 7
