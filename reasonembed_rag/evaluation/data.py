"""BRIGHT-style retrieval tasks: loading and validating queries, gold labels and corpora.

Three sources, one :class:`RetrievalTask`:

* a BRIGHT-layout folder (``ROOT/<task>/examples.jsonl`` + ``documents.jsonl``; DESIGN.md),
* BRIGHT's example rows as redistributed by Anserini (``topics.bright-<task>-original.jsonl.gz``, list fields
  written as Python literals, hyphenated task names) - queries and gold labels only,
* the Hugging Face dataset ``xlangai/BRIGHT`` (needs the Hub).

Nothing here embeds or scores.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..instructions import BRIGHT_INSTRUCTIONS, BRIGHT_LONG_INSTRUCTIONS, EXTRA_INSTRUCTIONS, normalize_task
from ..jsonl import read_jsonl


class TaskDataError(ValueError):
    """A task folder or row is malformed; the message names the task, the row and the field."""


@dataclass
class Query:
    id: str
    text: str
    gold_ids: list[str]
    excluded_ids: list[str] = field(default_factory=list)
    reasoning: str | None = None
    gold_answer: str | None = None


@dataclass
class RetrievalTask:
    """One task: queries with gold ids, a corpus, and the query instruction."""

    name: str
    queries: list[Query]
    documents: dict[str, str]
    instruction: str | None

    @property
    def qrels(self) -> dict[str, dict[str, int]]:
        """Gold labels in pytrec_eval's form: ``{query_id: {doc_id: 1}}``."""
        return {q.id: {doc: 1 for doc in q.gold_ids} for q in self.queries}


