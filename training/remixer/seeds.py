"""Where ReMixer's seed documents and candidate corpora come from.

Three seed sources, one :class:`TaskSource` per task:

* a BRIGHT-layout folder (``ROOT/<task>/examples.jsonl`` + ``documents.jsonl``): seeds are the task's documents
  minus every gold document of its queries (those queries are for evaluation); the corpus to mine candidates from
  is the task's documents;
* a JSONL file of ``{"id", "content"}`` rows (one task, named by ``--tasks``): seeds and corpus are its rows;
* ``offline``: the offline CHAMP task's TRAIN side (:mod:`reasonembed_rag.evaluation.offline`). Seeds are the
  CHAMP concepts that are gold for no TEST query, plus each TRAIN problem written out with its worked solution
  (its targets are its gold concepts, its reasoning CHAMP's human hints and solution); the corpus is the 89
  concepts (the retrieval targets of the task). Nothing of the test side seeds synthesis. ``hold_out_ood`` also
  leaves out the out-of-domain validation (``champ_concepts_ood``): its problems seed nothing and its held-out
  concepts are neither seeds nor in the corpus;
* ``wordnet``: definitions of domain concepts from WordNet 3.0 (:mod:`.wordnet`: mathematics, statistics, physics,
  chemistry, computer science, scientific laws and equations), so the skill is seen beyond CHAMP's concepts; the
  corpus is the same definitions.

Any source can also drop the gold documents of other evaluation tasks (``exclude_gold``). Seeds keep documents of
``min_chars``-``max_chars`` characters, one per distinct content (hash), sampled in a fixed order so that a larger
``max_seeds`` extends a smaller one.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field, replace
from pathlib import Path

from reasonembed_rag.evaluation.data import TaskDataError, load_documents

from .records import content_hash
from .wordnet import WORDNET_INSTRUCTION, WORDNET_TASK, names_in, wordnet_documents

OFFLINE = "offline"
WORDNET = "wordnet"
DEFAULT_MIN_CHARS = 200
DEFAULT_MAX_CHARS = 5000
OFFLINE_MIN_CHARS = 16
"""CHAMP concepts are short (18-475 characters): the offline source keeps nearly all of them by default."""


class SeedError(ValueError):
    """The seed or corpus input is missing or malformed; the message names the path and how to fix it."""


@dataclass(frozen=True)
class Seed:
    """One seed document for one task."""

    task: str
    id: str
    content: str
    hash: str
    """Content hash: seeds are unique by it, and so is everything made from them."""
    corpus_id: str | None = None
    """The same document's id in the candidate corpus (excluded from its queries' candidates), if it is there."""
    targets: tuple[str, ...] = ()
    """Corpus ids its queries should retrieve when the seed itself is not in the corpus (a CHAMP problem's gold
    concepts); checked by the round-trip filter (:mod:`.stages.roundtrip`)."""
    reasoning: str | None = None
    """Human reasoning about the seed (CHAMP's hints and worked solution): its queries' reasoning query uses it
    instead of asking the LLM."""

    @property
    def round_trip_targets(self) -> tuple[str, ...]:
        """The corpus documents a query from this seed must find: its own, else its ``targets``."""
        return (self.corpus_id,) if self.corpus_id is not None else self.targets


@dataclass
class TaskSource:
    """One task's seeds, its candidate corpus and instruction."""

    task: str
    instruction: str
    seeds: list[Seed]
    corpus: dict[str, str]
    stats: dict[str, int] = field(default_factory=dict)


def select_seeds(
    documents: Iterable[tuple[str, str]],
    *,
    task: str,
    exclude_ids: Set[str] = frozenset(),
    corpus: dict[str, str] | None = None,
    min_chars: int = DEFAULT_MIN_CHARS,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_seeds: int | None = None,
    seed: int = 42,
) -> tuple[list[Seed], dict[str, int]]:
    """Filter, deduplicate and sample seed documents.

    Args:
        documents: ``(id, content)`` pairs.
        task: Task name recorded in each seed.
        exclude_ids: Ids never to use (gold documents of evaluation queries).
        corpus: The candidate corpus; a seed whose id is in it with the same content is marked as that document.
        min_chars: Shortest content kept.
        max_chars: Longest content kept.
        max_seeds: Keep at most this many (None: all).
        seed: Sampling seed; the order is fixed, so a larger ``max_seeds`` extends a smaller one.

    Returns:
        The seeds and counts: ``available``, ``excluded_gold``, ``too_short``, ``too_long``, ``duplicate``,
        ``eligible``, ``selected``.
    """
    if min_chars < 0 or max_chars < min_chars:
        raise SeedError(f"Need 0 <= min_chars <= max_chars, got min_chars={min_chars}, max_chars={max_chars}.")
    if max_seeds is not None and max_seeds < 1:
        raise SeedError(f"max_seeds must be at least 1 (or unset for all), got {max_seeds}.")
    stats = dict.fromkeys(("available", "excluded_gold", "too_short", "too_long", "duplicate"), 0)
    kept: dict[str, Seed] = {}
    for doc_id, content in documents:
        stats["available"] += 1
        if doc_id in exclude_ids:
            stats["excluded_gold"] += 1
            continue
        length = len(content.strip())
        if length < min_chars:
            stats["too_short"] += 1
            continue
        if length > max_chars:
            stats["too_long"] += 1
            continue
        digest = content_hash(content)
        if digest in kept:
            stats["duplicate"] += 1
            continue
        in_corpus = corpus is not None and corpus.get(doc_id) == content
        kept[digest] = Seed(task, doc_id, content, digest, doc_id if in_corpus else None)
    ordered = [kept[digest] for digest in sorted(kept)]
    random.Random(seed).shuffle(ordered)
    selected = ordered if max_seeds is None else ordered[:max_seeds]
    stats["eligible"] = len(ordered)
    stats["selected"] = len(selected)
    return selected, stats


def read_documents_jsonl(path: Path) -> dict[str, str]:
    """``{id: content}`` from a JSONL file of ``{"id", "content"}`` rows (errors name the file and line)."""
    if not path.is_file():
        raise SeedError(f"Document file {path} does not exist; pass a JSONL file with one {{id, content}} per line.")
    try:
        documents = load_documents(path, task=path.stem)
    except TaskDataError as error:
        raise SeedError(str(error)) from error
    if not documents:
        raise SeedError(f"{path} holds no documents.")
    return documents


def gold_ids(root: str | Path, tasks: Sequence[str] | None = None) -> set[str]:
    """Every gold document id (short and long) of the evaluation queries in a BRIGHT-layout folder."""
    from reasonembed_rag.evaluation.data import list_folder_tasks, read_rows

    root = Path(root)
    found: set[str] = set()
    for task in tasks or list_folder_tasks(root):
        examples = root / task / "examples.jsonl"
        if not examples.exists():
            raise SeedError(f"{examples} does not exist; tasks under {root}: {', '.join(list_folder_tasks(root))}.")
        for _, row in read_rows(examples):
            for name in ("gold_ids", "gold_ids_long"):
                values = row.get(name) or []
                found.update(str(v) for v in values if isinstance(values, list) and v != "N/A")
    return found


def _instruction_for(task: str, folder: Path | None = None) -> str:
    from reasonembed_rag.evaluation.data import default_instruction

    if folder is not None and (folder / "instruction.txt").exists():
        return (folder / "instruction.txt").read_text(encoding="utf-8").strip()
    instruction = default_instruction(task) or default_instruction(task.removesuffix("_train"))
    if instruction is None:
        raise SeedError(
            f"No query instruction is known for task {task!r}: add a one-line instruction.txt to its folder, or pass "
            "--instruction."
        )
    return instruction


@dataclass(frozen=True)
class SeedSelection:
    """Which documents may seed, and how many (see :func:`select_seeds`)."""

    min_chars: int = DEFAULT_MIN_CHARS
    max_chars: int = DEFAULT_MAX_CHARS
    max_seeds: int | None = None
    seed: int = 42

    def select(
        self, documents: Iterable[tuple[str, str]], *, task: str, exclude_ids: set[str], corpus: dict[str, str]
    ) -> tuple[list[Seed], dict[str, int]]:
        return select_seeds(
            documents,
            task=task,
            exclude_ids=exclude_ids,
            corpus=corpus,
            min_chars=self.min_chars,
            max_chars=self.max_chars,
            max_seeds=self.max_seeds,
            seed=self.seed,
        )


def folder_sources(
    root: Path,
    tasks: Sequence[str] | None,
    *,
    exclude: set[str],
    corpus_path: Path | None,
    instruction: str | None,
    selection: SeedSelection,
) -> list[TaskSource]:
    """Sources from a BRIGHT-layout folder: each task's documents minus the gold documents of its queries."""
    from reasonembed_rag.evaluation.data import TaskDataError, list_folder_tasks, load_documents

    available = list_folder_tasks(root)
    chosen = list(tasks) if tasks else available
    missing = [task for task in chosen if task not in available]
    if missing:
        raise SeedError(f"Tasks {', '.join(missing)} not found under {root}; found: {', '.join(available) or 'none'}.")
    sources = []
    for task in chosen:
        folder = root / task
        try:
            documents = load_documents(folder / "documents.jsonl", task=task)
        except TaskDataError as error:
            raise SeedError(str(error)) from error
        excluded = exclude | gold_ids(root, [task])
        corpus = read_documents_jsonl(corpus_path) if corpus_path else documents
        seeds, stats = selection.select(documents.items(), task=task, exclude_ids=excluded, corpus=corpus)
        sources.append(TaskSource(task, instruction or _instruction_for(task, folder), seeds, corpus, stats))
    return sources


PROBLEM_PREFIX = "train_problem:"
"""Seed ids of CHAMP TRAIN problems: ``train_problem:<problem id>``."""


def offline_documents() -> tuple[list[tuple[str, str]], dict[str, str], set[str]]:
    """(seed documents, concept corpus, test gold ids) of the offline CHAMP task, from the train side only."""
    from reasonembed_rag.evaluation.offline import champ_rows

    examples, documents = champ_rows()
    corpus = {row["id"]: row["content"] for row in documents}
    test_gold = {doc for row in examples["test"] for doc in row["gold_ids"]}
    seeds = [(doc_id, content) for doc_id, content in corpus.items()]
    for row in examples["train"]:
        worked = f"Problem: {row['query']}\nSolution: {row['reasoning']}" if row.get("reasoning") else row["query"]
        seeds.append((f"{PROBLEM_PREFIX}{row['id']}", worked))
    return seeds, corpus, test_gold


def _problem_facts(corpus: dict[str, str]) -> dict[str, tuple[tuple[str, ...], str | None]]:
    """{seed id: (gold concepts in ``corpus``, CHAMP's hints + worked solution)} of the TRAIN problems."""
    from reasonembed_rag.evaluation.offline import champ_hints, champ_rows

    facts = {}
    for row in champ_rows()[0]["train"]:
        reasoning = " ".join([*champ_hints(row["id"]), row.get("reasoning") or ""]).strip()
        gold = tuple(doc for doc in row["gold_ids"] if doc in corpus)
        facts[f"{PROBLEM_PREFIX}{row['id']}"] = (gold, reasoning or None)
    return facts


def offline_sources(
    *,
    exclude: set[str],
    corpus_path: Path | None,
    instruction: str | None,
    selection: SeedSelection,
    hold_out_ood: bool = False,
) -> list[TaskSource]:
    """The offline CHAMP train side as one task, ``champ_concepts_train`` (see the module docstring)."""
    from reasonembed_rag.evaluation.offline import CHAMP_TRAIN_TASK, champ_ood_rows

    documents, corpus, test_gold = offline_documents()
    if corpus_path:
        corpus = read_documents_jsonl(corpus_path)
    banned = exclude | test_gold
    if hold_out_ood:
        validation, _, held_out = champ_ood_rows()
        banned |= set(held_out) | {f"{PROBLEM_PREFIX}{row['id']}" for row in validation}
        corpus = {doc_id: text for doc_id, text in corpus.items() if doc_id not in held_out}
    seeds, stats = selection.select(documents, task=CHAMP_TRAIN_TASK, exclude_ids=banned, corpus=corpus)
    facts = _problem_facts(corpus)
    seeds = [
        replace(seed, targets=facts[seed.id][0], reasoning=facts[seed.id][1]) if seed.id in facts else seed
        for seed in seeds
    ]
    return [TaskSource(CHAMP_TRAIN_TASK, instruction or _instruction_for(CHAMP_TRAIN_TASK), seeds, corpus, stats)]


def load_sources(
    seeds: str | Path,
    tasks: Sequence[str] | None = None,
    *,
    corpus: str | Path | None = None,
    exclude_gold: Sequence[str | Path] = (),
    instruction: str | None = None,
    min_chars: int | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_seeds: int | None = None,
    seed: int = 42,
    hold_out_ood: bool = False,
) -> list[TaskSource]:
    """Resolve ``--seeds`` into one :class:`TaskSource` per task.

    Args:
        seeds: ``offline``, ``wordnet``, a BRIGHT-layout folder, or a JSONL file of ``{id, content}``.
        tasks: Tasks to use from a folder (default all); for a JSONL file, exactly one name (its prompts and
            instruction are looked up by it).
        corpus: A JSONL file of ``{id, content}`` to mine candidates from instead of the source's own documents.
        exclude_gold: BRIGHT-layout folders whose evaluation queries' gold documents must not seed synthesis.
        instruction: Query instruction written into each row (default: the task's own).
        min_chars: Shortest seed kept (default 200; 16 for ``offline``, whose concepts are short).
        max_chars: Longest seed kept.
        max_seeds: Seeds per task (default all).
        seed: Sampling seed.
        hold_out_ood: With ``offline`` (and ``wordnet``, whose definitions naming a held-out concept are dropped):
            leave out everything the out-of-domain validation ``champ_concepts_ood`` holds out.
    """
    if hold_out_ood and str(seeds) not in (OFFLINE, WORDNET):
        raise SeedError(f"hold_out_ood applies to --seeds offline or wordnet only, not {seeds!r}.")
    excluded: set[str] = set()
    for root in exclude_gold:
        excluded |= gold_ids(root)
    corpus_path = Path(corpus) if corpus else None
    offline = str(seeds) == OFFLINE
    default_min = OFFLINE_MIN_CHARS if offline or str(seeds) == WORDNET else DEFAULT_MIN_CHARS
    selection = SeedSelection(default_min if min_chars is None else min_chars, max_chars, max_seeds, seed)
    if offline:
        if tasks and list(tasks) not in (["champ_concepts_train"], ["champ_concepts"]):
            raise SeedError(f"--seeds offline provides the task champ_concepts_train only, not {', '.join(tasks)}.")
        return offline_sources(
            exclude=excluded,
            corpus_path=corpus_path,
            instruction=instruction,
            selection=selection,
            hold_out_ood=hold_out_ood,
        )
    if str(seeds) == WORDNET:
        return [wordnet_source(selection, instruction=instruction, exclude=excluded, hold_out_ood=hold_out_ood)]
    path = Path(seeds)
    if path.is_dir():
        return folder_sources(
            path, tasks, exclude=excluded, corpus_path=corpus_path, instruction=instruction, selection=selection
        )
    if path.is_file():
        if not tasks or len(tasks) != 1:
            raise SeedError(
                f"Seeds from the file {path} need exactly one task name (--tasks NAME) for their prompts "
                "and instruction."
            )
        documents = read_documents_jsonl(path)
        corpus_documents = read_documents_jsonl(corpus_path) if corpus_path else documents
        task = tasks[0]
        chosen, stats = selection.select(documents.items(), task=task, exclude_ids=excluded, corpus=corpus_documents)
        return [TaskSource(task, instruction or _instruction_for(task), chosen, corpus_documents, stats)]
    raise SeedError(f"--seeds {seeds!r}: not 'offline', 'wordnet', a folder in the BRIGHT layout, or a JSONL file.")


def wordnet_source(
    selection: SeedSelection, *, instruction: str | None, exclude: Set[str], hold_out_ood: bool
) -> TaskSource:
    """The ``wordnet_science`` task: seeds and corpus are :func:`wordnet_documents`.

    With ``hold_out_ood``, definitions of a concept named in a concept the out-of-domain validation
    (``champ_concepts_ood``) holds out are dropped from seeds and corpus, so that validation stays out of domain.
    """
    corpus = wordnet_documents()
    if hold_out_ood:
        from reasonembed_rag.evaluation.offline import champ_ood_rows, champ_rows

        held_out = set(champ_ood_rows()[2])
        texts = [row["content"] for row in champ_rows()[1] if row["id"] in held_out]
        banned = names_in(corpus, texts)
        corpus = {doc_id: text for doc_id, text in corpus.items() if doc_id not in banned}
    seeds, stats = selection.select(corpus.items(), task=WORDNET_TASK, exclude_ids=set(exclude), corpus=corpus)
    return TaskSource(WORDNET_TASK, instruction or WORDNET_INSTRUCTION, seeds, corpus, stats)
