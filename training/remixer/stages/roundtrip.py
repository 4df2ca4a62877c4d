"""Round-trip consistency filter (``--round-trip K``): a synthetic query is kept only when it leads back to where it
came from, judged twice.

1. **Retrieval** (:func:`check_retrieval`, after mining): an independent retriever (``--round-trip-retriever``, BM25
   by default; never the model being trained) ranks the task's corpus for the query, and the seed document (or, for
   a seed that is not in the corpus, one of its ``targets``: a CHAMP problem's gold concepts) must be in its top K.
2. **Annotation** (:func:`check_agreement`, after stage 3): the annotator must score that document at least
   ``positive_threshold`` (with ``--logit-calibration query``, calibrated against the query's mined candidates).

A kept query's positives are the documents that passed both checks; its negatives are its mined candidates that
the annotator scored below the threshold, so the candidates it judged relevant are masked (neither positive nor
negative) and the targets are never negatives. The verdict of every query is recorded in
``work/<task>/round_trip.jsonl`` (``kept``, ``no_target``, ``retriever_miss``, ``annotator_disagrees``, with the
ranks and scores) and counted in ``summary.json``. This replaces the plain labelling of stage 4, whose positives
come from the annotator alone (near chance for a small local LLM: AUC 0.55-0.63 against CHAMP's gold).
"""

from __future__ import annotations

from ..records import content_hash
from .annotate import Pair, label_scores
from .context import SyntheticQuery, TaskContext

VERDICTS = ("kept", "no_target", "retriever_miss", "annotator_disagrees")


def targets_of(ctx: TaskContext, query: SyntheticQuery) -> tuple[str, ...]:
    """The corpus documents ``query`` must lead back to (its seed's, see :attr:`..seeds.Seed.round_trip_targets`)."""
    return tuple(doc for doc in ctx.seeds[query.seed].round_trip_targets if doc in ctx.source.corpus)


def check_retrieval(ctx: TaskContext, queries: list[SyntheticQuery]) -> list[SyntheticQuery]:
    """Record the queries whose targets the retriever misses (or that have none); return the others, undecided."""
    k = ctx.settings.round_trip_k
    todo = [query for query in queries if query.hash not in ctx.files.round_trip]
    ctx.bars.grow("round_trip", len(queries))
    ctx.bars.step("round_trip", len(queries) - len(todo))
    searchable = []
    for query in todo:
        if targets_of(ctx, query):
            searchable.append(query)
        else:
            ctx.files.round_trip.append({"key": query.hash, "status": "no_target"})
            ctx.bars.step("round_trip")
    if not searchable:
        return []
    rankings = ctx.checker().search([query.text for query in searchable], min(k, len(ctx.source.corpus)))
    passed = []
    for query, ranking in zip(searchable, rankings, strict=True):
        ranks = {doc: ranking.index(doc) + 1 for doc in targets_of(ctx, query) if doc in ranking}
        if not ranks:
            ctx.files.round_trip.append(
                {"key": query.hash, "status": "retriever_miss", "targets": list(targets_of(ctx, query))}
            )
            ctx.bars.step("round_trip")
            continue
        ctx.round_trip_ranks[query.hash] = ranks
        passed.append(query)
    return passed


def target_pairs(ctx: TaskContext, queries: list[SyntheticQuery]) -> list[Pair]:
    """The (query, target) pairs the annotator must judge for the queries that passed the retrieval check."""
    return [
        (query, doc, content_hash(query.hash, ctx.corpus_hashes[doc]))
        for query in queries
        for doc in ctx.round_trip_ranks.get(query.hash, {})
    ]


def check_agreement(ctx: TaskContext, queries: list[SyntheticQuery]) -> None:
    """Record ``kept`` or ``annotator_disagrees`` for each query that passed the retrieval check and is annotated."""
    threshold = ctx.settings.positive_threshold
    for query in queries:
        ranks = ctx.round_trip_ranks.get(query.hash)
        mined = ctx.files.candidates.get(query.hash)
        if ranks is None or mined is None or query.hash in ctx.files.round_trip:
            continue
        judged = list(dict.fromkeys([*ranks, *mined["candidates"]]))
        annotations = [ctx.files.annotations.get(content_hash(query.hash, ctx.corpus_hashes[doc])) for doc in judged]
        if any(annotation is None for annotation in annotations):
            continue  # a failed request: a later run annotates it, then decides
        calibrated = label_scores([a for a in annotations if a is not None], ctx.settings.logit_calibration)
        scores = dict(zip(judged, calibrated, strict=True))
        positives = [doc for doc in sorted(ranks, key=ranks.__getitem__) if (scores[doc] or 0) >= threshold]
        ctx.files.round_trip.append(
            {
                "key": query.hash,
                "status": "kept" if positives else "annotator_disagrees",
                "ranks": ranks,
                "positives": positives,
                "scores": scores,
            }
        )
        ctx.bars.step("round_trip")


def round_trip_labels(ctx: TaskContext, query: SyntheticQuery) -> tuple[list[str], list[str], int] | None:
    """(positives, negatives, masked candidates) of a kept query; None when it was dropped or is undecided."""
    verdict = ctx.files.round_trip.get(query.hash)
    mined = ctx.files.candidates.get(query.hash)
    if verdict is None or verdict["status"] != "kept" or mined is None:
        return None
    threshold = ctx.settings.positive_threshold
    scores = verdict["scores"]
    targets = set(targets_of(ctx, query))
    candidates = [doc for doc in mined["candidates"] if doc not in targets and scores.get(doc) is not None]
    negatives = [doc for doc in candidates if scores[doc] < threshold]
    return list(verdict["positives"]), negatives, len(candidates) - len(negatives)
