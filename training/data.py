"""Training data: the released ReasonEmbed JSONL schema, read unchanged, and one-task batches of query groups.

A training file holds one JSON object per line::

    {"prompt": "<instruction>", "query": "...", "reasoning_query": "...", "pos": ["..."], "neg": ["...", ...]}

with optional ``train_group_size``, ``batch_size`` (read from the file's first row that has them, as the reference
trainer does), ``pos_scores`` and ``neg_scores`` (validated, kept, unused: no distillation here). ``prompt`` is the
task instruction; queries and reasoning queries get the same instruction. Each file is one task; a folder is read
recursively (``*.jsonl`` and ``*.json`` files, one task each, named by their path without the suffix).

Batches follow the paper: every (global) batch comes from ONE task; each query brings a group of 1 positive and
``group_size - 1`` hard negatives (sampled with replacement, as evenly as possible, when a row has too few).
Everything random derives from the seed, the epoch and the batch index alone, so a resumed run sees exactly the
batches an uninterrupted one would, without saving a sampler state.

This module knows nothing about models or tokenizers.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonembed_rag.instructions import INSTRUCT_QUERY_FORMAT, format_query
from reasonembed_rag.jsonl import read_jsonl

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".jsonl", ".json")
DEFAULT_BATCH_SIZE = 8
"""Queries per device and step when neither the command line nor the data says (the paper: 8 per GPU)."""
DEFAULT_GROUP_SIZE = 16
"""Passages per query (1 positive + 15 hard negatives) when neither the command line nor the data says."""


class TrainingDataError(ValueError):
    """A training file or row cannot be used. The message names the file, the line and the field."""


@dataclass(frozen=True)
class TrainingSample:
    """One training row."""

    prompt: str
    """The task instruction put in front of the query (``Instruct: {prompt}\\nQuery: {query}``)."""
    query: str
    reasoning_query: str | None
    """The query expanded with reasoning (what Redapter compares against); None when the row has none."""
    pos: tuple[str, ...]
    neg: tuple[str, ...]
    pos_scores: tuple[float, ...] | None = None
    neg_scores: tuple[float, ...] | None = None
    source: str = ""
    """``file:line`` of the row, for error messages."""


@dataclass
class TaskData:
    """The rows of one training file (one task)."""

    name: str
    path: Path
    samples: list[TrainingSample] = field(default_factory=list)
    batch_size: int | None = None
    """Queries per device and step that the file asks for (its rows' ``batch_size``), if any."""
    group_size: int | None = None
    """Passages per query that the file asks for (its rows' ``train_group_size``), if any."""
    skipped: int = 0
    """Malformed rows skipped (only with ``skip_malformed``)."""

    @property
    def instruction(self) -> str | None:
        """The task's instruction: the most common ``prompt`` of its rows."""
        counts = Counter(sample.prompt for sample in self.samples if sample.prompt)
        return counts.most_common(1)[0][0] if counts else None


@dataclass
class TrainingData:
    """All tasks of a training run."""

    tasks: list[TaskData]

    @property
    def num_samples(self) -> int:
        return sum(len(task.samples) for task in self.tasks)

    @property
    def skipped(self) -> int:
        return sum(task.skipped for task in self.tasks)

    def task_instructions(self) -> dict[str, str]:
        """Task name -> instruction, as a trained model folder records them."""
        return {task.name: task.instruction for task in self.tasks if task.instruction}

    def summary(self) -> dict[str, Any]:
        """Rows per task, skipped rows and files, for logs and the model card."""
        return {
            "samples": self.num_samples,
            "skipped": self.skipped,
            "tasks": {
                task.name: {"samples": len(task.samples), "skipped": task.skipped, "file": str(task.path)}
                for task in self.tasks
            },
        }


def _text(row: dict[str, Any], name: str, where: str, *, required: bool = True) -> str | None:
    if name not in row or row[name] is None:
        if required:
            raise TrainingDataError(f"{where}: field {name!r} is missing; every row needs a string {name!r}.")
        return None
    value = row[name]
    if not isinstance(value, str):
        raise TrainingDataError(
            f"{where}: field {name!r} must be a string, got {type(value).__name__}: {value!r:.80}."
        )
    return value


def _texts(row: dict[str, Any], name: str, where: str, *, allow_empty: bool) -> tuple[str, ...]:
    if name not in row:
        raise TrainingDataError(f"{where}: field {name!r} is missing; every row needs a list of strings {name!r}.")
    value = row[name]
    if not isinstance(value, list):
        raise TrainingDataError(
            f"{where}: field {name!r} must be a list of strings, got {type(value).__name__}: {value!r:.80}."
        )
    if not value and not allow_empty:
        raise TrainingDataError(f"{where}: field {name!r} is an empty list; a row needs at least one positive.")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise TrainingDataError(
                f"{where}: field {name!r}[{index}] must be a string, got {type(item).__name__}: {item!r:.80}."
            )
    return tuple(value)


def _scores(row: dict[str, Any], name: str, expected: int, where: str) -> tuple[float, ...] | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise TrainingDataError(f"{where}: field {name!r} must be a list of numbers, got {value!r:.80}.")
    if len(value) != expected:
        raise TrainingDataError(
            f"{where}: field {name!r} has {len(value)} scores for {expected} passages; they must match one to one."
        )
    return tuple(float(v) for v in value)


def _positive_int(row: dict[str, Any], name: str, where: str) -> int | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TrainingDataError(f"{where}: field {name!r} must be a positive integer, got {value!r:.80}.")
    return value


def parse_row(row: Any, where: str, *, require_reasoning_query: bool = False) -> TrainingSample:
    """Validate one decoded JSON row.

    Args:
        row: The decoded JSON value.
        where: ``file:line`` for error messages.
        require_reasoning_query: The row must have a string ``reasoning_query`` (Redapter needs it).

    Raises:
        TrainingDataError: naming ``where`` and the field that is wrong.
    """
    if not isinstance(row, dict):
        raise TrainingDataError(f"{where}: a row must be a JSON object, got {type(row).__name__}.")
    prompt = _text(row, "prompt", where)
    query = _text(row, "query", where)
    reasoning_query = _text(row, "reasoning_query", where, required=require_reasoning_query)
    pos = _texts(row, "pos", where, allow_empty=False)
    neg = _texts(row, "neg", where, allow_empty=True)
    _positive_int(row, "train_group_size", where)
    _positive_int(row, "batch_size", where)
    return TrainingSample(
        prompt=prompt or "",
        query=query or "",
        reasoning_query=reasoning_query,
        pos=pos,
        neg=neg,
        pos_scores=_scores(row, "pos_scores", len(pos), where),
        neg_scores=_scores(row, "neg_scores", len(neg), where),
        source=where,
    )


def read_training_file(
    path: str | Path,
    *,
    task: str | None = None,
    require_reasoning_query: bool = False,
    skip_malformed: bool = False,
) -> TaskData:
    """Read one JSONL training file as one task.

    Args:
        path: The file.
        task: Task name; default the file name without its suffix.
        require_reasoning_query: Rows must carry ``reasoning_query`` (Redapter).
        skip_malformed: Skip (and count) malformed rows instead of raising.

    Raises:
        TrainingDataError: a malformed row (without ``skip_malformed``), naming ``file:line`` and the field.
    """
    path = Path(path)
    data = TaskData(name=task or path.stem, path=path)

    def skip(error: Exception) -> None:
        data.skipped += 1
        logger.warning("Skipping malformed row: %s", error)

    for number, row in read_jsonl(path, error=TrainingDataError, skip=skip if skip_malformed else None):
        where = f"{path}:{number}"
        try:
            sample = parse_row(row, where, require_reasoning_query=require_reasoning_query)
        except TrainingDataError as error:
            if not skip_malformed:
                raise
            skip(error)
            continue
        if data.group_size is None:
            data.group_size = _positive_int(row, "train_group_size", where)
        if data.batch_size is None:
            data.batch_size = _positive_int(row, "batch_size", where)
        data.samples.append(sample)
    return data


def load_training_data(
    path: str | Path, *, require_reasoning_query: bool = False, skip_malformed: bool = False
) -> TrainingData:
    """Read a training file, or every ``*.jsonl`` / ``*.json`` file under a folder (one task per file).

    Args:
        path: A file or a folder.
        require_reasoning_query: Rows must carry ``reasoning_query`` (Redapter).
        skip_malformed: Skip and count malformed rows instead of raising.

    Raises:
        TrainingDataError: nothing to read, or a malformed row.

    Example:
        >>> data = load_training_data("data/train")            # doctest: +SKIP
        >>> [(task.name, len(task.samples)) for task in data.tasks]
        [('biology', 812), ('leetcode', 650)]
    """
    root = Path(path)
    if root.is_file():
        files = [(root.stem, root)]
    elif root.is_dir():
        found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)
        files = [(p.relative_to(root).with_suffix("").as_posix(), p) for p in found]
        if not files:
            raise TrainingDataError(f"No training files (*.jsonl, *.json) under {root}.")
    else:
        raise TrainingDataError(f"Training data {root} does not exist; pass a JSONL file or a folder of them.")
    tasks = [
        read_training_file(
            file, task=name, require_reasoning_query=require_reasoning_query, skip_malformed=skip_malformed
        )
        for name, file in files
    ]
    tasks = [task for task in tasks if task.samples or task.skipped]
    if not any(task.samples for task in tasks):
        raise TrainingDataError(f"No usable training rows in {root}.")
    return TrainingData(tasks)


