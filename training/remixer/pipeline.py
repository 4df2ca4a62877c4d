"""ReMixer, stage by stage (docs/method.md, section 3), resumable and safe against bad LLM replies.

For each task, seeds are processed in chunks; within a chunk every stage runs over all its items:

0. domain cleaning (optional): the LLM answers Yes/No whether the seed belongs to the task's domain;
1. conditioned query generation: one query per seed (or ``queries_per_seed``) at a sampled target length and
   difficulty; replies that are empty, echo the prompt, point at their source or copy it are rejected; queries are
   unique by content hash (seeds are already unique by theirs);
2. candidate mining: BM25 or an encoder ranks the corpus, the SOURCE DOCUMENT is dropped, the top ``keep`` stay;
3. relevance annotation, pointwise 1-5 in ``<score>`` tags (or from the score token's logits, in-process);
4. labels: score >= 3 positive, 1-2 hard negative, unparseable skipped; queries with no positive or no negative
   are dropped; the survivors get a reasoning query (the query expanded with the LLM's reasoning about the knowledge
   it needs) and become training rows ``{prompt, query, reasoning_query, pos, neg}``.

Files under ``OUTPUT``::

    train/<task>.jsonl             the training rows (one task per file, what ``reasonembed-train train`` reads)
    work/<task>/seeds.jsonl        the seeds used            work/<task>/candidates.jsonl   stage 2
    work/<task>/clean.jsonl        stage 0                   work/<task>/annotations.jsonl  stage 3
    work/<task>/queries.jsonl      stage 1                   work/<task>/reasoning.jsonl    reasoning queries
    work/<task>/labels.jsonl       stage 4 (dropped queries; kept ones are the training rows)
    summary.json                   counts per stage and task, token usage, speed

Every file is append-only and keyed by a content hash (:mod:`training.remixer.records`): a killed run resumes where
it stopped, with no duplicate and no lost row. A malformed reply is recorded with its reason and counted; a request
that fails for good is counted and left unrecorded, so the next run retries it. A finished item is never redone: to
relabel with another threshold or calibration, delete ``train/<task>.jsonl`` and ``work/<task>/labels.jsonl`` (the
annotations are kept and reused).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonembed_rag.llm import ChatModel, Completion, LLMError, Message, map_concurrently

from .annotator import LogitAnnotator
from .mining import DEFAULT_MINER, Retriever, exclude_source, make_retriever
from .parsing import clean_query, clean_reasoning, parse_score, parse_yes_no, reasoning_query
from .prompts import ANNOTATION_STYLES, PromptBook, TaskPrompts
from .records import JsonlLog, content_hash
from .seeds import Seed, TaskSource

logger = logging.getLogger(__name__)

LOGIT_CALIBRATIONS = ("none", "query")
STAGE_NAMES = ("clean", "generate", "mine", "annotate", "label", "reasoning")
REPLY_KEPT_CHARACTERS = 2000
"""Malformed replies are stored (cut to this length) so that prompts can be improved from them."""


class SynthesisAborted(RuntimeError):
    """Too many LLM requests failed in a row; everything finished so far is saved and a rerun resumes."""


@dataclass
class SynthesisSettings:
    """How ReMixer runs (the LLM's own sampling settings live in :class:`reasonembed_rag.llm.LLMConfig`)."""

    output: Path
    """Folder for ``train/``, ``work/`` and ``summary.json``."""
    seed: int = 42
    """Seeds the sampled target length and difficulty of each query (per item, so a resume draws the same)."""
    queries_per_seed: int = 1
    clean_domain: bool = False
    """Run stage 0 (domain cleaning)."""
    miner: str = DEFAULT_MINER
    """``bm25`` or an encoder alias / model folder."""
    mine_depth: int = 1000
    """Documents retrieved per query before the source is dropped."""
    keep_candidates: int = 100
    """Candidates kept per query after the source is dropped (all of them are annotated)."""
    annotation_style: str = "reasoned"
    """``reasoned`` (analysis, then the score; for capable LLMs) or ``direct`` (score only, few-shot; small models)."""
    positive_threshold: int = 3
    """Scores at or above are positives; 1 up to this minus one are hard negatives."""
    chunk_size: int = 16
    """Seeds taken through all stages together before the next ones start (rows appear early; resume is exact)."""
    max_tokens: dict[str, int] = field(
        default_factory=lambda: {
            "clean": 8,
            "generate": 1024,
            "reasoning": 1024,
            "annotate_reasoned": 1024,
            "annotate_direct": 16,
        }
    )
    logit_calibration: str = "none"
    """For scores read from logits: ``none`` (the most likely digit) or ``query`` (calibrated against the query's
    other candidates; see :meth:`ReMixer._label_scores`)."""
    annotation_temperature: float | None = 0.0
    """Sampling temperature of annotation replies (0: greedy, reproducible; None: the LLM config's)."""
    document_characters: int = 6000
    """Documents longer than this are cut in annotation prompts (seeds are already bounded by ``max_chars``)."""
    max_consecutive_failures: int = 10
    show_progress: bool = True

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        if self.annotation_style not in ANNOTATION_STYLES:
            raise ValueError(
                f"annotation_style must be one of {', '.join(ANNOTATION_STYLES)}, got {self.annotation_style!r}."
            )
        if self.logit_calibration not in LOGIT_CALIBRATIONS:
            raise ValueError(
                f"logit_calibration must be one of {', '.join(LOGIT_CALIBRATIONS)}, got {self.logit_calibration!r}."
            )
        if not 2 <= self.positive_threshold <= 5:
            raise ValueError(f"positive_threshold must be 2-5, got {self.positive_threshold}.")
        for name in ("queries_per_seed", "mine_depth", "keep_candidates", "chunk_size", "max_consecutive_failures"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.keep_candidates > self.mine_depth:
            raise ValueError(f"keep_candidates ({self.keep_candidates}) cannot exceed mine_depth ({self.mine_depth}).")


@dataclass
class _TaskFiles:
    seeds: JsonlLog
    clean: JsonlLog
    queries: JsonlLog
    candidates: JsonlLog
    annotations: JsonlLog
    reasoning: JsonlLog
    labels: JsonlLog
    train: JsonlLog

    @classmethod
    def open(cls, output: Path, task: str) -> _TaskFiles:
        work = output / "work" / task
        return cls(
            seeds=JsonlLog(work / "seeds.jsonl"),
            clean=JsonlLog(work / "clean.jsonl"),
            queries=JsonlLog(work / "queries.jsonl"),
            candidates=JsonlLog(work / "candidates.jsonl"),
            annotations=JsonlLog(work / "annotations.jsonl"),
            reasoning=JsonlLog(work / "reasoning.jsonl"),
            labels=JsonlLog(work / "labels.jsonl"),
            train=JsonlLog(
                output / "train" / f"{task}.jsonl", key=None, key_of=lambda row: content_hash(task, row["query"])
            ),
        )

    def all(self) -> dict[str, JsonlLog]:
        return {
            name: getattr(self, name)
            for name in ("seeds", "clean", "queries", "candidates", "annotations", "reasoning", "labels", "train")
        }


def query_hash(task: str, query: str) -> str:
    """The key of a synthetic query in every stage after generation (and of its training row)."""
    return content_hash(task, query)


class _Bars:
    """One progress bar per stage for the task being synthesised; totals grow chunk by chunk."""

    def __init__(self, task: str, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self._bars = {
            stage: tqdm(
                total=0,
                desc=f"{task} {stage:>9}",
                unit="it",
                position=i,
                leave=True,
                disable=not enabled,
                dynamic_ncols=True,
            )
            for i, stage in enumerate(STAGE_NAMES)
        }

    def grow(self, stage: str, count: int) -> None:
        bar = self._bars[stage]
        bar.total = (bar.total or 0) + count
        bar.refresh()

    def step(self, stage: str, count: int = 1) -> None:
        self._bars[stage].update(count)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


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
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}.")
        self.settings = settings
        self.llm = llm
        self.concurrency = concurrency
        self.prompts = prompts or PromptBook()
        self.annotator = annotator
        self.encoder = encoder
        self.run_info = dict(run_info or {})
        self.failed: Counter[str] = Counter()
        """Requests that failed for good in this run, per stage (not recorded; a rerun retries them)."""
        self.generated_this_run = 0
        self.rows_this_run = 0
        self.stage_seconds: defaultdict[str, float] = defaultdict(float)
        """Wall-clock seconds spent in each stage in this run."""
        self._consecutive_failures = 0
        self._last_error: str | None = None

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.stage_seconds[stage] += time.monotonic() - started

    # ------------------------------------------------------------------------------------------------ running

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
        files = _TaskFiles.open(self.settings.output, source.task)
        repaired = {name: log.repaired_bytes for name, log in files.all().items() if log.repaired_bytes}
        if repaired:
            logger.warning("%s: cut torn last lines left by a killed run: %s", source.task, repaired)
        prompts = self.prompts.for_task(source.task)
        for seed in source.seeds:
            files.seeds.append(
                {"key": seed.hash, "id": seed.id, "corpus_id": seed.corpus_id, "characters": len(seed.content)}
            )
        context = _TaskContext(source, prompts, files, _Bars(source.task, self.settings.show_progress))
        try:
            size = self.settings.chunk_size
            for start in range(0, len(source.seeds), size):
                chunk = source.seeds[start : start + size]
                with self._timed("clean"):
                    kept = self._stage_clean(context, chunk)
                with self._timed("generate"):
                    queries = self._stage_generate(context, kept)
                with self._timed("mine"):
                    self._stage_mine(context, queries)
                with self._timed("annotate"):
                    self._stage_annotate(context, queries)
                with self._timed("label"):
                    self._stage_label(context, queries)
        finally:
            context.bars.close()

    def _llm_results(
        self,
        stage: str,
        jobs: Sequence[tuple[Any, list[Message]]],
        *,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        temperature: float | None = None,
    ) -> Iterator[tuple[Any, Completion]]:
        """Run chat jobs concurrently; yield (job payload, completion) for each success, count failures."""

        def call(job: tuple[Any, list[Message]]) -> Completion:
            return self.llm.chat(job[1], max_tokens=max_tokens, stop=stop, temperature=temperature)

        for index, result in map_concurrently(call, jobs, concurrency=self.concurrency):
            if isinstance(result, LLMError):
                self.failed[stage] += 1
                self._consecutive_failures += 1
                self._last_error = str(result)
                logger.warning("%s: request failed: %s", stage, result)
                if self._consecutive_failures >= self.settings.max_consecutive_failures:
                    raise SynthesisAborted(
                        f"{self._consecutive_failures} LLM requests failed in a row (last: {self._last_error}). "
                        "Everything finished so far is saved; fix the endpoint and run the same command again to "
                        "resume."
                    ) from result
                continue
            self._consecutive_failures = 0
            yield jobs[index][0], result

    # ------------------------------------------------------------------------------------------------ stage 0

    def _stage_clean(self, ctx: _TaskContext, seeds: list[Seed]) -> list[Seed]:
        if not self.settings.clean_domain:
            return seeds
        todo = [seed for seed in seeds if seed.hash not in ctx.files.clean]
        ctx.bars.grow("clean", len(seeds))
        ctx.bars.step("clean", len(seeds) - len(todo))
        jobs = [(seed, ctx.prompts.clean_messages(seed.content)) for seed in todo]
        for seed, completion in self._llm_results("clean", jobs, max_tokens=self.settings.max_tokens["clean"]):
            verdict = parse_yes_no(completion.text)
            record: dict[str, Any] = {
                "key": seed.hash,
                "id": seed.id,
                "verdict": {True: "yes", False: "no", None: "unparseable"}[verdict],
            }
            if verdict is None:
                record["reply"] = completion.text[:REPLY_KEPT_CHARACTERS]
            ctx.files.clean.append(record)
            ctx.bars.step("clean")
        # Unparseable verdicts keep the seed: cleaning only removes what the LLM clearly rejects.
        return [
            seed
            for seed in seeds
            if (checked := ctx.files.clean.get(seed.hash)) is not None and checked["verdict"] != "no"
        ]

    # ------------------------------------------------------------------------------------------------ stage 1

    def _stage_generate(self, ctx: _TaskContext, seeds: list[Seed]) -> list[dict[str, Any]]:
        """Generate missing queries for ``seeds``; return the chunk's ``ok`` query records."""
        keys = [
            (seed, index, content_hash("generate", seed.task, seed.hash, str(index)))
            for seed in seeds
            for index in range(self.settings.queries_per_seed)
        ]
        todo = [(seed, index, key) for seed, index, key in keys if key not in ctx.files.queries]
        ctx.bars.grow("generate", len(keys))
        ctx.bars.step("generate", len(keys) - len(todo))
        jobs = []
        for seed, index, key in todo:
            length, difficulty = ctx.prompts.sample_conditions(random.Random(f"{self.settings.seed}:{key}"))
            messages = ctx.prompts.generation_messages(seed.content, length=length, difficulty=difficulty)
            jobs.append(((seed, index, key, length, difficulty), messages))
        sentences = ctx.prompts.generation_prefix_text()
        for (seed, index, key, length, difficulty), completion in self._llm_results(
            "generate", jobs, max_tokens=self.settings.max_tokens["generate"]
        ):
            query, reason = clean_query(
                completion.text,
                source=seed.content,
                forbidden_phrases=ctx.prompts.forbidden_phrases,
                prompt_sentences=sentences,
                truncated=completion.finish_reason == "length",
            )
            record: dict[str, Any] = {
                "key": key,
                "seed": seed.hash,
                "seed_id": seed.id,
                "index": index,
                "length": length,
                "difficulty": difficulty,
            }
            if query is None:
                record.update(status="malformed", reason=reason, reply=completion.text[:REPLY_KEPT_CHARACTERS])
            else:
                digest = query_hash(seed.task, query)
                status = "duplicate" if digest in ctx.query_hashes else "ok"
                record.update(status=status, query=query, query_hash=digest)
                if status == "ok":
                    ctx.query_hashes.add(digest)
                    self.generated_this_run += 1
            ctx.files.queries.append(record)
            ctx.bars.step("generate")
        records = [ctx.files.queries.get(key) for _, _, key in keys]
        return [record for record in records if record is not None and record["status"] == "ok"]

    # ------------------------------------------------------------------------------------------------ stage 2

    def _stage_mine(self, ctx: _TaskContext, queries: list[dict[str, Any]]) -> None:
        todo = [record for record in queries if record["query_hash"] not in ctx.files.candidates]
        ctx.bars.grow("mine", len(queries))
        ctx.bars.step("mine", len(queries) - len(todo))
        if not todo:
            return
        retriever = ctx.retriever(self.settings.miner, self.encoder)
        depth = min(self.settings.mine_depth, len(ctx.source.corpus))
        ranked = retriever.search([record["query"] for record in todo], depth)
        for record, ranking in zip(todo, ranked, strict=True):
            seed = ctx.seeds[record["seed"]]
            mined = exclude_source(
                ranking,
                ctx.source.corpus,
                source_id=seed.corpus_id,
                source_hash=seed.hash,
                keep=self.settings.keep_candidates,
                corpus_hashes=ctx.corpus_hashes,
            )
            ctx.files.candidates.append(
                {
                    "key": record["query_hash"],
                    "miner": retriever.name,
                    "candidates": mined.candidates,
                    "source_excluded": mined.source_excluded,
                }
            )
            ctx.bars.step("mine")

    # ------------------------------------------------------------------------------------------------ stage 3

    def _pairs(self, ctx: _TaskContext, queries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str, str]]:
        pairs = []
        for record in queries:
            mined = ctx.files.candidates.get(record["query_hash"])
            for doc_id in (mined or {}).get("candidates", []):
                if doc_id not in ctx.corpus_hashes:
                    raise SynthesisAborted(
                        f"{ctx.files.candidates.path} names document {doc_id!r}, which is not in the corpus any more: "
                        "the corpus changed since that run. Use a new --output folder for a new corpus."
                    )
                pairs.append((record, doc_id, content_hash(record["query_hash"], ctx.corpus_hashes[doc_id])))
        return pairs

    def _stage_annotate(self, ctx: _TaskContext, queries: list[dict[str, Any]]) -> None:
        pairs = self._pairs(ctx, queries)
        todo = [pair for pair in pairs if pair[2] not in ctx.files.annotations]
        ctx.bars.grow("annotate", len(pairs))
        ctx.bars.step("annotate", len(pairs) - len(todo))
        style = "direct" if self.annotator is not None else self.settings.annotation_style
        limit = self.settings.document_characters

        def messages(pair: tuple[dict[str, Any], str, str]) -> list[Message]:
            document = ctx.source.corpus[pair[1]][:limit]
            order = random.Random(f"{self.settings.seed}:{pair[2]}")
            return ctx.prompts.annotation_messages(
                pair[0]["query"], document, style=style, rng=order, examples=self.annotator is None
            )

        if self.annotator is not None:
            step = max(1, self.annotator.batch_size * 4)
            for start in range(0, len(todo), step):
                batch = todo[start : start + step]
                for (record, doc_id, key), distribution in zip(
                    batch, self.annotator.score([messages(pair) for pair in batch]), strict=True
                ):
                    ctx.files.annotations.append(
                        {
                            "key": key,
                            "query": record["query_hash"],
                            "doc_id": doc_id,
                            "status": "ok",
                            "score": distribution.score,
                            "probabilities": list(distribution.probabilities),
                            "annotator": "logits",
                        }
                    )
                    ctx.bars.step("annotate")
            return
        jobs = [(pair, messages(pair)) for pair in todo]
        stage = f"annotate_{style}"
        # A direct answer is complete at its closing tag; stopping there saves the tokens small models add after it.
        stop = ["</score>"] if style == "direct" else None
        for (record, doc_id, key), completion in self._llm_results(
            "annotate",
            jobs,
            max_tokens=self.settings.max_tokens[stage],
            stop=stop,
            temperature=self.settings.annotation_temperature,
        ):
            score = parse_score(completion.text)
            row: dict[str, Any] = {
                "key": key,
                "query": record["query_hash"],
                "doc_id": doc_id,
                "status": "ok" if score is not None else "unparseable",
                "score": score,
                "annotator": style,
            }
            if score is None:
                row["reply"] = completion.text[:REPLY_KEPT_CHARACTERS]
            ctx.files.annotations.append(row)
            ctx.bars.step("annotate")

    # ------------------------------------------------------------------------------------------------ stage 4

    def _stage_label(self, ctx: _TaskContext, queries: list[dict[str, Any]]) -> None:
        threshold = self.settings.positive_threshold
        labelled: list[tuple[dict[str, Any], list[str], list[str]]] = []
        ctx.bars.grow("label", len(queries))
        for record in queries:
            digest = record["query_hash"]
            if digest in ctx.files.labels or digest in ctx.files.train:
                ctx.bars.step("label")
                continue
            mined = ctx.files.candidates.get(digest)
            if mined is None:
                continue
            annotations = [
                ctx.files.annotations.get(content_hash(digest, ctx.corpus_hashes[doc_id]))
                for doc_id in mined["candidates"]
            ]
            if any(annotation is None for annotation in annotations):
                continue  # a failed request: a later run annotates it, then labels the query
            scores = self._label_scores([annotation for annotation in annotations if annotation is not None])
            scored = [
                (score, rank, doc_id)
                for rank, (doc_id, score) in enumerate(zip(mined["candidates"], scores, strict=True))
                if score is not None
            ]
            source = ctx.seeds[record["seed"]]
            # Belt and braces: mining already dropped the source; nothing with its content may become a label.
            scored = [item for item in scored if ctx.corpus_hashes[item[2]] != source.hash]
            positives = [doc for score, rank, doc in sorted((-s, r, d) for s, r, d in scored if s >= threshold)]
            negatives = [doc for score, rank, doc in sorted(scored, key=lambda item: item[1]) if score < threshold]
            counts = {
                "positives": len(positives),
                "negatives": len(negatives),
                "unparseable": len(mined["candidates"]) - len(scored),
            }
            if not positives or not negatives:
                status = "no_positive" if not positives else "no_negative"
                ctx.files.labels.append({"key": digest, "status": status, **counts})
                ctx.bars.step("label")
                continue
            labelled.append((record, positives, negatives))
        self._stage_reasoning(
            ctx, [record for record, _, _ in labelled if record["query_hash"] not in ctx.files.reasoning]
        )
        for record, positives, negatives in labelled:
            digest = record["query_hash"]
            reasoning = ctx.files.reasoning.get(digest)
            if reasoning is None:
                continue  # its reasoning request failed; a later run finishes it
            if reasoning["status"] != "ok":
                ctx.files.labels.append(
                    {"key": digest, "status": "no_reasoning", "positives": len(positives), "negatives": len(negatives)}
                )
            else:
                row = {
                    "prompt": ctx.source.instruction,
                    "query": record["query"],
                    "reasoning_query": reasoning_query(record["query"], reasoning["reasoning"]),
                    "pos": [ctx.source.corpus[doc] for doc in positives],
                    "neg": [ctx.source.corpus[doc] for doc in negatives],
                }
                if ctx.files.train.append(row):
                    self.rows_this_run += 1
            ctx.bars.step("label")

    def _label_scores(self, annotations: list[dict[str, Any]]) -> list[int | None]:
        """The score each of a query's annotations counts with (None: unparseable).

        With ``logit_calibration="query"``, scores read from logits are recomputed: each candidate's distribution is
        divided by the mean distribution over the query's candidates, then the most likely score is taken. This is
        contextual calibration (Zhao et al., 2021, "Calibrate before use") with the query's candidates as the
        reference: it removes a small model's constant preference for one digit and keeps what differs between
        candidates.
        """
        scores: list[int | None] = [row["score"] if row["status"] == "ok" else None for row in annotations]
        if self.settings.logit_calibration != "query":
            return scores
        indexed = [(i, row["probabilities"]) for i, row in enumerate(annotations) if row.get("probabilities")]
        if len(indexed) < 2:
            return scores
        mean = [sum(p[k] for _, p in indexed) / len(indexed) for k in range(5)]
        for i, probabilities in indexed:
            ratios = [probabilities[k] / mean[k] if mean[k] > 0 else 0.0 for k in range(5)]
            scores[i] = 1 + max(range(5), key=lambda k: (ratios[k], -k))
        return scores

    def _stage_reasoning(self, ctx: _TaskContext, queries: list[dict[str, Any]]) -> None:
        started = time.monotonic()
        try:
            self._reason(ctx, queries)
        finally:
            spent = time.monotonic() - started
            self.stage_seconds["reasoning"] += spent
            self.stage_seconds["label"] -= spent  # reasoning runs inside the label stage; count it once

    def _reason(self, ctx: _TaskContext, queries: list[dict[str, Any]]) -> None:
        ctx.bars.grow("reasoning", len(queries))
        jobs = [(record, ctx.prompts.reasoning_messages(record["query"])) for record in queries]
        for record, completion in self._llm_results(
            "reasoning", jobs, max_tokens=self.settings.max_tokens["reasoning"]
        ):
            text, reason = clean_reasoning(
                completion.text, query=record["query"], truncated=completion.finish_reason == "length"
            )
            row: dict[str, Any] = {"key": record["query_hash"], "status": "ok" if text else "malformed"}
            if text:
                row["reasoning"] = text
            else:
                row.update(reason=reason, reply=completion.text[:REPLY_KEPT_CHARACTERS])
            ctx.files.reasoning.append(row)
            ctx.bars.step("reasoning")

    # ------------------------------------------------------------------------------------------------ summary

    def _task_summary(self, source: TaskSource) -> dict[str, Any]:
        files = _TaskFiles.open(self.settings.output, source.task)
        queries = list(files.queries)
        generation = Counter(record["status"] for record in queries)
        malformed = Counter(record["reason"] for record in queries if record["status"] == "malformed")
        candidates = list(files.candidates)
        annotations = list(files.annotations)
        histogram = Counter(str(row["score"]) for row in annotations if row["status"] == "ok")
        reasoning = list(files.reasoning)
        labels = Counter(row["status"] for row in files.labels)
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
            "reasoning": {
                "replies": len(reasoning),
                "ok": sum(1 for row in reasoning if row["status"] == "ok"),
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
            for stage in ("clean", "generate", "mine", "annotate", "reasoning", "label"):
                bucket = totals.setdefault(stage, {})
                for name, value in task_summary[stage].items():
                    if isinstance(value, int):
                        bucket[name] = bucket.get(name, 0) + value
                    elif isinstance(value, dict):
                        inner = bucket.setdefault(name, {})
                        for key, count in value.items():
                            inner[key] = inner.get(key, 0) + count
        usage = getattr(self.llm, "usage", None)
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
                "concurrency": self.concurrency,
                "prompts": self.prompts.source,
                **self.run_info,
            },
            "tasks": per_task,
            "totals": totals,
            "this_run": {
                "seconds": round(seconds, 2),
                "queries_generated": self.generated_this_run,
                "rows_written": self.rows_this_run,
                "queries_per_minute": round(self.generated_this_run / minutes, 3) if seconds > 0 else None,
                "rows_per_minute": round(self.rows_this_run / minutes, 3) if seconds > 0 else None,
                "stage_seconds": {stage: round(seconds, 2) for stage, seconds in self.stage_seconds.items()},
                "failed_requests": dict(self.failed),
                "llm_usage": usage.snapshot() if usage is not None and hasattr(usage, "snapshot") else None,
            },
        }


class _TaskContext:
    """What the stages share while one task runs."""

    def __init__(self, source: TaskSource, prompts: TaskPrompts, files: _TaskFiles, bars: _Bars) -> None:
        self.source = source
        self.prompts = prompts
        self.files = files
        self.bars = bars
        self.seeds = {seed.hash: seed for seed in source.seeds}
        self.corpus_hashes = {doc_id: content_hash(text) for doc_id, text in source.corpus.items()}
        self.query_hashes = {record["query_hash"] for record in files.queries if record["status"] == "ok"}
        self._retriever: Retriever | None = None

    def retriever(self, miner: str, encoder: Any) -> Retriever:
        if self._retriever is None:
            self._retriever = make_retriever(
                miner, self.source.corpus, instruction=self.source.instruction, encoder=encoder
            )
        return self._retriever
