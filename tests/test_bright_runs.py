"""``bright --save-run`` / ``--load-run`` (TREC run files) and ``--k-values`` (metrics at several cutoffs)."""

from __future__ import annotations

import json

import pytest

from reasonembed_rag.cli import main
from reasonembed_rag.evaluation.data import load_folder_task
from reasonembed_rag.evaluation.metrics import evaluate_run, metric_names, parse_k_values
from reasonembed_rag.evaluation.runfile import read_run, run_tag, write_run
from reasonembed_rag.evaluation.runner import evaluate_bm25

from .test_evaluation import TINY_DOCS, TINY_EXAMPLES, _write_task


def _bright(tmp_path, *extra: str) -> dict:
    out = tmp_path / f"results-{len(list(tmp_path.glob('results-*')))}.json"
    args = ["bright", "--data", str(tmp_path / "data"), "--tasks", "tiny_math", "--output", str(out), *extra]
    assert main(args) == 0
    return json.loads(out.read_text())


def _without_timing(payload: dict) -> dict:
    for summary in payload["tasks"].values():
        summary.pop("seconds")
        summary.pop("documents_embedded")
    return payload


def test_save_then_load_run_scores_identically_and_writes_a_trec_run(tmp_path, capsys):
    """A dense run saved then loaded scores the same on every metric, excluded ids and --keep included; the file
    holds one 6-column line per kept hit, ranked 1..n, without the excluded ids."""
    _write_task(tmp_path / "data", "tiny_math", TINY_EXAMPLES, TINY_DOCS)
    common = ["--keep", "3", "--k-values", "1,2,5"]
    saved = _bright(
        tmp_path, "--model", "minilm-l6", "--chroma", str(tmp_path / "chroma"), "--save-run", str(tmp_path / "runs"),
        *common,
    )  # fmt: skip
    lines = [line.split() for line in (tmp_path / "runs" / "tiny_math.run").read_text().splitlines()]
    assert lines and all(len(line) == 6 and line[1] == "Q0" and line[5] == "minilm-l6.direct" for line in lines)
    by_query: dict[str, list[list[str]]] = {}
    for line in lines:
        by_query.setdefault(line[0], []).append(line)
    assert sorted(by_query) == ["1", "2", "3", "4"]
    for query in TINY_EXAMPLES:
        hits = by_query[query["id"]]
        assert [int(h[3]) for h in hits] == list(range(1, 4))  # --keep 3 of 6 documents
        scores = [float(h[4]) for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert not {h[2] for h in hits} & set(query["excluded_ids"])

    loaded = _bright(tmp_path, "--load-run", str(tmp_path / "runs"), "--model", "no-such-model-is-loaded", *common)
    assert loaded["via"] == "run" and loaded["model"] == "minilm-l6.direct"
    assert _without_timing(loaded)["tasks"] == _without_timing(saved)["tasks"]
    assert loaded["mean"] == saved["mean"] and set(saved["mean"]) == set(metric_names([1, 2, 5]))
    assert "| tiny_math | minilm-l6.direct | run |" in capsys.readouterr().out


def test_load_run_errors_name_the_file_and_line(tmp_path, capsys):
    _write_task(tmp_path / "data", "tiny_math", TINY_EXAMPLES, TINY_DOCS)
    base = ["bright", "--data", str(tmp_path / "data"), "--tasks", "tiny_math", "--load-run", str(tmp_path / "runs")]
    with pytest.raises(SystemExit, match=r"No run file at .*tiny_math\.run.*--save-run"):
        main(base)
    path = tmp_path / "runs" / "tiny_math.run"
    path.parent.mkdir()
    path.write_text("1 Q0 vieta 1 0.9 tag\n1 Q0 fermat 2 0.8\n")
    with pytest.raises(SystemExit, match=r"tiny_math\.run:2: expected 6 columns"):
        main(base)
    path.write_text("1 Q0 vieta 1 high tag\n")
    with pytest.raises(SystemExit, match=r"tiny_math\.run:1: rank must be an integer and score a number"):
        main(base)
    path.write_text("1 Q0 vieta 1 0.9 tag\n1 Q0 vieta 2 0.8 tag\n")
    with pytest.raises(SystemExit, match=r"tiny_math\.run:2: document 'vieta' is listed twice"):
        main(base)
    path.write_text("other-task-query Q0 vieta 1 0.9 tag\n")
    with pytest.raises(SystemExit, match="query ids that task 'tiny_math' lacks"):
        main(base)


def test_run_file_round_trip_keeps_scores_exactly(tmp_path):
    run = {"q1": {"a": 0.1 + 0.2, "b": 1 / 3, "c": 1 / 3}, "q2": {"d": -2.5e-8}}
    assert write_run(tmp_path / "x.run", run, run_tag("/models/My Model", "direct")) == 4
    loaded, tag = read_run(tmp_path / "x.run")
    assert loaded == run and tag == "My_Model.direct"
    assert (tmp_path / "x.run").read_text().splitlines()[:3] == [  # best first, ties in id order
        f"q1 Q0 b 1 {1 / 3!r} My_Model.direct",
        f"q1 Q0 c 2 {1 / 3!r} My_Model.direct",
        f"q1 Q0 a 3 {0.1 + 0.2!r} My_Model.direct",
    ]
    with pytest.raises(ValueError, match="one word"):
        write_run(tmp_path / "y.run", run, "two words")


def test_k_values_keys_and_the_default_metrics_unchanged(tmp_path):
    task = load_folder_task(_write_task(tmp_path, "tiny_math", TINY_EXAMPLES, TINY_DOCS), "tiny_math")
    plain = evaluate_bm25(task)
    extended = evaluate_bm25(task, k_values=[1, 5, 10])
    assert list(plain.metrics) == ["ndcg@10", "recall@10", "recall@100"]
    assert list(extended.metrics) == metric_names([1, 5, 10]) == [
        "ndcg@10", "recall@10", "recall@100", "ndcg@1", "ndcg@5", "recall@1", "recall@5",
        "map@1", "map@5", "map@10", "mrr@1", "mrr@5", "mrr@10", "map", "mrr",
    ]  # fmt: skip
    assert all(extended.metrics[name] == value for name, value in plain.metrics.items())
    assert parse_k_values("10, 1,10") == [1, 10]
    with pytest.raises(ValueError, match="positive integers"):
        parse_k_values("1,0")


def test_mrr_at_k_ranks_ties_as_trec_eval():
    """trec_eval ranks ties by document id descending: d (0.9), then c, b, a (0.5 each); c is the first relevant."""
    qrels = {"q": {"a": 1, "c": 1}}
    run = {"q": {"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.9}}
    mean, _ = evaluate_run(run, qrels, k_values=[1, 2, 3])
    assert (mean["mrr@1"], mean["mrr@2"], mean["mrr@3"], mean["mrr"]) == (0.0, 0.5, 0.5, 0.5)
    assert mean["recall@2"] == 0.5 and mean["map@1"] == 0.0  # pytrec_eval agrees: c at rank 2
    mean, _ = evaluate_run(run, qrels, {"q": ["c"]}, k_values=[2])  # c excluded: a is first relevant, at rank 4 -> 3
    assert mean["mrr@2"] == 0.0 and mean["mrr"] == pytest.approx(1 / 3)
