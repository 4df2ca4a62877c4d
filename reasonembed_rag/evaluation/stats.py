"""How sure a score is: a bootstrap confidence interval over queries, and a paired test between two systems.

Both treat the queries as the sample (a system's score is the mean of its per-query scores), as IR evaluation does:

* :func:`bootstrap_ci` - the percentile bootstrap interval of the mean (``scipy.stats.bootstrap``, queries resampled
  with replacement, a fixed seed so a report is reproducible);
* :func:`paired_test` - the two-sided paired Student's t-test on per-query differences (``scipy.stats.ttest_rel``,
  the test ranx's ``compare`` uses by default); identical score lists give p = 1.
* :func:`compare_cells` - both at once for a set of systems against one baseline, as the demo reports them.

The p-values are not corrected for multiple comparisons; reports that show many say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ALPHA", "CONFIDENCE", "RESAMPLES", "bootstrap_ci", "compare_cells", "paired_test"]

CONFIDENCE = 0.95
RESAMPLES = 10_000
ALPHA = 0.05
"""A difference is called significant when the paired test's p-value is below this."""


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap confidence interval of the mean of ``values`` (one value per query).

    Raises:
        ValueError: ``values`` is empty.
    """
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("A bootstrap interval needs at least one value (one per query); got none.")
    if np.all(data == data[0]):  # every resample has the same mean; scipy would warn about a degenerate sample
        return float(data[0]), float(data[0])
    result = bootstrap(
        (data,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_test(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sided p-value of the paired t-test between per-query scores ``a`` and ``b`` (same queries, same order).

    Raises:
        ValueError: The two lists differ in length or are shorter than two.
    """
    from scipy.stats import ttest_rel

    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"A paired test needs two equally long lists (2+ scores); got {len(a)} and {len(b)}.")
    if all(x == y for x, y in zip(a, b, strict=True)):
        return 1.0
    p = float(ttest_rel(a, b).pvalue)
    return 1.0 if math.isnan(p) else p  # nan only from degenerate input (e.g. infinite scores)


def compare_cells(
    per_query: Mapping[str, Mapping[str, float]], baseline: str | None, *, alpha: float = ALPHA
) -> dict[str, dict[str, Any]]:
    """Mean, bootstrap CI and (against ``baseline``) the paired test for each system's per-query scores.

    Args:
        per_query: ``{system: {query_id: score}}``; every system must score the same queries.
        baseline: The system the others are tested against (None, or absent from ``per_query``: no tests).
        alpha: Significance level.

    Returns:
        ``{system: {"mean", "ci_low", "ci_high", "queries", and when tested "delta", "p", "significant"}}``.
    """
    reference = per_query.get(baseline) if baseline is not None else None
    cells: dict[str, dict[str, Any]] = {}
    for system, scores in per_query.items():
        ids = sorted(scores)
        values = [scores[q] for q in ids]
        low, high = bootstrap_ci(values)
        cell: dict[str, Any] = {"mean": sum(values) / len(values), "ci_low": low, "ci_high": high, "queries": len(ids)}
        if reference is not None and system != baseline:
            if sorted(reference) != ids:
                raise ValueError(f"{system!r} and the baseline {baseline!r} scored different queries; pair them.")
            base = [reference[q] for q in ids]
            p = paired_test(values, base)
            cell.update(delta=cell["mean"] - sum(base) / len(base), p=p, significant=p < alpha)
        cells[system] = cell
    return cells
