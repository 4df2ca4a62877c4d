"""The perturbed queries of a task: its clean queries and every (family, seed) variant of them, made once and
shared by every model (see :mod:`.perturb` and :mod:`.paraphrase`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..evaluation.data import Query, RetrievalTask
from .paraphrase import paraphrase_queries, paraphrase_unavailable
from .perturb import Perturbed, Perturber
from .settings import RobustnessSettings


@dataclass
class QueryVariants:
    """A task's clean queries and their perturbed variants, scored together.

    Attributes:
        queries: Every variant as a query with a fresh id (``v0``, ``v1``, ...), gold and excluded ids kept.
        labels: Variant id -> ``(family, seed)``; the clean queries are ``("clean", None)``.
        changed: ``(family, seed)`` -> each query's share of words changed.
        notes: Families skipped, and why.
        llm_counts: Paraphrase request counts.
    """

    task: RetrievalTask
    queries: list[Query]
    labels: dict[str, tuple[str, int | None]]
    changed: dict[tuple[str, int], list[float]]
    notes: dict[str, str]
    llm_counts: dict[str, int]


def sample_queries(task: RetrievalTask, max_queries: int | None) -> RetrievalTask:
    """The task with a seeded sample of at most ``max_queries`` of its queries (None: all)."""
    if max_queries is None or len(task.queries) <= max_queries:
        return task
    chosen = set(random.Random(f"sample\x1f{task.name}").sample(range(len(task.queries)), max_queries))
    queries = [q for i, q in enumerate(task.queries) if i in chosen]
    return RetrievalTask(task.name, queries, task.documents, task.instruction)


def _variant(query: Query, text: str, number: int) -> Query:
    return Query(f"v{number}", text, query.gold_ids, query.excluded_ids)


def build_variants(
    task: RetrievalTask, settings: RobustnessSettings, *, llm: Any = None, show_progress: bool | None = None
) -> QueryVariants:
    """The clean queries and every (family, seed) variant of them, with the share of words each changed."""
    from tqdm.auto import tqdm

    queries = [_variant(q, q.text, i) for i, q in enumerate(task.queries)]
    labels: dict[str, tuple[str, int | None]] = {q.id: ("clean", None) for q in queries}
    changed: dict[tuple[str, int], list[float]] = {}
    notes: dict[str, str] = {}
    llm_counts: dict[str, int] = {}
    perturber = Perturber(settings.rate)
    texts = [q.text for q in task.queries]
    jobs = [(f, s) for f in settings.families for s in range(settings.seeds)]
    for family, seed in tqdm(jobs, desc=f"{task.name}: perturbing", disable=not show_progress):
        if family == "paraphrase":
            why = paraphrase_unavailable(llm)
            if why:
                notes[family] = why
                continue
            perturbed, counts = paraphrase_queries(
                texts, llm, rate=settings.rate, seed=seed, show_progress=show_progress
            )
            for name, value in counts.items():
                llm_counts[name] = llm_counts.get(name, 0) + value
        else:
            perturbed = perturber.perturb_many(texts, family, seed=seed)
        _add(queries, labels, changed, task.queries, perturbed, family, seed)
    return QueryVariants(task, queries, labels, changed, notes, llm_counts)


def _add(
    queries: list[Query],
    labels: dict[str, tuple[str, int | None]],
    changed: dict[tuple[str, int], list[float]],
    originals: Sequence[Query],
    perturbed: Sequence[Perturbed],
    family: str,
    seed: int,
) -> None:
    for query, result in zip(originals, perturbed, strict=True):
        variant = _variant(query, result.text, len(queries))
        queries.append(variant)
        labels[variant.id] = (family, seed)
    changed[(family, seed)] = [p.changed_fraction for p in perturbed]
