"""Scoring for the robustness study, through the same paths as ``reasonembed-rag bright``: the perturbed variants
(nDCG@10 per family and seed, and the drop against the clean queries), and corpus poisoning (passages injected into
a scratch copy of the collection, BM25: into a copy of the corpus; ASR@k and the nDCG@10 change)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..evaluation.data import RetrievalTask
from ..evaluation.runner import collection_name, evaluate_task
from ..retrieval import BM25
from .poison import (
    INJECTED_PREFIX,
    HotFlip,
    PoisonedCopy,
    assign_targets,
    attack_success_rate,
    injected_id,
    query_copy_passages,
)
from .settings import RobustnessSettings
from .variants import QueryVariants

QUERIES_PER_CALL = 2048
"""Variants scored per evaluation call (bounds the score matrix of exact search on large corpora)."""
TARGETS = (
    "N >= Q: passage j targets query j mod Q (round-robin); N < Q: the queries are split into N clusters by "
    "seeded spherical k-means over TF-IDF vectors of their text and each passage targets one cluster. Targets are "
    "the evaluated queries themselves (white-box worst case)."
)
NO_GRADIENT = "BM25 has no gradient to follow; HotFlip needs a dense model."


class QueryCache:
    """An encoder that remembers query vectors: the poisoned runs search the clean queries again, and embedding them
    once is enough. Everything else is the wrapped encoder's."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self._vectors: dict[tuple[str | None, str | None, bool, str], np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def encode_queries(
        self,
        texts: Sequence[str],
        *,
        task: str | None = None,
        instruction: str | None = None,
        long: bool = False,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        keys = [(task, instruction, long, text) for text in texts]
        missing = [key[3] for key in dict.fromkeys(keys) if key not in self._vectors]
        if missing:
            vectors = self._encoder.encode_queries(
                missing, task=task, instruction=instruction, long=long, show_progress=show_progress
            )
            self._vectors.update(((task, instruction, long, t), v) for t, v in zip(missing, vectors, strict=True))
        if not keys:
            return np.zeros((0, self._encoder.dimension), dtype=np.float32)
        return np.stack([self._vectors[key] for key in keys])


def score_variants(
    variants: QueryVariants, model: Any, *, via: str, chroma: Any, show_progress: bool | None
) -> dict[str, float]:
    """nDCG@10 of every variant query."""
    scores: dict[str, float] = {}
    task = variants.task
    for start in range(0, len(variants.queries), QUERIES_PER_CALL):
        part = RetrievalTask(
            task.name, variants.queries[start : start + QUERIES_PER_CALL], task.documents, task.instruction
        )
        result = evaluate_task(part, model, via=via, chroma=chroma, show_progress=show_progress)
        scores.update({qid: values["ndcg@10"] for qid, values in result.per_query.items()})
    return scores


def perturbation_report(variants: QueryVariants, scores: dict[str, float], settings: RobustnessSettings) -> dict:
    """Clean nDCG@10 and, per family, the mean, spread and drop over seeds and the share of words changed."""
    by_group: dict[tuple[str, int | None], list[float]] = {}
    for qid, label in variants.labels.items():
        by_group.setdefault(label, []).append(scores[qid])
    clean = statistics.fmean(by_group[("clean", None)]) if by_group.get(("clean", None)) else 0.0
    report: dict[str, Any] = {}
    for family in settings.families:
        if family in variants.notes:
            report[family] = {"skipped": variants.notes[family]}
            continue
        per_seed = [statistics.fmean(by_group[(family, s)]) for s in range(settings.seeds)]
        mean = statistics.fmean(per_seed)
        fractions = [f for s in range(settings.seeds) for f in variants.changed[(family, s)]]
        report[family] = {
            "ndcg@10_mean": mean,
            "ndcg@10_std": statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0,
            "ndcg@10_per_seed": per_seed,
            "drop_pct": drop_pct(clean, mean),
            "words_changed": statistics.fmean(fractions) if fractions else 0.0,
        }
    return {"clean_ndcg@10": clean, "families": report}


