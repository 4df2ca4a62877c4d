"""Scoring exactly as BRIGHT's official scorer counts: excluded ids removed before ranking, top 1000 kept,
pytrec_eval ``ndcg_cut.10`` (plus recall@10 and recall@100), macro-averaged over queries.

Extra cutoffs (``k_values``) add nDCG, recall, MAP and MRR at each cutoff, keyed ``ndcg@k``, ``recall@k``,
``map@k`` and ``mrr@k``, plus ``map`` and ``mrr`` over every kept hit: all from pytrec_eval except MRR at a cutoff,
which trec_eval lacks and is counted here in trec_eval's own ranking order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

KEEP_TOP = 1000
"""Hits kept per query after dropping excluded ids (BRIGHT's official value; FlagEmbedding keeps 2000)."""

METRICS = {"ndcg@10": "ndcg_cut_10", "recall@10": "recall_10", "recall@100": "recall_100"}
"""The metrics every evaluation reports (the CONTRACT keys of results.json) -> pytrec_eval's names."""


def parse_k_values(text: str) -> list[int]:
    """``"1,5,10"`` -> ``[1, 5, 10]`` (sorted, unique, each at least 1).

    Raises:
        ValueError: A part is not a positive integer.
    """
    values = set()
    for part in text.split(","):
        if not part.strip().isdigit() or int(part) < 1:
            raise ValueError(f"k values must be positive integers separated by commas, e.g. 1,10,100; got {text!r}.")
        values.add(int(part))
    return sorted(values)


def metric_names(k_values: Sequence[int] = ()) -> list[str]:
    """The metric keys an evaluation with these extra cutoffs reports: :data:`METRICS` first, then per cutoff
    ``ndcg@k``, ``recall@k``, ``map@k``, ``mrr@k``, then ``map`` and ``mrr`` (none of the extras without cutoffs)."""
    names = list(METRICS)
    for measure in ("ndcg", "recall", "map", "mrr"):
        names += [f"{measure}@{k}" for k in k_values if f"{measure}@{k}" not in names]
    return names + (["map", "mrr"] if k_values else [])


def _pytrec_measures(k_values: Sequence[int]) -> tuple[set[str], dict[str, str]]:
    """pytrec_eval measure specs and our key -> pytrec_eval's per-query key (MRR at a cutoff is not among them)."""
    cuts = sorted({10, 100, *k_values})
    keys = dict(METRICS)
    for k in k_values:
        keys.update({f"ndcg@{k}": f"ndcg_cut_{k}", f"recall@{k}": f"recall_{k}", f"map@{k}": f"map_cut_{k}"})
    if k_values:
        keys.update({"map": "map", "mrr": "recip_rank"})
    listed = ",".join(map(str, cuts))
    return {f"ndcg_cut.{listed}", f"recall.{listed}", f"map_cut.{listed}", "map", "recip_rank"}, keys


def reciprocal_rank_at(hits: Mapping[str, float], relevant: Mapping[str, int], k: int) -> float:
    """1 / rank of the first relevant hit within the top ``k`` (0 if none), ranked as trec_eval ranks: score
    descending, ties by document id descending."""
    ranked = sorted(sorted(hits.items(), reverse=True), key=lambda hit: -hit[1])[:k]
    return next((1.0 / rank for rank, (doc, _) in enumerate(ranked, 1) if relevant.get(doc, 0) > 0), 0.0)


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
    k_values: Sequence[int] = (),
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score a run: (mean metrics, per-query metrics), keyed as :func:`metric_names` lists them. Queries with no
    hits count as zero.

    Ties are broken by pytrec_eval itself (by document id), as in the official scorer.

    Args:
        k_values: Extra cutoffs: nDCG, recall, MAP and MRR at each, plus MAP and MRR over every kept hit.
    """
    import pytrec_eval

    cleaned = drop_excluded(run, excluded or {}, keep=keep)
    for query_id in qrels:
        cleaned.setdefault(query_id, {})
    measures, keys = _pytrec_measures(k_values)
    evaluator = pytrec_eval.RelevanceEvaluator({q: dict(v) for q, v in qrels.items()}, measures)
    per_query_raw = evaluator.evaluate({q: hits for q, hits in cleaned.items() if q in qrels})
    names = metric_names(k_values)
    per_query = {}
    for query_id in qrels:
        values = per_query_raw.get(query_id, {})
        scores = {name: float(values.get(key, 0.0)) for name, key in keys.items()}
        for k in k_values:
            scores[f"mrr@{k}"] = reciprocal_rank_at(cleaned[query_id], qrels[query_id], k)
        per_query[query_id] = {name: scores[name] for name in names}
    count = max(len(per_query), 1)
    mean = {name: sum(v[name] for v in per_query.values()) / count for name in names}
    return mean, per_query
