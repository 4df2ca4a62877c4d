"""Run the robustness study for one or more models on BRIGHT-style tasks, through the same paths as ``bright``.

For each task, the clean queries and every perturbed variant (family x seed) are scored together in one evaluation
call per model (query ids are renamed, gold and excluded ids kept), exactly as ``reasonembed-rag bright`` scores:
excluded ids dropped, top 1000, pytrec_eval nDCG@10. Perturbations are made once per task and shared by all models,
so every model sees the same perturbed and paraphrased queries. Then, per attack and number of passages, the
passages are injected into a scratch copy of the collection (BM25: into a copy of the corpus) and the clean queries
are scored again: ASR@k and the nDCG@10 change against the clean run of the same path.

:func:`run_robustness` returns the JSON payload; :func:`markdown_section` and :func:`plot` render it.
"""

from __future__ import annotations

import platform
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.data import Query, RetrievalTask
from ..evaluation.runner import VIAS, collection_name, evaluate_task
from ..retrieval import BM25, load_retriever
from .paraphrase import paraphrase_queries, paraphrase_unavailable
from .perturb import DEFAULT_RATE, FAMILIES, Perturbed, Perturber, check_families, check_rate
from .poison import (
    ASR_CUTOFFS,
    ATTACKS,
    DEFAULT_SIZES,
    INJECTED_PREFIX,
    HotFlip,
    HotFlipSettings,
    PoisonedCopy,
    assign_targets,
    attack_success_rate,
    check_attacks,
    check_sizes,
    injected_id,
    query_copy_passages,
)

DEFAULT_SEEDS = 5
QUERIES_PER_CALL = 2048
"""Variants scored per evaluation call (bounds the score matrix of exact search on large corpora)."""
TARGETS = (
    "N >= Q: passage j targets query j mod Q (round-robin); N < Q: the queries are split into N clusters by "
    "seeded spherical k-means over TF-IDF vectors of their text and each passage targets one cluster. Targets are "
    "the evaluated queries themselves (white-box worst case)."
)
NO_GRADIENT = "BM25 has no gradient to follow; HotFlip needs a dense model."
QUICK: dict[str, Any] = {
    "seeds": 2,
    "max_queries": 60,
    "poison_sizes": (10,),
    "hotflip": HotFlipSettings(steps=5, candidates=8, tokens=32),
}
"""A bounded budget for the demo: 2 seeds, 60 queries per task, N = 10 passages, 5 HotFlip steps per passage."""


@dataclass
class RobustnessSettings:
    """What to run; validated on creation (bad values raise ValueError naming the value and the fix)."""

    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    rate: float = DEFAULT_RATE
    seeds: int = DEFAULT_SEEDS
    poison_sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SIZES))
    attacks: list[str] = field(default_factory=lambda: list(ATTACKS))
    hotflip: HotFlipSettings = field(default_factory=HotFlipSettings)
    max_words: int = 200
    """Word budget of a query-copy passage."""
    max_queries: int | None = None
    """Evaluate a seeded sample of at most this many queries per task (None: all)."""

    def __post_init__(self) -> None:
        self.families = check_families(self.families)
        self.rate = check_rate(self.rate)
        self.attacks = check_attacks(self.attacks)
        self.poison_sizes = check_sizes(self.poison_sizes) if self.poison_sizes else []
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be a positive integer (the number of seeds, e.g. 5), got {self.seeds!r}.")
        if self.max_queries is not None and self.max_queries < 1:
            raise ValueError(f"max_queries must be a positive integer or None, got {self.max_queries!r}.")
        if self.max_words < 1:
            raise ValueError(f"max_words must be a positive integer, got {self.max_words!r}.")


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


# ----------------------------------------------------------------------------------------------- variants


def _sample(task: RetrievalTask, max_queries: int | None) -> RetrievalTask:
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


# ----------------------------------------------------------------------------------------------- evaluation


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


def _score_variants(
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


def _perturbation_report(variants: QueryVariants, scores: dict[str, float], settings: RobustnessSettings) -> dict:
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
            "drop_pct": _drop(clean, mean),
            "words_changed": statistics.fmean(fractions) if fractions else 0.0,
        }
    return {"clean_ndcg@10": clean, "families": report}


def _drop(clean: float, perturbed: float) -> float | None:
    return 100.0 * (clean - perturbed) / clean if clean > 0 else None