def drop_pct(clean: float, perturbed: float) -> float | None:
    """The % of the clean nDCG@10 lost (None when the clean score is 0)."""
    return 100.0 * (clean - perturbed) / clean if clean > 0 else None


def poisoning_report(
    task: RetrievalTask,
    model: Any,
    clean_ndcg: float,
    settings: RobustnessSettings,
    *,
    via: str,
    chroma: Any,
    show_progress: bool | None,
) -> dict[str, Any]:
    """Per attack and size: ASR@k, poisoned nDCG@10 and its change (see the module docstring)."""
    if not settings.attacks or not settings.poison_sizes:
        return {}
    clashing = next((doc for doc in task.documents if doc.startswith(INJECTED_PREFIX)), None)
    if clashing is not None:
        raise ValueError(
            f"Task {task.name}: corpus id {clashing!r} starts with {INJECTED_PREFIX!r}, reserved for "
            "injected passages; rename it."
        )
    texts = [q.text for q in task.queries]
    excluded = {q.id: q.excluded_ids for q in task.queries}
    report: dict[str, Any] = {attack: {} for attack in settings.attacks}
    copy = None
    attacker: HotFlip | None = None
    if not isinstance(model, BM25):  # BM25 is poisoned through the task's corpus copy instead
        from ..store import ChromaStore

        clean_store = ChromaStore(collection_name(task, model), model, chroma=chroma, instruction=task.instruction)
        copy = PoisonedCopy(clean_store, instruction=task.instruction)
    try:
        for size in settings.poison_sizes:
            groups = assign_targets(texts, size, seed=0)
            copies = query_copy_passages(texts, groups, max_words=settings.max_words)
            for attack in settings.attacks:
                started = time.perf_counter()
                if attack == "hotflip" and isinstance(model, BM25):
                    report[attack][str(size)] = {"skipped": NO_GRADIENT}
                    continue
                extra: dict[str, Any] = {}
                passages = copies
                if attack == "hotflip":
                    attacker = attacker or HotFlip(model, settings.hotflip, seed=0)
                    starts = copies if settings.hotflip.start == "query_copy" else [""] * len(copies)
                    passages, extra = _hotflip(attacker, task, texts, groups, starts, show_progress)
                ids = [injected_id(attack, size, j) for j in range(len(passages))]
                injected = dict(zip(ids, passages, strict=True))
                poisoned = RetrievalTask(task.name, task.queries, {**task.documents, **injected}, task.instruction)
                if copy is not None:
                    copy.inject(injected)
                try:
                    result = evaluate_task(
                        poisoned,
                        model,
                        via=via,
                        chroma=chroma,
                        show_progress=show_progress,
                        collection=copy.name if copy is not None else None,
                    )
                finally:
                    if copy is not None:
                        copy.remove(ids)
                ndcg = result.metrics["ndcg@10"]
                report[attack][str(size)] = {
                    **attack_success_rate(result.run, set(ids), excluded=excluded),
                    "ndcg@10": ndcg,
                    "ndcg@10_change": ndcg - clean_ndcg,
                    "passages": len(passages),
                    **extra,
                    "seconds": round(time.perf_counter() - started, 2),
                }
    finally:
        if copy is not None:
            copy.close()
    return report


def _hotflip(
    attacker: HotFlip,
    task: RetrievalTask,
    texts: Sequence[str],
    groups: Sequence[Sequence[int]],
    starts: Sequence[str],
    show_progress: bool | None,
) -> tuple[list[str], dict[str, Any]]:
    from tqdm.auto import tqdm

    results = [
        attacker.attack(start, [texts[i] for i in group], instruction=task.instruction)
        for start, group in tqdm(
            list(zip(starts, groups, strict=True)), desc=f"{task.name}: HotFlip", disable=not show_progress
        )
    ]
    return [r.text for r in results], {
        "similarity_before": statistics.fmean(r.similarity_before for r in results),
        "similarity_after": statistics.fmean(r.similarity_after for r in results),
        "flips": sum(r.flips for r in results),
    }
