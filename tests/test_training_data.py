"""Training JSONL: the released ReasonEmbed schema, malformed rows named by file:line and field, one-task batches,
passage groups, seeds."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from reasonembed_rag.training.data import (
    BatchPlanner,
    TrainingDataError,
    TrainingSample,
    load_training_data,
    read_training_file,
    sample_group,
)


def _row(i: int, *, negatives: int = 3, **extra) -> dict:
    row = {
        "prompt": "Given a Math problem, retrieve relevant theorems that help answer the problem.",
        "query": f"query {i}",
        "reasoning_query": f"query {i}, which needs the theorem about {i}",
        "pos": [f"positive {i}"],
        "neg": [f"negative {i}.{k}" for k in range(negatives)],
    }
    row.update(extra)
    return row


def _write(path: Path, rows: list, *, raw_lines: dict[int, str] | None = None) -> Path:
    lines = [json.dumps(row) for row in rows]
    for index, text in (raw_lines or {}).items():
        lines.insert(index, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_the_released_schema_with_optional_fields(tmp_path):
    rows = [
        _row(0, train_group_size=4, batch_size=2, pos_scores=[0.9], neg_scores=[0.1, 0.2, 0.3]),
        _row(1, train_group_size=4, batch_size=2),
    ]
    task = read_training_file(_write(tmp_path / "theorems.jsonl", rows))
    assert task.name == "theorems" and len(task.samples) == 2
    assert task.group_size == 4 and task.batch_size == 2
    first = task.samples[0]
    assert first.pos == ("positive 0",) and first.neg[2] == "negative 0.2"
    assert first.pos_scores == (0.9,) and first.neg_scores == (0.1, 0.2, 0.3)
    assert first.source.endswith("theorems.jsonl:1")
    assert task.instruction == rows[0]["prompt"]


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('{"prompt": "p", "query": "q", "reasoning_query": "r", "pos": ["a"], "neg": ["b"]', None, "not valid JSON"),
        (json.dumps({"query": "q", "reasoning_query": "r", "pos": ["a"], "neg": []}), "prompt", "missing"),
        (json.dumps({**_row(9), "query": 5}), "query", "must be a string"),
        (json.dumps({**_row(9), "pos": []}), "pos", "at least one positive"),
        (json.dumps({**_row(9), "pos": "a"}), "pos", "list of strings"),
        (json.dumps({**_row(9), "neg": ["ok", None]}), "neg", r"\[1\] must be a string"),
        (json.dumps({**_row(9), "neg_scores": [0.1]}), "neg_scores", "3 passages"),
        (json.dumps({**_row(9), "train_group_size": 0}), "train_group_size", "positive integer"),
        ("[1, 2]", None, "JSON object"),
    ],
)
def test_malformed_line_names_file_line_and_field(tmp_path, line, field, message):
    path = _write(tmp_path / "task.jsonl", [_row(0), _row(1)], raw_lines={1: line})
    with pytest.raises(TrainingDataError, match=message) as raised:
        load_training_data(path)
    assert f"{path}:2" in str(raised.value)
    if field:
        assert repr(field) in str(raised.value)


def test_redapter_requires_a_reasoning_query(tmp_path):
    row = _row(0)
    del row["reasoning_query"]
    path = _write(tmp_path / "task.jsonl", [_row(1), row])
    assert load_training_data(path).tasks[0].samples[1].reasoning_query is None  # fine for InfoNCE
    with pytest.raises(TrainingDataError, match=r"task.jsonl:2: field 'reasoning_query' is missing"):
        load_training_data(path, require_reasoning_query=True)


def test_skip_malformed_counts_and_keeps_the_rest(tmp_path):
    path = _write(tmp_path / "task.jsonl", [_row(0), _row(1), _row(2)], raw_lines={1: "{broken", 3: '{"query": 1}'})
    data = load_training_data(path, skip_malformed=True)
    assert data.num_samples == 3 and data.skipped == 2
    assert data.summary()["tasks"]["task"] == {"samples": 3, "skipped": 2, "file": str(path)}


def test_folder_is_one_task_per_file_and_blank_lines_are_ignored(tmp_path):
    _write(tmp_path / "a.jsonl", [_row(0), _row(1)], raw_lines={1: "   "})
    _write(tmp_path / "sub" / "b.json", [_row(2)])
    (tmp_path / "notes.txt").write_text("not data")
    data = load_training_data(tmp_path)
    assert [(t.name, len(t.samples)) for t in data.tasks] == [("a", 2), ("sub/b", 1)]
    assert data.task_instructions() == {"a": _row(0)["prompt"], "sub/b": _row(0)["prompt"]}


def test_missing_or_empty_data_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingDataError, match="does not exist"):
        load_training_data(tmp_path / "nope.jsonl")
    with pytest.raises(TrainingDataError, match="No training files"):
        load_training_data(tmp_path)


def test_group_is_one_positive_and_hard_negatives_without_replacement_when_enough():
    sample = TrainingSample(prompt="p", query="q", reasoning_query=None, pos=("a", "b"), neg=tuple("cdefg"))
    group = sample_group(sample, 4, random.Random(0))
    assert len(group) == 4 and group[0] in sample.pos
    assert len(set(group[1:])) == 3 and set(group[1:]) <= set(sample.neg)


def test_too_few_negatives_are_repeated_as_evenly_as_possible():
    sample = TrainingSample(prompt="p", query="q", reasoning_query=None, pos=("a",), neg=("x", "y"))
    group = sample_group(sample, 6, random.Random(3))
    assert group[0] == "a"
    assert sorted(Counter(group[1:]).values()) == [2, 3]


def test_group_size_one_needs_no_negatives_and_empty_negatives_are_an_error(tmp_path):
    path = _write(tmp_path / "t.jsonl", [_row(0, negatives=0), _row(1)])
    data = load_training_data(path)
    BatchPlanner(data, batch_size=1, group_size=1)
    with pytest.raises(TrainingDataError, match=r"t.jsonl:1: field 'neg' is empty"):
        BatchPlanner(load_training_data(path), batch_size=1, group_size=4)
    planner = BatchPlanner(load_training_data(path), batch_size=1, group_size=4, skip_malformed=True)
    assert planner.data.num_samples == 1 and planner.data.skipped == 1


def _planner(tmp_path: Path, **kwargs) -> BatchPlanner:
    _write(tmp_path / "alpha.jsonl", [_row(i) for i in range(10)])
    _write(tmp_path / "beta.jsonl", [_row(100 + i, negatives=1) for i in range(7)])
    return BatchPlanner(load_training_data(tmp_path, require_reasoning_query=True), **kwargs)


def test_each_batch_comes_from_one_task_with_full_groups(tmp_path):
    planner = _planner(tmp_path, batch_size=3, group_size=4, seed=7)
    batches = [batch for _, batch in planner.batches(0)]
    assert len(batches) == planner.steps_per_epoch == 3 + 2  # incomplete last batches are dropped
    for batch in batches:
        assert all(query.startswith("Instruct: Given a Math problem") for query in batch.queries)
        numbers = [int(query.rsplit(" ", 1)[-1]) for query in batch.queries]
        assert all((number >= 100) == (batch.task == "beta") for number in numbers)  # beta rows are 100+
        assert len(batch.queries) == 3 and len(batch.passages) == 12 and batch.group_size == 4
        assert batch.reasoning_queries is not None and "needs the theorem" in batch.reasoning_queries[0]
        for i in range(3):
            number = batch.queries[i].rsplit(" ", 1)[-1]
            group = batch.passages[i * 4 : (i + 1) * 4]
            assert group[0] == f"positive {number}"
            assert all(p.startswith(f"negative {number}.") for p in group[1:])
    assert {batch.task for batch in batches} == {"alpha", "beta"}


def test_plans_are_seeded_and_differ_between_epochs_and_seeds(tmp_path):
    first = _planner(tmp_path, batch_size=2, group_size=3, seed=1)
    again = _planner(tmp_path, batch_size=2, group_size=3, seed=1)
    other = _planner(tmp_path, batch_size=2, group_size=3, seed=2)
    assert list(first.batches(0)) == list(again.batches(0))
    assert list(first.batches(0)) != list(first.batches(1))
    assert list(first.batches(0)) != list(other.batches(0))
    assert list(first.batches(0, start=3)) == list(first.batches(0))[3:]


def test_ranks_split_the_same_global_batch(tmp_path):
    single = _planner(tmp_path, batch_size=4, group_size=2, seed=5)
    double = _planner(tmp_path, batch_size=2, group_size=2, seed=5, world_size=2)
    assert single.steps_per_epoch == double.steps_per_epoch
    for (_, whole), (_, rank0), (_, rank1) in zip(
        single.batches(0), double.batches(0, rank=0), double.batches(0, rank=1), strict=True
    ):
        assert whole.queries == rank0.queries + rank1.queries
        assert whole.passages == rank0.passages + rank1.passages


def test_file_settings_apply_unless_overridden(tmp_path):
    _write(tmp_path / "small.jsonl", [_row(i, train_group_size=2, batch_size=5) for i in range(10)])
    data = load_training_data(tmp_path)
    planner = BatchPlanner(data)
    batch = next(planner.batches(0))[1]
    assert len(batch.queries) == 5 and batch.group_size == 2
    overridden = BatchPlanner(data, batch_size=3, group_size=3)
    batch = next(overridden.batches(0))[1]
    assert len(batch.queries) == 3 and batch.group_size == 3


def test_a_task_smaller_than_a_batch_still_trains(tmp_path):
    _write(tmp_path / "tiny.jsonl", [_row(0), _row(1)])
    planner = BatchPlanner(load_training_data(tmp_path), batch_size=8, group_size=2)
    assert planner.steps_per_epoch == 1
    assert len(next(planner.batches(0))[1].queries) == 2


def test_false_negatives_are_other_positives_of_the_query_found_in_the_batch(tmp_path):
    """Rows sharing a positive text: each copy that is not the row's own target is marked for its query."""
    shared = "rule of product"
    rows = [_row(i, pos=[shared, f"own {i}"], neg=[f"negative {i}"]) for i in range(4)]
    _write(tmp_path / "t.jsonl", rows)
    data = load_training_data(tmp_path)
    plain = next(BatchPlanner(data, batch_size=4, group_size=2, seed=3).batches(0))[1]
    assert plain.false_negatives == ()
    batch = next(BatchPlanner(data, batch_size=4, group_size=2, seed=3, mask_false_negatives=True).batches(0))[1]
    assert batch.passages == plain.passages
    expected = set()
    for row, query in enumerate(batch.queries):
        own = {shared, f"own {query.rsplit(' ', 1)[-1]}"}
        expected |= {(row, col) for col, text in enumerate(batch.passages) if text in own and col != row * 2}
    assert set(batch.false_negatives) == expected
    assert any(batch.passages[col] == shared for _, col in expected)  # the shared concept drawn by another row
    assert all(col != row * 2 for row, col in batch.false_negatives)
