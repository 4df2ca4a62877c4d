"""Evaluation results as a Markdown table, beside the published numbers where known."""

from __future__ import annotations

from .metrics import METRICS
from .published import published
from .runner import TaskResult


def format_table(results: list[TaskResult], *, title: str | None = None) -> str:
    """A Markdown table: per task nDCG@10 / recall@10 / recall@100 (x100), published nDCG@10 where known."""
    lines = [f"### {title}", ""] if title else []
    lines += [
        "| task | model | via | nDCG@10 | published | R@10 | R@100 | queries | seconds |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        reference = published(r.model, r.task)
        lines.append(
            f"| {r.task} | {r.model} | {r.via} | {100 * r.metrics['ndcg@10']:.1f} | "
            f"{'' if reference is None else f'{reference:.1f}'} | {100 * r.metrics['recall@10']:.1f} | "
            f"{100 * r.metrics['recall@100']:.1f} | {r.queries} | {r.seconds:.1f} |"
        )
    if len(results) > 1 and len({(r.model, r.via) for r in results}) == 1:  # a task mean, never across models
        mean = {n: sum(r.metrics[n] for r in results) / len(results) for n in ("ndcg@10", "recall@10", "recall@100")}
        lines.append(
            f"| **mean** | | | {100 * mean['ndcg@10']:.1f} | | {100 * mean['recall@10']:.1f} | "
            f"{100 * mean['recall@100']:.1f} | | |"
        )
    return "\n".join(lines + _cutoff_lines(results))


def _cutoff_lines(results: list[TaskResult]) -> list[str]:
    """A second table with the metrics beyond the main three (``--k-values``), x100, when the results have any."""
    names = [n for n in (results[0].metrics if results else ()) if n not in METRICS]
    names = [n for n in names if all(n in r.metrics for r in results)]
    if not names:
        return []
    lines = ["", f"| task | model | via | {' | '.join(names)} |", "|---|---|---|" + "---:|" * len(names)]
    for r in results:
        lines.append(
            f"| {r.task} | {r.model} | {r.via} | " + " | ".join(f"{100 * r.metrics[n]:.1f}" for n in names) + " |"
        )
    if len(results) > 1 and len({(r.model, r.via) for r in results}) == 1:
        means = [sum(r.metrics[n] for r in results) / len(results) for n in names]
        lines.append("| **mean** | | | " + " | ".join(f"{100 * m:.1f}" for m in means) + " |")
    return lines
