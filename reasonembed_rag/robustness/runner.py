"""Run the robustness study for one or more models on BRIGHT-style tasks, through the same paths as ``bright``.

For each task, the clean queries and every perturbed variant (family x seed) are scored together in one evaluation
call per model (query ids are renamed, gold and excluded ids kept), exactly as ``reasonembed-rag bright`` scores:
excluded ids dropped, top 1000, pytrec_eval nDCG@10. Perturbations are made once per task and shared by all models,
so every model sees the same perturbed and paraphrased queries. Then, per attack and number of passages, the
passages are injected into a scratch copy of the collection (BM25: into a copy of the corpus) and the clean queries
are scored again: ASR@k and the nDCG@10 change against the clean run of the same path.

:func:`run_robustness` returns the JSON payload; :mod:`.report` renders it. The queries come from :mod:`.variants`,
the scores from :mod:`.evaluation`.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..evaluation.data import RetrievalTask
from ..evaluation.runner import VIAS
from ..retrieval import BM25, load_retriever
from .evaluation import TARGETS, QueryCache, drop_pct, perturbation_report, poisoning_report, score_variants
from .paraphrase import paraphrase_unavailable
from .perturb import DEFAULT_RATE, FAMILIES
from .poison import (
    ASR_CUTOFFS,
    ATTACKS,
    DEFAULT_SIZES,
    HotFlipSettings,
)
from .settings import DEFAULT_SEEDS, RobustnessSettings
from .variants import QueryVariants, build_variants, sample_queries


def run_robustness(
    tasks: Sequence[RetrievalTask],
    models: Sequence[Any] | str | Any,
    *,
    via: str = "direct",
    chroma: Any = None,
    families: Sequence[str] = FAMILIES,
    rate: float = DEFAULT_RATE,
    seeds: int = DEFAULT_SEEDS,
    poison_sizes: Sequence[int] = DEFAULT_SIZES,
    attacks: Sequence[str] = ATTACKS,
    hotflip: HotFlipSettings | None = None,
    max_queries: int | None = None,
    max_words: int = 200,
    llm: Any = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Measure query-perturbation robustness and corpus-poisoning resistance; return the JSON payload.

    Args:
        tasks: Loaded tasks (e.g. :func:`reasonembed_rag.evaluation.tasks.load_tasks`).
        models: ``"bm25"``, registry aliases / folders / Hub ids, loaded encoders or
            :class:`~reasonembed_rag.retrieval.BM25` (one or a list). An alias that cannot be loaded is reported under
            ``skipped_models``.
        via: ``direct``, ``llamaindex`` or ``langchain`` (BM25 always runs directly).
        chroma: Chroma folder, URL or client holding the clean collections (default: the user data folder).
        families: Perturbation families (:data:`.perturb.FAMILIES`); ``paraphrase`` is skipped with a note when
            ``llm`` is None.
        rate: Share of words each perturbation changes, in [0, 1].
        seeds: Number of seeds (0 .. seeds-1); each family's mean and std are over seeds.
        poison_sizes: Numbers of injected passages (each run separately against the clean corpus).
        attacks: ``query_copy`` and/or ``hotflip``.
        hotflip: HotFlip budget (default :class:`.poison.HotFlipSettings`).
        max_queries: Evaluate a seeded sample of at most this many queries per task.
        max_words: Word budget of a query-copy passage.
        llm: A :class:`reasonembed_rag.llm.LLMConfig` for paraphrases (from :func:`reasonembed_rag.llm.choose_llm`),
            or None.
        show_progress: Progress bars (None: when writing to a terminal).

    Example:
        >>> payload = run_robustness(tasks, ["bm25", "minilm-l6"], **QUICK)  # doctest: +SKIP
        >>> print(markdown_section(payload))  # doctest: +SKIP
    """
    if via not in VIAS:
        raise ValueError(f"Unknown via {via!r}. Accepted values: {', '.join(VIAS)}.")
    settings = RobustnessSettings(
        list(families),
        rate,
        seeds,
        list(poison_sizes),
        list(attacks),
        hotflip or HotFlipSettings(),
        max_words,
        max_queries,
    )
    started = time.perf_counter()
    sampled = [sample_queries(task, settings.max_queries) for task in tasks]
    variants = [build_variants(task, settings, llm=llm, show_progress=show_progress) for task in sampled]
    model_list = [models] if isinstance(models, str) or not isinstance(models, Sequence) else list(models)
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for requested in model_list:
        from ..models import ModelNotAvailableError

        try:
            model = load_retriever(requested)
        except ModelNotAvailableError as error:
            skipped[str(requested)] = str(error)
            continue
        results[model.name] = _model_report(model, model.name, variants, settings, via, chroma, show_progress)
    return {
        "settings": {**asdict(settings), "seeds": list(range(settings.seeds)), "via": via},
        "synonym_source": _synonym_source(settings),
        "paraphrase": _paraphrase_summary(llm, variants),
        "poisoning_targets": TARGETS,
        "tasks": {v.task.name: {"queries": len(v.task.queries), "documents": len(v.task.documents)} for v in variants},
        "models": results,
        "skipped_models": skipped,
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "seconds": round(time.perf_counter() - started, 1),
    }


