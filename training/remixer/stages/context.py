"""What the ReMixer stages share: the run (settings, LLM requests, counters), one task's files and progress bars,
and :class:`SyntheticQuery`, the record that goes from generation through mining and annotation to a label."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonembed_rag.llm import ChatModel, Completion, LLMError, Message, map_concurrently

from ..annotator import LogitAnnotator
from ..mining import Retriever, make_retriever
from ..prompts import TaskPrompts
from ..records import JsonlLog, content_hash
from ..seeds import TaskSource
from ..settings import SynthesisSettings

logger = logging.getLogger(__name__)

STAGE_NAMES = ("clean", "generate", "mine", "round_trip", "annotate", "label", "reasoning")
REPLY_KEPT_CHARACTERS = 2000
"""Malformed replies are stored (cut to this length) so that prompts can be improved from them."""


class SynthesisAborted(RuntimeError):
    """Too many LLM requests failed in a row; everything finished so far is saved and a rerun resumes."""


def query_hash(task: str, query: str) -> str:
    """The key of a synthetic query in every stage after generation (and of its training row)."""
    return content_hash(task, query)


@dataclass(frozen=True)
class SyntheticQuery:
    """A generated query that passed the checks: an ``ok`` record of ``work/<task>/queries.jsonl``."""

    text: str
    hash: str
    """:func:`query_hash` of the text: its key in the candidates, annotations, reasoning and labels files."""
    seed: str
    """The content hash of the seed document it was generated from."""
    key: str
    """Its generation key (seed and index), the record's key in ``queries.jsonl``."""

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SyntheticQuery:
        return cls(text=record["query"], hash=record["query_hash"], seed=record["seed"], key=record["key"])


class LLMRequests:
    """Runs a stage's chat requests concurrently, counting requests that fail for good (they are not recorded, so a
    rerun retries them) and aborting after too many failures in a row."""

    def __init__(self, llm: ChatModel, *, concurrency: int, max_consecutive_failures: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}.")
        self.llm = llm
        self.concurrency = concurrency
        self.max_consecutive_failures = max_consecutive_failures
        self.failed: Counter[str] = Counter()
        """Requests that failed for good in this run, per stage."""
        self._consecutive_failures = 0
        self._last_error: str | None = None

    def results(
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
                if self._consecutive_failures >= self.max_consecutive_failures:
                    raise SynthesisAborted(
                        f"{self._consecutive_failures} LLM requests failed in a row (last: {self._last_error}). "
                        "Everything finished so far is saved; fix the endpoint and run the same command again to "
                        "resume."
                    ) from result
                continue
            self._consecutive_failures = 0
            yield jobs[index][0], result


@dataclass
class RunState:
    """What every task of one run shares: settings, the LLM, the optional annotator and encoder, and counters."""

    settings: SynthesisSettings
    requests: LLMRequests
    annotator: LogitAnnotator | None = None
    """Scores stage 3 from logits in-process instead of asking the LLM."""
    encoder: Any = None
    """An already loaded encoder to mine with (instead of loading ``settings.miner``)."""
    generated: int = 0
    """Queries generated in this run."""
    rows: int = 0
    """Training rows written in this run."""
    stage_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Wall-clock seconds spent in each stage in this run."""

    @contextlib.contextmanager
    def timed(self, stage: str, *, inside: str | None = None) -> Iterator[None]:
        """Add the block's time to ``stage`` (and take it from ``inside``, a stage it runs within, to count it
        once)."""
        started = time.monotonic()
        try:
            yield
        finally:
            spent = time.monotonic() - started
            self.stage_seconds[stage] += spent
            if inside is not None:
                self.stage_seconds[inside] -= spent


@dataclass
class TaskFiles:
    """One task's files under the output folder (see :mod:`training.remixer.pipeline`)."""

    seeds: JsonlLog
    clean: JsonlLog
    queries: JsonlLog
    candidates: JsonlLog
    annotations: JsonlLog
    reasoning: JsonlLog
    labels: JsonlLog
    train: JsonlLog
    round_trip: JsonlLog

    @classmethod
    def open(cls, output: Path, task: str) -> TaskFiles:
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
            round_trip=JsonlLog(work / "round_trip.jsonl"),
        )

    def all(self) -> dict[str, JsonlLog]:
        return {
            name: getattr(self, name)
            for name in (
                "seeds",
                "clean",
                "queries",
                "candidates",
                "annotations",
                "reasoning",
                "labels",
                "train",
                "round_trip",
            )
        }


class StageBars:
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


class TaskContext:
    """What the stages share while one task runs."""

    def __init__(
        self, run: RunState, source: TaskSource, prompts: TaskPrompts, files: TaskFiles, bars: StageBars
    ) -> None:
        self.run = run
        self.settings = run.settings
        self.source = source
        self.prompts = prompts
        self.files = files
        self.bars = bars
        self.seeds = {seed.hash: seed for seed in source.seeds}
        self.corpus_hashes = {doc_id: content_hash(text) for doc_id, text in source.corpus.items()}
        self.query_hashes = {record["query_hash"] for record in files.queries if record["status"] == "ok"}
        self._retriever: Retriever | None = None
        self._checker: Retriever | None = None
        self.round_trip_ranks: dict[str, dict[str, int]] = {}
        """{query hash: {target id: rank}} of the queries that passed the round-trip retrieval check this run."""

    def retriever(self) -> Retriever:
        """The candidate miner over this task's corpus, built on first use."""
        if self._retriever is None:
            self._retriever = make_retriever(
                self.settings.miner, self.source.corpus, instruction=self.source.instruction, encoder=self.run.encoder
            )
        return self._retriever

    def checker(self) -> Retriever:
        """The round-trip filter's independent retriever over this task's corpus, built on first use."""
        if self._checker is None:
            self._checker = make_retriever(
                self.settings.round_trip_retriever, self.source.corpus, instruction=self.source.instruction
            )
        return self._checker
