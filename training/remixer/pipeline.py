"""ReMixer (docs/method.md, section 3): runs the stages over each task, resumable and safe against bad LLM replies.

For each task, seeds are processed in chunks; within a chunk every stage (one module each, :mod:`.stages`) runs over
all its items:

0. domain cleaning (optional): the LLM answers Yes/No whether the seed belongs to the task's domain;
1. conditioned query generation: one query per seed (or ``queries_per_seed``) at a sampled target length and
   difficulty; replies that are empty, echo the prompt, point at their source or copy it are rejected; queries are
   unique by content hash (seeds are already unique by theirs);
2. candidate mining: BM25 or an encoder ranks the corpus, the SOURCE DOCUMENT is dropped, the top ``keep`` stay;
3. relevance annotation, pointwise 1-5 in ``<score>`` tags (or from the score token's logits, in-process);
4. labels: score >= 3 positive, 1-2 hard negative, unparseable skipped; queries with no positive or no negative
   are dropped; the survivors get a reasoning query (the query expanded with the LLM's reasoning about the knowledge
   it needs, or the seed's human reasoning when it has some) and become training rows
   ``{prompt, query, reasoning_query, pos, neg}``.

With the round-trip consistency filter (``round_trip_k``, :mod:`.stages.roundtrip`), an independent retriever must
rank the query's seed (or target) in its top K after stage 2, only those queries are annotated, the annotator must
agree on that document after stage 3, and stage 4 labels the kept queries with it as the positive.

Files under ``OUTPUT``::

    train/<task>.jsonl             the training rows (one task per file, what ``reasonembed-train train`` reads)
    work/<task>/seeds.jsonl        the seeds used            work/<task>/candidates.jsonl   stage 2
    work/<task>/clean.jsonl        stage 0                   work/<task>/annotations.jsonl  stage 3
    work/<task>/queries.jsonl      stage 1                   work/<task>/reasoning.jsonl    reasoning queries
    work/<task>/labels.jsonl       stage 4 (dropped queries; kept ones are the training rows)
    work/<task>/round_trip.jsonl   the round-trip filter's verdict per query (with ranks and scores)
    summary.json                   counts per stage and task, token usage, speed

Every file is append-only and keyed by a content hash (:mod:`training.remixer.records`): a killed run resumes where
it stopped, with no duplicate and no lost row. A malformed reply is recorded with its reason and counted; a request
that fails for good is counted and left unrecorded, so the next run retries it. A finished item is never redone: to
relabel with another threshold or calibration, delete ``train/<task>.jsonl`` and ``work/<task>/labels.jsonl`` (the
annotations are kept and reused).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from reasonembed_rag.llm import ChatModel

from .annotator import LogitAnnotator
from .prompts import PromptBook
from .seeds import TaskSource
from .settings import SynthesisSettings
from .stages.annotate import annotate_candidates
from .stages.clean import clean_seeds
from .stages.context import LLMRequests, RunState, StageBars, SynthesisAborted, TaskContext, TaskFiles
from .stages.generate import generate_queries
from .stages.label import label_queries
from .stages.mine import mine_candidates
from .stages.roundtrip import VERDICTS, check_agreement, check_retrieval, target_pairs

__all__ = ["ReMixer", "SynthesisAborted", "SynthesisSettings"]

logger = logging.getLogger(__name__)


class ReMixer:
    """Runs ReMixer over task sources with one LLM (and optionally an in-process logit annotator).

    Example:
        >>> sources = load_sources("offline", max_seeds=4)                          # doctest: +SKIP
        >>> remixer = ReMixer(SynthesisSettings(output="out"), llm=client, concurrency=2)  # doctest: +SKIP
        >>> remixer.run(sources)["totals"]["labels"]["rows"]                        # doctest: +SKIP
        3
    """

    def __init__(
        self,
        settings: SynthesisSettings,
        *,
        llm: ChatModel,
        concurrency: int = 1,
        prompts: PromptBook | None = None,
        annotator: LogitAnnotator | None = None,
        encoder: Any = None,
        run_info: dict[str, Any] | None = None,
    ) -> None:
        """Set up a run.

        Args:
            settings: Stage settings and the output folder.
            llm: The chat model for generation, cleaning, reasoning and (without ``annotator``) annotation.
            concurrency: Requests in flight at once.
            prompts: Prompt data (default: the packaged ``prompts.json``).
            annotator: Score stage 3 from logits in-process instead of asking ``llm``.
            encoder: An already loaded encoder to mine with (instead of loading ``settings.miner``).
            run_info: Extra facts recorded in ``summary.json`` (endpoint, model, sampling).
        """
        self.settings = settings
        self.llm = llm
        self.concurrency = concurrency
        self.prompts = prompts or PromptBook()
        self.annotator = annotator
        self.run_info = dict(run_info or {})
        requests = LLMRequests(
            llm, concurrency=concurrency, max_consecutive_failures=settings.max_consecutive_failures
        )
        self._run = RunState(settings, requests, annotator=annotator, encoder=encoder)

    def run(self, sources: Sequence[TaskSource]) -> dict[str, Any]:
        """Synthesise every task, write ``summary.json`` and return the summary."""
        started = time.monotonic()
        self.settings.output.mkdir(parents=True, exist_ok=True)
        per_task: dict[str, Any] = {}
        try:
            for source in sources:
                self._run_task(source)
        finally:
            for source in sources:
                per_task[source.task] = self._task_summary(source)
            summary = self._summary(per_task, time.monotonic() - started)
            path = self.settings.output / "summary.json"
            path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return summary

    def _run_task(self, source: TaskSource) -> None:
        files = TaskFiles.open(self.settings.output, source.task)
        repaired = {name: log.repaired_bytes for name, log in files.all().items() if log.repaired_bytes}
        if repaired:
            logger.warning("%s: cut torn last lines left by a killed run: %s", source.task, repaired)
        prompts = self.prompts.for_task(source.task)
        for seed in source.seeds:
            files.seeds.append(
                {"key": seed.hash, "id": seed.id, "corpus_id": seed.corpus_id, "characters": len(seed.content)}
            )
        run = self._run
        context = TaskContext(run, source, prompts, files, StageBars(source.task, self.settings.show_progress))
        try:
            size = self.settings.chunk_size
            seeds = source.seeds
            if self.settings.round_trip_k:  # a seed with no document to lead back to cannot pass the filter
                seeds = [seed for seed in seeds if seed.round_trip_targets]
            for start in range(0, len(seeds), size):
                chunk = seeds[start : start + size]
                with run.timed("clean"):
                    kept = clean_seeds(context, chunk)
                with run.timed("generate"):
                    queries = generate_queries(context, kept)
                with run.timed("mine"):
                    mine_candidates(context, queries)
                if self.settings.round_trip_k:
                    with run.timed("round_trip"):
                        passed = check_retrieval(context, queries)
                    with run.timed("annotate"):
                        annotate_candidates(context, passed, extra=target_pairs(context, passed))
                    with run.timed("round_trip"):
                        check_agreement(context, passed)
                else:
                    with run.timed("annotate"):
                        annotate_candidates(context, queries)
                with run.timed("label"):
                    label_queries(context, queries)
        finally:
            context.bars.close()

    # ------------------------------------------------------------------------------------------------ summary

    def _task_summary(self, source: TaskSource) -> dict[str, Any]:
        files = TaskFiles.open(self.settings.output, source.task)
        queries = list(files.queries)
        generation = Counter(record["status"] for record in queries)
        malformed = Counter(record["reason"] for record in queries if record["status"] == "malformed")
        candidates = list(files.candidates)
        annotations = list(files.annotations)
        histogram = Counter(str(row["score"]) for row in annotations if row["status"] == "ok")
        reasoning = list(files.reasoning)
        labels = Counter(row["status"] for row in files.labels)
        verdicts = Counter(row["status"] for row in files.round_trip)
        clean = Counter(row["verdict"] for row in files.clean)
        return {
            "instruction": source.instruction,
            "prompts": self.prompts.for_task(source.task).entry,
            "corpus_documents": len(source.corpus),
            "seeds": {**source.stats, "recorded": len(files.seeds)},
            "clean": {
                "checked": sum(clean.values()),
                "yes": clean["yes"],
                "no": clean["no"],
                "unparseable": clean["unparseable"],
            },
            "generate": {
                "replies": len(queries),
                "ok": generation["ok"],
                "duplicate": generation["duplicate"],
                "malformed": sum(malformed.values()),
                "malformed_reasons": dict(malformed),
            },
            "mine": {
                "queries": len(candidates),
                "candidates": sum(len(row["candidates"]) for row in candidates),
                "source_excluded": sum(row["source_excluded"] for row in candidates),
            },
            "annotate": {
                "pairs": len(annotations),
                "scored": sum(histogram.values()),
                "unparseable": sum(1 for row in annotations if row["status"] != "ok"),
                "scores": {str(score): histogram[str(score)] for score in range(1, 6)},
            },
            "round_trip": {
                "seeds_without_target": sum(1 for seed in source.seeds if not seed.round_trip_targets),
                "checked": sum(verdicts.values()),
                **{verdict: verdicts[verdict] for verdict in VERDICTS},
            },
            "reasoning": {
                "replies": len(reasoning),
                "ok": sum(1 for row in reasoning if row["status"] == "ok"),
                "human": sum(1 for row in reasoning if row.get("source") == "human"),
                "malformed": sum(1 for row in reasoning if row["status"] != "ok"),
            },
            "label": {
                "labelled": len(files.train) + sum(labels.values()),
                "rows": len(files.train),
                "no_positive": labels["no_positive"],
                "no_negative": labels["no_negative"],
                "no_reasoning": labels["no_reasoning"],
            },
            "train_file": str(files.train.path),
        }

    def _summary(self, per_task: dict[str, Any], seconds: float) -> dict[str, Any]:
        totals: dict[str, Any] = {}
        for task_summary in per_task.values():
            for stage in ("clean", "generate", "mine", "round_trip", "annotate", "reasoning", "label"):
                bucket = totals.setdefault(stage, {})
                for name, value in task_summary[stage].items():
                    if isinstance(value, int):
                        bucket[name] = bucket.get(name, 0) + value
                    elif isinstance(value, dict):
                        inner = bucket.setdefault(name, {})
                        for key, count in value.items():
                            inner[key] = inner.get(key, 0) + count
        usage = getattr(self.llm, "usage", None)
        run = self._run
        minutes = seconds / 60 if seconds > 0 else float("nan")
        return {
            "settings": {
                "seed": self.settings.seed,
                "queries_per_seed": self.settings.queries_per_seed,
                "clean_domain": self.settings.clean_domain,
                "miner": self.settings.miner,
                "mine_depth": self.settings.mine_depth,
                "keep_candidates": self.settings.keep_candidates,
                "annotation": "logits" if self.annotator is not None else self.settings.annotation_style,
                "logit_calibration": self.settings.logit_calibration,
                "positive_threshold": self.settings.positive_threshold,
                "round_trip_k": self.settings.round_trip_k,
                "round_trip_retriever": self.settings.round_trip_retriever if self.settings.round_trip_k else None,
                "concurrency": self.concurrency,
                "prompts": self.prompts.source,
                **self.run_info,
            },
            "tasks": per_task,
            "totals": totals,
            "this_run": {
                "seconds": round(seconds, 2),
                "queries_generated": run.generated,
                "rows_written": run.rows,
                "queries_per_minute": round(run.generated / minutes, 3) if seconds > 0 else None,
                "rows_per_minute": round(run.rows / minutes, 3) if seconds > 0 else None,
                "stage_seconds": {stage: round(seconds, 2) for stage, seconds in run.stage_seconds.items()},
                "failed_requests": dict(run.requests.failed),
                "llm_usage": usage.snapshot() if usage is not None and hasattr(usage, "snapshot") else None,
            },
        }
