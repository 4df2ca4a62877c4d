"""Task instructions for queries, and the query formats models were trained with.

BRIGHT's twelve per-task instructions are kept here as data, exactly as ReasonEmbed used them
(short-document variant, and the long-document variant for the StackExchange tasks and pony).
Offline tasks that ship with this project add their own entries to :data:`EXTRA_INSTRUCTIONS`.
Nothing here loads a model.
"""

from __future__ import annotations

from collections.abc import Mapping

INSTRUCT_QUERY_FORMAT = "Instruct: {instruction}\nQuery: {query}"
"""The ReasonEmbed (and Qwen3-Embedding style) query format."""

BARE_QUERY_FORMAT = "{query}"
"""For models trained without instructions (e.g. all-MiniLM-L6-v2): the query text alone."""

BRIGHT_INSTRUCTIONS: dict[str, str] = {
    "biology": "Given a Biology post, retrieve relevant passages that help answer the post.",
    "earth_science": "Given an Earth Science post, retrieve relevant passages that help answer the post.",
    "economics": "Given an Economics post, retrieve relevant passages that help answer the post.",
    "psychology": "Given a Psychology post, retrieve relevant passages that help answer the post.",
    "robotics": "Given a Robotics post, retrieve relevant passages that help answer the post.",
    "stackoverflow": "Given a Stack Overflow post, retrieve relevant passages that help answer the post.",
    "sustainable_living": "Given a Sustainable Living post, retrieve relevant passages that help answer the post.",
    "leetcode": "Given a Coding problem, retrieve relevant examples that help answer the problem.",
    "pony": "Given a Pony question, retrieve relevant passages that help answer the question.",
    "aops": "Given a Math problem, retrieve relevant examples that help answer the problem.",
    "theoremqa_questions": "Given a Math problem, retrieve relevant examples that help answer the problem.",
    "theoremqa_theorems": "Given a Math problem, retrieve relevant theorems that help answer the problem.",
}
"""BRIGHT task -> query instruction (short documents)."""

_LONG_DOCUMENT_TASKS = (
    "biology",
    "earth_science",
    "economics",
    "psychology",
    "robotics",
    "stackoverflow",
    "sustainable_living",
    "pony",
)

BRIGHT_LONG_INSTRUCTIONS: dict[str, str] = {
    task: BRIGHT_INSTRUCTIONS[task].replace("passages", "documents") for task in _LONG_DOCUMENT_TASKS
}
"""BRIGHT task -> query instruction for the long-document setting (StackExchange tasks and pony only)."""

EXTRA_INSTRUCTIONS: dict[str, str] = {
    "champ_concepts": "Given a Math problem, retrieve relevant concepts and theorems that help answer the problem.",
}
"""Offline tasks built by this project from data inside packages."""

BRIGHT_TASKS: tuple[str, ...] = tuple(BRIGHT_INSTRUCTIONS)


def normalize_task(task: str) -> str:
    """Return BRIGHT's spelling of a task name: ``earth-science`` and ``Earth_Science`` become ``earth_science``."""
    return task.strip().lower().replace("-", "_")


def get_instruction(task: str, *, long: bool = False, extra: Mapping[str, str] | None = None) -> str:
    """Look up the query instruction for a task.

    Args:
        task: A BRIGHT task (``biology``, ``theoremqa-theorems``, ...), an offline task of this project, or a task
            that ``extra`` defines (a trained model's own instructions come in this way).
        long: Use BRIGHT's long-document variant (only defined for the StackExchange tasks and pony).
        extra: Task instructions that take precedence over the built-in ones.

    Raises:
        ValueError: the task is unknown, or has no long-document variant.

    Example:
        >>> get_instruction("theoremqa-theorems")
        'Given a Math problem, retrieve relevant theorems that help answer the problem.'
    """
    name = normalize_task(task)
    if extra:
        own = {normalize_task(k): v for k, v in extra.items()}
        if name in own and not long:
            return own[name]
    if long:
        if name in BRIGHT_LONG_INSTRUCTIONS:
            return BRIGHT_LONG_INSTRUCTIONS[name]
        raise ValueError(
            f"Task {task!r} has no long-document instruction; the long setting exists for "
            f"{', '.join(BRIGHT_LONG_INSTRUCTIONS)}. Drop long=True or pass instruction=... yourself."
        )
    table = {**BRIGHT_INSTRUCTIONS, **EXTRA_INSTRUCTIONS}
    if name in table:
        return table[name]
    known = sorted({*table, *(normalize_task(k) for k in (extra or {}))})
    raise ValueError(f"Unknown task {task!r}. Known tasks: {', '.join(known)}. Or pass instruction='...' instead.")


def format_query(query: str, instruction: str | None, query_format: str) -> str:
    """Apply a model's query format. Without an instruction the query is returned unchanged.

    Newlines are kept: code and math depend on them.

    Example:
        >>> format_query("2+2?", "Given a Math problem, retrieve ...", INSTRUCT_QUERY_FORMAT)
        'Instruct: Given a Math problem, retrieve ...\\nQuery: 2+2?'
    """
    if "{instruction}" not in query_format:
        return query_format.format(query=query)
    if instruction is None:
        return query
    return query_format.format(instruction=instruction, query=query)