def _model_report(
    model: Any,
    name: str,
    variants: Sequence[QueryVariants],
    settings: RobustnessSettings,
    via: str,
    chroma: Any,
    show_progress: bool | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    path = "direct" if isinstance(model, BM25) else via
    tasks: dict[str, Any] = {}
    for v in variants:
        task_started = time.perf_counter()
        searcher = model if isinstance(model, BM25) else QueryCache(model)  # one cache per task
        scores = score_variants(v, searcher, via=path, chroma=chroma, show_progress=show_progress)
        perturbation = perturbation_report(v, scores, settings)
        perturbation_seconds = time.perf_counter() - task_started
        poisoning = poisoning_report(
            v.task,
            searcher,
            perturbation["clean_ndcg@10"],
            settings,
            via=path,
            chroma=chroma,
            show_progress=show_progress,
        )
        tasks[v.task.name] = {
            "queries": len(v.task.queries),
            "clean": {"ndcg@10": perturbation["clean_ndcg@10"]},
            "perturbation": perturbation["families"],
            "poisoning": poisoning,
            "seconds": {
                "perturbation": round(perturbation_seconds, 2),
                "total": round(time.perf_counter() - task_started, 2),
            },
        }
    return {
        "model": name,
        "via": path,
        "tasks": tasks,
        "mean": _mean(tasks),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _mean(tasks: dict[str, Any]) -> dict[str, Any]:
    """Macro average over tasks of clean nDCG@10, each family's mean nDCG@10 (and the drop), and each ASR."""
    entries = list(tasks.values())
    if not entries:
        return {}
    clean = statistics.fmean(e["clean"]["ndcg@10"] for e in entries)
    families = {}
    for family, first in entries[0]["perturbation"].items():
        if "skipped" in first:
            continue
        mean = statistics.fmean(e["perturbation"][family]["ndcg@10_mean"] for e in entries)
        families[family] = {"ndcg@10_mean": mean, "drop_pct": drop_pct(clean, mean)}
    poisoning: dict[str, Any] = {}
    for attack, sizes in entries[0]["poisoning"].items():
        for size, first in sizes.items():
            if "skipped" in first:
                continue
            keys = [f"asr@{k}" for k in ASR_CUTOFFS] + ["ndcg@10", "ndcg@10_change"]
            poisoning.setdefault(attack, {})[size] = {
                key: statistics.fmean(e["poisoning"][attack][size][key] for e in entries) for key in keys
            }
    return {"clean_ndcg@10": clean, "perturbation": families, "poisoning": poisoning}


def _synonym_source(settings: RobustnessSettings) -> str | None:
    if "synonym" not in settings.families:
        return None
    from .wordnet import SOURCE

    return SOURCE


def _paraphrase_summary(llm: Any, variants: Sequence[QueryVariants]) -> dict[str, Any]:
    why = paraphrase_unavailable(llm)
    if why:
        return {"status": why}
    counts: dict[str, int] = {}
    for v in variants:
        for key, value in v.llm_counts.items():
            counts[key] = counts.get(key, 0) + value
    return {
        "status": "ran",
        "base_url": llm.base_url,
        "model": llm.model,
        "temperature": llm.temperature,
        "top_p": llm.top_p,
        **counts,
    }
