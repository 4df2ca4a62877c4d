"""The tasks a ``--data`` value names: ``offline`` (the packaged offline tasks), a BRIGHT-layout folder, or a Hub
dataset id such as ``xlangai/BRIGHT``; optionally with reasoning-expanded queries."""

from __future__ import annotations

from pathlib import Path

from ..models import cache_dir
from .data import RetrievalTask, TaskDataError, list_folder_tasks, load_folder_task, load_hub_task, read_rows
from .offline import OFFLINE_TASKS, build_offline_tasks

OFFLINE = "offline"
"""The ``--data`` value for the packaged offline tasks."""


def offline_data_root() -> Path:
    """Where the offline tasks are written (built on first use)."""
    return build_offline_tasks(cache_dir() / "offline-tasks")


def load_tasks(
    data: str,
    tasks: list[str] | None,
    *,
    long: bool = False,
    reasoning_queries: str | None = None,
    instruction: str | None = None,
) -> list[RetrievalTask]:
    """Tasks from ``offline`` (the packaged offline tasks), a BRIGHT-layout folder, or a Hub dataset id."""
    root: Path | None = offline_data_root() if data == OFFLINE else Path(data).expanduser()
    if root is not None and root.is_dir():
        # The offline root also holds the TRAIN side and the out-of-domain validation: named with --tasks only.
        names = tasks or (list(OFFLINE_TASKS) if data == OFFLINE else list_folder_tasks(root))
        if not names:
            raise TaskDataError(f"No tasks under {root}: expected ROOT/<task>/examples.jsonl and documents.jsonl.")
        loaded = [load_folder_task(root, name, long=long, instruction=instruction) for name in names]
        if reasoning_queries:
            for task in loaded:
                _use_reasoning_queries(task, root / task.name, reasoning_queries)
        return loaded
    if "/" in data and not data.startswith((".", "/", "~")):
        from ..instructions import BRIGHT_TASKS

        return [
            load_hub_task(name, long=long, reasoning_queries=reasoning_queries, instruction=instruction, repo=data)
            for name in (tasks or list(BRIGHT_TASKS))
        ]
    raise TaskDataError(f"--data {data!r} is neither a folder nor a Hub dataset id (e.g. xlangai/BRIGHT).")


def _use_reasoning_queries(task: RetrievalTask, folder: Path, name: str) -> None:
    """Use reasoning-expanded query texts: ``<task>/<name>.jsonl`` (id, query) or the ``reasoning`` field."""
    own = folder / f"{name}.jsonl"
    if own.exists():
        texts = {str(row["id"]): row["query"] for _, row in read_rows(own, fields=("id", "query"))}
    else:
        texts = {q.id: q.reasoning for q in task.queries if q.reasoning}
    missing = [q.id for q in task.queries if q.id not in texts]
    if missing:
        raise TaskDataError(
            f"Task {task.name}: no {name} reasoning query for {len(missing)} queries (first: {missing[0]!r}); "
            f"provide {own} with id and query fields."
        )
    for query in task.queries:
        query.text = texts[query.id]
