"""Rerank a scored task's run and score it again (``reasonembed-rag bright --rerank``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from ..rerank import Reranker, rerank_run
from .data import RetrievalTask
from .metrics import KEEP_TOP, evaluate_run
from .runner import TaskResult


def rerank_result(
    task: RetrievalTask,
    result: TaskResult,
    reranker: Reranker,
    *,
    top_k: int = 100,
    keep: int = KEEP_TOP,
    show_progress: bool | None = None,
    k_values: Sequence[int] = (),
) -> TaskResult:
    """``result`` with its run reranked (:func:`~reasonembed_rag.rerank.rerank_run`) and its metrics recomputed.

    The returned result's ``seconds`` include the reranking time; ``result`` itself is left as it was (the first
    stage, for the before/after comparison). ``k_values`` adds metrics at those cutoffs, as the first stage had.
    """
    started = time.perf_counter()
    excluded = {q.id: q.excluded_ids for q in task.queries}
    run = rerank_run(
        result.run,
        {q.id: q.text for q in task.queries},
        task.documents,
        reranker,
        top_k,
        excluded=excluded,
        show_progress=show_progress,
    )
    mean, per_query = evaluate_run(run, task.qrels, excluded, keep=keep, k_values=k_values)
    return dataclasses.replace(
        result,
        metrics=mean,
        per_query=per_query,
        run=run,
        seconds=result.seconds + time.perf_counter() - started,
    )


def rerank_summary(
    before: TaskResult, after: TaskResult, reranker: Reranker, top_k: int, cost: dict[str, int] | None = None
) -> dict[str, Any]:
    """What the results JSON says about reranking one task: the reranker, depth, first-stage metrics, the seconds
    it added and (for an LLM) this task's requests and tokens."""
    return {
        "reranker": reranker.name,
        "top_k": top_k,
        "first_stage": before.metrics,
        "seconds": round(after.seconds - before.seconds, 3),
        **({"cost": cost} if cost is not None else {}),
    }