def _as_list(value: object, *, where: str) -> list[str]:
    """A list of ids from a list or its Python/JSON literal; ``["N/A"]`` and empty mean none."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value
        try:
            value = ast.literal_eval(text) if text.strip() else []  # Anserini writes Python list literals
        except (ValueError, SyntaxError) as error:
            raise TaskDataError(f"{where}: expected a list of ids, got {text[:80]!r}.") from error
    if not isinstance(value, list | tuple) or not all(isinstance(v, str | int) for v in value):
        raise TaskDataError(f"{where}: expected a list of ids, got {type(value).__name__}.")
    ids = [str(v) for v in value]
    return [] if ids == ["N/A"] else ids


def _optional_text(value: object) -> str | None:
    return None if value in (None, "", "N/A", "empty") else str(value)


def parse_query(row: object, *, task: str, where: str, long: bool = False) -> Query:
    """Validate one BRIGHT example row."""
    if not isinstance(row, dict):
        raise TaskDataError(f"{where}: expected a JSON object, got {type(row).__name__}.")
    for name in ("id", "query"):
        if name not in row:
            raise TaskDataError(f"{where}: missing field {name!r} (task {task}).")
    if not isinstance(row["query"], str):
        raise TaskDataError(f"{where}: field 'query' must be a string (task {task}).")
    gold_field = "gold_ids_long" if long else "gold_ids"
    if gold_field not in row:
        raise TaskDataError(f"{where}: missing field {gold_field!r} (task {task}).")
    return Query(
        id=str(row["id"]),
        text=row["query"],
        gold_ids=_as_list(row[gold_field], where=f"{where} field {gold_field!r}"),
        excluded_ids=_as_list(row.get("excluded_ids"), where=f"{where} field 'excluded_ids'"),
        reasoning=_optional_text(row.get("reasoning")),
        gold_answer=_optional_text(row.get("gold_answer")),
    )


def read_rows(path: Path, *, fields: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """:func:`reasonembed_rag.jsonl.read_jsonl` raising :class:`TaskDataError` (``file:line`` and the problem)."""
    return read_jsonl(path, fields=fields, error=TaskDataError)


def default_instruction(task: str, *, long: bool = False) -> str | None:
    name = normalize_task(task)
    table = BRIGHT_LONG_INSTRUCTIONS if long else {**BRIGHT_INSTRUCTIONS, **EXTRA_INSTRUCTIONS}
    return table.get(name)


def _queries(rows: Iterable[tuple[int, object]], *, task: str, source: Path, long: bool) -> list[Query]:
    queries, seen = [], set()
    for number, row in rows:
        query = parse_query(row, task=task, where=f"{source}:{number}", long=long)
        if query.id in seen:
            raise TaskDataError(f"{source}:{number}: duplicate query id {query.id!r} (task {task}).")
        seen.add(query.id)
        if query.gold_ids:
            queries.append(query)
    return queries


def load_documents(path: Path, *, task: str) -> dict[str, str]:
    documents: dict[str, str] = {}
    for number, row in read_rows(path, fields=("id", "content")):
        where = f"{path}:{number}"
        doc_id = str(row["id"])
        if doc_id in documents:
            raise TaskDataError(f"{where}: duplicate document id {doc_id!r} (task {task}).")
        if not isinstance(row["content"], str):
            raise TaskDataError(f"{where}: field 'content' must be a string (task {task}).")
        documents[doc_id] = row["content"]
    return documents


def check_gold_in_corpus(task: RetrievalTask) -> None:
    for query in task.queries:
        missing = [doc for doc in query.gold_ids if doc not in task.documents]
        if missing:
            raise TaskDataError(
                f"Task {task.name}, query {query.id!r}: gold ids not in the corpus: {', '.join(missing[:5])}."
            )


def list_folder_tasks(root: str | Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        raise TaskDataError(f"No task folder at {root}. Expected ROOT/<task>/examples.jsonl and documents.jsonl.")
    return sorted(p.name for p in root.iterdir() if (p / "examples.jsonl").exists())


def load_folder_task(
    root: str | Path, task: str, *, long: bool = False, instruction: str | None = None
) -> RetrievalTask:
    """Load ``ROOT/<task>/`` in the BRIGHT layout (see DESIGN.md)."""
    folder = Path(root) / task
    examples = folder / "examples.jsonl"
    documents_file = folder / ("long_documents.jsonl" if long else "documents.jsonl")
    for needed in (examples, documents_file):
        if not needed.exists():
            available = ", ".join(list_folder_tasks(root)) if Path(root).is_dir() else "none"
            raise TaskDataError(f"Task {task!r}: {needed} is missing. Tasks found under {root}: {available}.")
    queries = _queries(read_rows(examples), task=task, source=examples, long=long)
    if instruction is None:
        own = folder / "instruction.txt"
        instruction = own.read_text(encoding="utf-8").strip() if own.exists() else default_instruction(task, long=long)
    result = RetrievalTask(task, queries, load_documents(documents_file, task=task), instruction)
    check_gold_in_corpus(result)
    return result


def load_anserini_topics(path: str | Path, *, long: bool = False) -> tuple[str, list[Query]]:
    """BRIGHT example rows from ``topics.bright-<task>-original.jsonl.gz``: (BRIGHT task name, queries)."""
    path = Path(path)
    stem = path.name.removeprefix("topics.bright-").split("-original")[0]
    task = normalize_task(stem)
    return task, _queries(read_rows(path), task=task, source=path, long=long)


def load_hub_task(
    task: str,
    *,
    long: bool = False,
    reasoning_queries: str | None = None,
    instruction: str | None = None,
    repo: str = "xlangai/BRIGHT",
) -> RetrievalTask:
    """Load one task from the Hugging Face dataset (needs the Hub)."""
    try:
        from datasets import load_dataset
    except ImportError as error:
        raise TaskDataError("Loading BRIGHT from the Hub needs the datasets package: pip install datasets") from error
    name = normalize_task(task)
    try:
        examples = load_dataset(repo, reasoning_queries or "examples", split=name)
        corpus = load_dataset(repo, "long_documents" if long else "documents", split=name)
    except Exception as error:  # noqa: BLE001 - datasets raises many types for offline / missing splits
        raise TaskDataError(
            f"Could not load {repo} task {name!r} from the Hugging Face Hub ({type(error).__name__}: {error}). "
            "Offline? Use a BRIGHT-layout folder with --data DIR instead."
        ) from error
    queries = _queries(((i + 1, dict(row)) for i, row in enumerate(examples)), task=name, source=Path(repo), long=long)
    documents = {str(row["id"]): row["content"] for row in corpus}
    result = RetrievalTask(name, queries, documents, instruction or default_instruction(name, long=long))
    check_gold_in_corpus(result)
    return result
