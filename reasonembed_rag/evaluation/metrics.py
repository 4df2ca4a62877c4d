"""Scoring exactly as BRIGHT's official scorer counts: excluded ids removed before ranking, top 1000 kept,
pytrec_eval ``ndcg_cut.10`` (plus recall@10 and recall@100), macro-averaged over queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

KEEP_TOP = 1000
"""Hits kept per query after dropping excluded ids (BRIGHT's official value; FlagEmbedding keeps 2000)."""

METRICS = {"ndcg@10": "ndcg_cut_10", "recall@10": "recall_10", "recall@100": "recall_100"}


def drop_excluded(
    run: Mapping[str, Mapping[str, float]], excluded: Mapping[str, Sequence[str]], *, keep: int = KEEP_TOP
) -> dict[str, dict[str, float]]:
    """Remove each query's excluded ids, then keep its ``keep`` best hits."""
    cleaned = {}
    for query_id, hits in run.items():
        banned = set(excluded.get(query_id, ()))
        kept = sorted(((doc, s) for doc, s in hits.items() if doc not in banned), key=lambda x: -x[1])[:keep]
        cleaned[query_id] = dict(kept)
    return cleaned


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    excluded: Mapping[str, Sequence[str]] | None = None,
    *,
    keep: int = KEEP_TOP,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score a run: (mean metrics, per-query metrics). Queries with no hits count as zero.

    Ties are broken by pytrec_eval itself (by document id), as in the official scorer.
    """
    import pytrec_eval

    cleaned = drop_excluded(run, excluded or {}, keep=keep)
    for query_id in qrels:
        cleaned.setdefault(query_id, {})
    evaluator = pytrec_eval.RelevanceEvaluator(
        {q: dict(v) for q, v in qrels.items()}, {"ndcg_cut.10", "recall.10,100"}
    )
    per_query_raw = evaluator.evaluate({q: hits for q, hits in cleaned.items() if q in qrels})
    per_query = {
        q: {name: float(values.get(key, 0.0)) for name, key in METRICS.items()} for q, values in per_query_raw.items()
    }
    for query_id in qrels:
        per_query.setdefault(query_id, dict.fromkeys(METRICS, 0.0))
    count = max(len(per_query), 1)
    mean = {name: sum(v[name] for v in per_query.values()) / count for name in METRICS}
    return mean, per_query