def _poisoning_report(
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


# ----------------------------------------------------------------------------------------------- entry point


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
    sampled = [_sample(task, settings.max_queries) for task in tasks]
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
        scores = _score_variants(v, searcher, via=path, chroma=chroma, show_progress=show_progress)
        perturbation = _perturbation_report(v, scores, settings)
        perturbation_seconds = time.perf_counter() - task_started
        poisoning = _poisoning_report(
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
        families[family] = {"ndcg@10_mean": mean, "drop_pct": _drop(clean, mean)}
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


# ----------------------------------------------------------------------------------------------- rendering


def _cell(entry: dict[str, Any]) -> str:
    if "skipped" in entry:
        return "skipped"
    drop = entry.get("drop_pct")
    std = entry.get("ndcg@10_std")
    spread = f" ± {100 * std:.1f}" if std is not None else ""
    return f"{100 * entry['ndcg@10_mean']:.1f}{spread} ({'' if drop is None else f'{-drop:+.0f}%'})"


def markdown_section(payload: dict[str, Any], *, heading: str = "##", plot_path: str | None = None) -> str:
    """A Markdown section (tables and notes) for a :func:`run_robustness` payload."""
    settings = payload["settings"]
    families = settings["families"]
    lines = [
        f"{heading} Robustness: query perturbations and corpus poisoning",
        "",
        f"Word-change rate {settings['rate']}, seeds {settings['seeds']}, path `{settings['via']}`; tasks: "
        + ", ".join(f"{n} ({t['queries']} queries, {t['documents']} documents)" for n, t in payload["tasks"].items())
        + ". nDCG@10 x100 scored like BRIGHT; cells are mean ± std over seeds (change vs clean).",
        "",
        "| model | task | clean | " + " | ".join(families) + " |",
        "|---|---|---:|" + "---:|" * len(families),
    ]
    for name, model in payload["models"].items():
        for task, entry in model["tasks"].items():
            cells = [_cell(entry["perturbation"][f]) for f in families]
            lines.append(f"| {name} | {task} | {100 * entry['clean']['ndcg@10']:.1f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Corpus poisoning: ASR@k = % of queries with an injected passage in the top k; "
        f"HotFlip budget per passage: {settings['hotflip']['steps']} steps x {settings['hotflip']['candidates']} "
        f"candidates, {settings['hotflip']['tokens']} tokens, starting from "
        f"{'the query-copy passage' if settings['hotflip']['start'] == 'query_copy' else 'random tokens'}.",
        "",
        "| model | task | attack | N | " + " | ".join(f"ASR@{k}" for k in ASR_CUTOFFS) + " | nDCG@10 | change | s |",
        "|---|---|---|---:|" + "---:|" * (len(ASR_CUTOFFS) + 3),
    ]
    for name, model in payload["models"].items():
        for task, entry in model["tasks"].items():
            for attack, sizes in entry["poisoning"].items():
                for size, row in sizes.items():
                    if "skipped" in row:
                        lines.append(f"| {name} | {task} | {attack} | {size} | skipped: {row['skipped']} |")
                        continue
                    asr = " | ".join(f"{100 * row[f'asr@{k}']:.0f}" for k in ASR_CUTOFFS)
                    lines.append(
                        f"| {name} | {task} | {attack} | {size} | {asr} | {100 * row['ndcg@10']:.1f} | "
                        f"{100 * row['ndcg@10_change']:+.1f} | {row['seconds']:.0f} |"
                    )
    lines += [
        "",
        f"- Synonyms: {payload['synonym_source'] or 'not run'}.",
        f"- Paraphrase: {payload['paraphrase']['status'].rstrip('.')}.",
        f"- Poisoning targets: {payload['poisoning_targets']}",
        "- Time per model: "
        + ", ".join(f"{n} {m['seconds']} s" for n, m in payload["models"].items())
        + f" ({payload['machine']}); total {payload['seconds']} s.",
    ]
    if payload["skipped_models"]:
        lines += [f"- Not run: `{alias}`: {why}" for alias, why in payload["skipped_models"].items()]
    if plot_path:
        lines += ["", f"![robustness]({plot_path})"]
    return "\n".join(lines) + "\n"


def plot(payload: dict[str, Any], path: str | Path) -> Path:
    """Two panels: % nDCG@10 drop per family, and ASR@10 per attack and N, one bar per model (task means)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(payload["models"])
    means = {name: payload["models"][name]["mean"] for name in models}
    families = [
        f for f in payload["settings"]["families"] if any(f in m.get("perturbation", {}) for m in means.values())
    ]
    configs = sorted(
        {(a, s) for m in means.values() for a, sizes in m.get("poisoning", {}).items() for s in sizes},
        key=lambda c: (c[0], int(c[1])),
    )
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.8 / max(1, len(models))
    for panel, (ax, groups, value, label) in enumerate(
        (
            (axes[0], families, lambda m, g: m["perturbation"].get(g, {}).get("drop_pct"), "nDCG@10 drop (%)"),
            (axes[1], configs, lambda m, g: m["poisoning"].get(g[0], {}).get(g[1], {}).get("asr@10"), "ASR@10"),
        )
    ):
        for i, name in enumerate(models):
            heights = [value(means[name], g) for g in groups]
            heights = [np.nan if h is None else (h if panel == 0 else 100 * h) for h in heights]
            ax.bar(np.arange(len(groups)) + i * width, heights, width, label=name)
        ticks = groups if panel == 0 else [f"{a}\nN={s}" for a, s in groups]
        ax.set_xticks(np.arange(len(groups)) + width * (len(models) - 1) / 2, ticks, fontsize=8)
        ax.set_ylabel(label + (" (%)" if panel == 1 else ""))
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0].set_title("Query perturbations (higher = less robust)")
    axes[1].set_title("Corpus poisoning (higher = less robust)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target
