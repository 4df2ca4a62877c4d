"""Pipelines compared with confidence: each model alone, + hybrid, + expansion, per task, as the demo reports them.

A :class:`Cell` is one pipeline (a model and a variant: :data:`VARIANTS`) scored on one task, with its per-query
nDCG@10. :func:`compare` gives every cell its mean, bootstrap 95% confidence interval over queries and, against a
baseline cell of the same task, the paired t-test (:mod:`.stats`); :func:`markdown_tables` and :func:`plot` show the
result, one table and one panel per task; :func:`best_pipeline` picks a pipeline on one task (the validation) only.
:func:`fused` makes a hybrid cell from a dense run and a BM25 run already made, so no query is embedded twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fusion import Hybrid, fuse
from .data import RetrievalTask
from .runner import TaskResult, score_run
from .stats import ALPHA, compare_cells

__all__ = ["METRIC", "VARIANTS", "Cell", "best_pipeline", "compare", "fused", "markdown_tables", "plot"]

VARIANTS = ("alone", "+hybrid", "+expansion", "+hybrid+expansion")
"""The pipelines built on each model: the model alone, fused with BM25, with LLM-expanded queries, and both."""
METRIC = "ndcg@10"


@dataclass
class Cell:
    """One pipeline (``model`` + ``variant``) scored on one task."""

    model: str
    variant: str
    result: TaskResult

    @property
    def task(self) -> str:
        return self.result.task

    @property
    def pipeline(self) -> str:
        """``model`` or ``model+hybrid`` ... (the variant ``alone`` adds nothing)."""
        return self.model if self.variant == "alone" else self.model + self.variant


def fused(task: RetrievalTask, dense: TaskResult, lexical: TaskResult, *, hybrid: Hybrid | None = None) -> TaskResult:
    """The hybrid result of two direct runs over ``task``: each query's dense and BM25 hits fused
    (:func:`~reasonembed_rag.fusion.fuse`) and scored. It ranks as ``evaluate_dense(..., hybrid=...)`` does when
    each run holds at least the fusion depth of hits (both searched the whole corpus, or ``depth`` documents), without
    embedding or searching again."""
    settings = hybrid or Hybrid()
    run = {}
    for query in task.queries:
        # Runs keep their ranked order; the stable sort only guards a run built in another order.
        dense_hits = sorted(dense.run.get(query.id, {}).items(), key=lambda hit: -hit[1])
        lexical_hits = sorted(lexical.run.get(query.id, {}).items(), key=lambda hit: -hit[1])
        run[query.id] = dict(fuse(dense_hits, lexical_hits, hybrid=settings))
    return score_run(task, run, model=dense.model + settings.label, via="direct")


def compare(cells: Sequence[Cell], baseline: str) -> list[dict[str, Any]]:
    """Each cell's mean nDCG@10, its bootstrap 95% interval, and the paired test against pipeline ``baseline`` on
    the same task (none for the baseline itself, or when the task has no such cell). Fractions in 0-1.

    Raises:
        ValueError: Two cells of one task name the same pipeline, or a variant is not in :data:`VARIANTS`.
    """
    rows: list[dict[str, Any]] = []
    for task in dict.fromkeys(cell.task for cell in cells):
        mine = [cell for cell in cells if cell.task == task]
        per_query: dict[str, dict[str, float]] = {}
        for cell in mine:
            if cell.variant not in VARIANTS:
                raise ValueError(f"Unknown variant {cell.variant!r}; use one of {', '.join(VARIANTS)}.")
            if cell.pipeline in per_query:
                raise ValueError(f"Pipeline {cell.pipeline!r} appears twice on task {task!r}.")
            per_query[cell.pipeline] = {q: scores[METRIC] for q, scores in cell.result.per_query.items()}
        stats = compare_cells(per_query, baseline)
        for cell in mine:
            rows.append(
                {
                    "task": task,
                    "model": cell.model,
                    "variant": cell.variant,
                    "pipeline": cell.pipeline,
                    "baseline": baseline,
                    **stats[cell.pipeline],
                }
            )
    return rows


def best_pipeline(rows: Sequence[dict[str, Any]], task: str, *, variants: Sequence[str] = VARIANTS) -> dict[str, Any]:
    """The row with the highest mean on ``task`` among ``variants`` (choose on the validation task, never the test).

    Raises:
        ValueError: No row of ``task`` has one of ``variants``.
    """
    candidates = [row for row in rows if row["task"] == task and row["variant"] in variants]
    if not candidates:
        raise ValueError(f"No pipeline scored on task {task!r} with a variant among {list(variants)}.")
    return max(candidates, key=lambda row: row["mean"])


def _cell_text(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    text = f"{100 * row['mean']:.1f} [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"
    if row.get("significant"):
        text += " ↑" if row["delta"] > 0 else " ↓"
    return text


def markdown_tables(rows: Sequence[dict[str, Any]], titles: dict[str, str] | None = None) -> str:
    """One Markdown table per task: a row per model, a column per variant that any model has; cells are nDCG@10
    x100 with the bootstrap 95% interval, and an arrow where the paired test against the baseline is significant."""
    titles = titles or {}
    variants = [v for v in VARIANTS if any(row["variant"] == v for row in rows)]
    lines: list[str] = []
    for task in dict.fromkeys(row["task"] for row in rows):
        mine = {(row["model"], row["variant"]): row for row in rows if row["task"] == task}
        queries = next(iter(mine.values()))["queries"]
        lines += [f"**{titles.get(task, task)}** ({queries} queries)", ""]
        lines += ["| model | " + " | ".join(variants) + " |", "|---|" + "---:|" * len(variants)]
        for model in dict.fromkeys(model for model, _ in mine):
            lines.append(f"| `{model}` | " + " | ".join(_cell_text(mine.get((model, v))) for v in variants) + " |")
        lines.append("")
    baseline = rows[0]["baseline"] if rows else ""
    lines.append(
        f"nDCG@10 x100 [bootstrap 95% confidence interval over queries]. ↑/↓: significantly above/below `{baseline}` "
        f"on the same queries (paired t-test, p < {ALPHA}, not corrected for the number of comparisons); no arrow: "
        "the difference is not significant. p-values are in results.json."
    )
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: Path, titles: dict[str, str] | None = None) -> None:
    """Grouped bars with the bootstrap intervals as error bars: a panel per task, a group per model, a bar per
    variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = titles or {}
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    variants = [v for v in VARIANTS if any(row["variant"] == v for row in rows)]
    models = list(dict.fromkeys(row["model"] for row in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(7.0, 1.6 * len(models)) * len(tasks), 4.6), squeeze=False)
    width = 0.8 / len(variants)
    top = max(100 * row["ci_high"] for row in rows)
    for ax, task in zip(axes[0], tasks, strict=True):
        mine = {(row["model"], row["variant"]): row for row in rows if row["task"] == task}
        for offset, variant in enumerate(variants):
            found = [(i, mine[(m, variant)]) for i, m in enumerate(models) if (m, variant) in mine]
            if not found:
                continue
            means = [100 * row["mean"] for _, row in found]
            errors = [
                [mean - 100 * row["ci_low"] for mean, (_, row) in zip(means, found, strict=True)],
                [100 * row["ci_high"] - mean for mean, (_, row) in zip(means, found, strict=True)],
            ]
            positions = [i + (offset - (len(variants) - 1) / 2) * width for i, _ in found]
            bars = ax.bar(positions, means, width, yerr=errors, capsize=2, label=variant)
            ax.bar_label(bars, fmt="%.0f", fontsize=6, padding=1)
        ax.set_xticks(range(len(models)), models, fontsize=7, rotation=20, ha="right")
        ax.set_ylim(0, top * 1.12)
        ax.set_ylabel("nDCG@10 (x100)")
        ax.set_title(titles.get(task, task), fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Offline reasoning retrieval, bootstrap 95% intervals", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
