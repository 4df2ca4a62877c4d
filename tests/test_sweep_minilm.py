"""scripts/sweep_minilm.py's report: per-seed numbers, mean +- std and paired per-query tests against a baseline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sweep_minilm.py"


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("sweep_minilm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(seed: int, scores: list[float]) -> dict:
    per_query = {f"q{i}": value for i, value in enumerate(scores)}
    mean = round(100 * sum(scores) / len(scores), 2)
    return {"config": {"seed": seed}, "scores": {"0.5": {"t": {"ndcg@10": mean, "per_query": per_query}}}}


def test_report_pairs_each_seed_with_the_baseline_per_query(sweep):
    base = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    per_query = {f"q{i}": v for i, v in enumerate(base)}
    baseline = {"name": "base", "scores": {"t": {"ndcg@10": 35.0, "per_query": per_query}}}
    same = _row(1, base)
    better = _row(2, [v + 0.1 + 0.01 * i for i, v in enumerate(base)])
    report = sweep.paired_report([same, better], baseline, "0.5", ["t"])
    entry = report["tasks"]["t"]
    assert report["seeds"] == {1: {"t": 35.0}, 2: {"t": 47.5}}
    assert entry["baseline"] == 35.0 and entry["mean"] == pytest.approx(41.25)
    assert entry["std"] == pytest.approx(8.84, abs=0.01)
    assert entry["per_seed_vs_baseline"][0] == {"delta": 0.0, "t_test_p": 1.0, "wilcoxon_p": 1.0}
    assert entry["per_seed_vs_baseline"][1]["delta"] == pytest.approx(12.5)
    assert entry["per_seed_vs_baseline"][1]["t_test_p"] < 0.001  # better on every query by a steady margin
    assert entry["seed_mean_vs_baseline"]["delta"] == pytest.approx(6.25)
    assert "| mean +- std | 41.2 +- 8.8 |" in report["markdown"]


@pytest.mark.parametrize("model", ["minilm-l6", "smollm2-135m"])
def test_each_preset_and_its_grid_are_valid_training_arguments(sweep, model):
    from reasonembed_rag.training.trainer import TrainingArguments

    base = sweep.PRESETS[model]
    assert base["model"] == model and sweep.BASELINES[model][0] == model
    for config in sweep.GRIDS[model]:
        values = {**base, **config, "data": "d", "output": "o"}
        args = TrainingArguments.from_dict(values)
        assert all(getattr(args, key) == value for key, value in config.items())