@dataclass(frozen=True)
class Batch:
    """What one device trains on in one micro-step: queries of one task, each with its passage group."""

    task: str
    queries: list[str]
    """Queries in the model's query format (instruction included)."""
    reasoning_queries: list[str] | None
    """Reasoning queries in the same format, or None when some row has none."""
    passages: list[str]
    """``len(queries) * group_size`` passages: per query its positive first, then its hard negatives."""
    group_size: int
    false_negatives: tuple[tuple[int, int], ...] = ()
    """``(query, passage)`` index pairs of the GLOBAL batch (all ranks, in rank order) where the passage is one of
    the query's own positives but not its target: a passage that is not a negative. Empty unless the planner masks
    false negatives."""


@dataclass(frozen=True)
class _PlannedBatch:
    task_index: int
    sample_indices: tuple[int, ...]


class BatchPlanner:
    """Deterministic one-task batches with sampled passage groups.

    Args:
        data: The training data.
        batch_size: Queries per device and step for every task (overrides the files' ``batch_size``).
        group_size: Passages per query for every task (overrides the files' ``train_group_size``).
        default_batch_size: When neither the argument nor the file says.
        default_group_size: When neither the argument nor the file says.
        seed: Seed of every random choice.
        world_size: Devices; a global batch is ``batch_size * world_size`` rows of one task, sliced per rank.
        query_format: How queries are formatted (the trained model's query format).
        skip_malformed: Drop (and count) rows that have no hard negative when the group needs some, instead of
            raising.
        mask_false_negatives: Mark, in each batch, the passages that are one of a query's own positives (the same
            text as another of its ``pos``, e.g. a shared concept drawn for another query) so the loss does not
            count them as negatives. Matters for small corpora, where such repeats are common.

    Raises:
        TrainingDataError: a row has no hard negative for a group size above 1 (without ``skip_malformed``).
    """

    def __init__(
        self,
        data: TrainingData,
        *,
        batch_size: int | None = None,
        group_size: int | None = None,
        default_batch_size: int = DEFAULT_BATCH_SIZE,
        default_group_size: int = DEFAULT_GROUP_SIZE,
        seed: int = 42,
        world_size: int = 1,
        query_format: str = INSTRUCT_QUERY_FORMAT,
        skip_malformed: bool = False,
        mask_false_negatives: bool = False,
    ) -> None:
        for name, value in (("batch_size", batch_size), ("group_size", group_size), ("world_size", world_size)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        self.data = data
        self.seed = seed
        self.world_size = world_size
        self.query_format = query_format
        self.mask_false_negatives = mask_false_negatives
        self.settings: list[tuple[int, int]] = [
            (batch_size or task.batch_size or default_batch_size, group_size or task.group_size or default_group_size)
            for task in data.tasks
        ]
        for task, (_, task_group) in zip(data.tasks, self.settings, strict=True):
            if task_group < 2:
                continue
            without = [sample for sample in task.samples if not sample.neg]
            if not without:
                continue
            if not skip_malformed:
                raise TrainingDataError(
                    f"{without[0].source}: field 'neg' is empty, but task {task.name!r} trains with groups of "
                    f"{task_group} (1 positive + {task_group - 1} hard negatives); {len(without)} row(s) of "
                    f"{task.path} have no hard negative. Fix the data, pass --group-size 1, or --skip-malformed."
                )
            task.samples = [sample for sample in task.samples if sample.neg]
            task.skipped += len(without)
        self.steps_per_epoch = len(self.epoch_plan(0))
        if self.steps_per_epoch == 0:
            raise TrainingDataError(
                f"No complete batch: every task has fewer than {world_size} usable row(s) (one per device)."
            )

    def epoch_plan(self, epoch: int) -> list[_PlannedBatch]:
        """The global batches of one epoch, in training order (tasks interleaved, one task per batch).

        A task's rows are shuffled and cut into global batches; an incomplete last batch is dropped, except that a
        task smaller than one batch still gives one (smaller) batch. The order of batches is then shuffled.
        """
        rng = random.Random(f"plan:{self.seed}:{epoch}")
        plan: list[_PlannedBatch] = []
        for task_index, task in enumerate(self.data.tasks):
            per_device = self.settings[task_index][0]
            order = list(range(len(task.samples)))
            rng.shuffle(order)
            size = per_device * self.world_size
            if len(order) < size:
                size = (len(order) // self.world_size) * self.world_size
                if size == 0:
                    continue
                logger.debug(
                    "Task %s has %d rows, fewer than one batch; using one batch of %d.", task.name, len(order), size
                )
            for start in range(0, len(order) - size + 1, size):
                plan.append(_PlannedBatch(task_index, tuple(order[start : start + size])))
        rng.shuffle(plan)
        return plan

    def batches(self, epoch: int, *, start: int = 0, rank: int = 0) -> Iterator[tuple[int, Batch]]:
        """``(index, batch)`` for this rank from batch ``start`` of the epoch on."""
        plan = self.epoch_plan(epoch)
        for index in range(start, len(plan)):
            yield index, self.make_batch(epoch, index, plan[index], rank=rank)

    def make_batch(self, epoch: int, index: int, planned: _PlannedBatch, *, rank: int = 0) -> Batch:
        """This rank's slice of a planned global batch, with each query's passage group sampled."""
        task = self.data.tasks[planned.task_index]
        group_size = self.settings[planned.task_index][1]
        samples = [task.samples[i] for i in planned.sample_indices]
        # Groups are seeded per row of the GLOBAL batch, so every rank (and a resumed run) draws the same ones.
        passages = [
            text
            for position, sample in enumerate(samples)
            for text in sample_group(
                sample, group_size, random.Random(f"group:{self.seed}:{epoch}:{index}:{position}")
            )
        ]
        per_rank = len(samples) // self.world_size
        mine = samples[rank * per_rank : (rank + 1) * per_rank]
        queries = [format_query(sample.query, sample.prompt, self.query_format) for sample in mine]
        reasoning = [
            format_query(sample.reasoning_query, sample.prompt, self.query_format)
            for sample in mine
            if sample.reasoning_query is not None
        ]
        return Batch(
            task=task.name,
            queries=queries,
            reasoning_queries=reasoning if len(reasoning) == len(queries) else None,
            passages=passages[rank * per_rank * group_size : (rank + 1) * per_rank * group_size],
            group_size=group_size,
            false_negatives=_false_negatives(samples, passages, group_size) if self.mask_false_negatives else (),
        )


def _false_negatives(
    samples: Sequence[TrainingSample], passages: Sequence[str], group_size: int
) -> tuple[tuple[int, int], ...]:
    """Pairs (query, passage) of the global batch where the passage is another of the query's positives."""
    pairs: list[tuple[int, int]] = []
    for row, sample in enumerate(samples):
        positives = set(sample.pos)
        target = row * group_size
        pairs.extend((row, col) for col, text in enumerate(passages) if col != target and text in positives)
    return tuple(pairs)


def sample_group(sample: TrainingSample, group_size: int, rng: random.Random) -> list[str]:
    """One positive and ``group_size - 1`` hard negatives.

    Negatives are drawn without replacement when the row has enough; otherwise the row's negatives are repeated
    just enough times and drawn from that pool, so each is used as evenly as possible.
    """
    passages = [rng.choice(sample.pos)]
    wanted = group_size - 1
    if wanted <= 0:
        return passages
    if not sample.neg:
        raise TrainingDataError(f"{sample.source}: field 'neg' is empty; a group of {group_size} needs negatives.")
    pool: Sequence[str] = sample.neg
    if len(pool) < wanted:
        pool = list(sample.neg) * math.ceil(wanted / len(sample.neg))
    passages.extend(rng.sample(list(pool), wanted))
    return passages
