"""Published BRIGHT nDCG@10 (x100, original queries, short documents), for tables next to our own numbers.

Sources: the ReasonEmbed paper (arXiv 2510.08252) and the baselines it reports.
"""

from __future__ import annotations

from ..instructions import BRIGHT_TASKS

_TASKS = BRIGHT_TASKS

_ROWS = {
    "bm25": (18.9, 27.2, 14.9, 12.5, 13.6, 18.4, 15.0, 24.4, 7.9, 6.2, 10.4, 4.9),
    "qwen3-embedding-8b": (21.0, 33.0, 18.4, 26.1, 15.7, 19.4, 17.3, 33.8, 1.2, 9.4, 39.2, 39.3),
    "reasonir-8b": (26.2, 31.4, 23.3, 30.0, 18.0, 23.9, 20.5, 35.0, 10.5, 14.7, 31.9, 27.2),
    "diver-retriever-4b": (41.8, 43.7, 21.7, 35.3, 21.0, 21.2, 25.1, 37.6, 13.2, 10.7, 38.4, 37.3),
    "reason-embed-qwen3-4b": (55.4, 54.5, 34.9, 46.9, 34.0, 36.1, 37.4, 34.5, 13.6, 11.3, 41.4, 45.1),
    "reason-embed-qwen3-8b": (55.5, 56.6, 36.2, 47.4, 35.3, 36.6, 39.1, 33.6, 16.4, 12.5, 41.4, 47.2),
    "reason-embed-llama-3.1-8b": (55.4, 56.2, 35.2, 48.5, 32.1, 37.3, 41.1, 28.8, 16.8, 9.1, 37.9, 36.6),
}

PUBLISHED_NDCG10: dict[str, dict[str, float]] = {
    model: dict(zip(_TASKS, scores, strict=True)) for model, scores in _ROWS.items()
}
"""model alias -> BRIGHT task -> published nDCG@10 x 100."""

_ALIASES = {
    "hanhainebula/reason-embed-qwen3-8b-0928": "reason-embed-qwen3-8b",
    "hanhainebula/reason-embed-qwen3-4b-0928": "reason-embed-qwen3-4b",
    "hanhainebula/reason-embed-llama-3.1-8b-0928": "reason-embed-llama-3.1-8b",
}


def published(model: str, task: str) -> float | None:
    """The published nDCG@10 x 100 for this model and task, if there is one."""
    return PUBLISHED_NDCG10.get(_ALIASES.get(model, model.lower()), {}).get(task)
