"""Stage 4, labels: score >= ``positive_threshold`` is a positive, below it a hard negative, unparseable skipped.
Queries with no positive or no negative are dropped; the others get a reasoning query (:mod:`.reasoning`) and become
training rows ``{prompt, query, reasoning_query, pos, neg}``."""

from __future__ import annotations

from ..parsing import reasoning_query
from ..records import content_hash
from .annotate import label_scores
from .context import SyntheticQuery, TaskContext
from .reasoning import write_reasoning


def label_queries(ctx: TaskContext, queries: list[SyntheticQuery]) -> None:
    """Label every fully annotated query not labelled yet; write the training rows.

    With the round-trip filter on, only its kept queries are labelled, with its positives and negatives
    (:func:`.roundtrip.round_trip_labels`).
    """
    from .roundtrip import round_trip_labels

    threshold = ctx.settings.positive_threshold
    labelled: list[tuple[SyntheticQuery, list[str], list[str]]] = []
    ctx.bars.grow("label", len(queries))
    for query in queries:
        digest = query.hash
        if digest in ctx.files.labels or digest in ctx.files.train:
            ctx.bars.step("label")
            continue
        mined = ctx.files.candidates.get(digest)
        if mined is None:
            continue
        annotations = [
            ctx.files.annotations.get(content_hash(digest, ctx.corpus_hashes[doc_id]))
            for doc_id in mined["candidates"]
        ]
        if ctx.settings.round_trip_k:
            decided = round_trip_labels(ctx, query)
            if decided is not None and decided[1]:
                labelled.append((query, decided[0], decided[1]))
            elif decided is not None:
                ctx.files.labels.append(
                    {"key": digest, "status": "no_negative", "positives": len(decided[0]), "negatives": 0}
                )
                ctx.bars.step("label")
            continue  # dropped by the round-trip filter (counted there), or not decided yet
        if any(annotation is None for annotation in annotations):
            continue  # a failed request: a later run annotates it, then labels the query
        scores = label_scores(
            [annotation for annotation in annotations if annotation is not None], ctx.settings.logit_calibration
        )
        scored = [
            (score, rank, doc_id)
            for rank, (doc_id, score) in enumerate(zip(mined["candidates"], scores, strict=True))
            if score is not None
        ]
        source = ctx.seeds[query.seed]
        # Belt and braces: mining already dropped the source; nothing with its content may become a label.
        scored = [item for item in scored if ctx.corpus_hashes[item[2]] != source.hash]
        positives = [doc for score, rank, doc in sorted((-s, r, d) for s, r, d in scored if s >= threshold)]
        negatives = [doc for score, rank, doc in sorted(scored, key=lambda item: item[1]) if score < threshold]
        counts = {
            "positives": len(positives),
            "negatives": len(negatives),
            "unparseable": len(mined["candidates"]) - len(scored),
        }
        if not positives or not negatives:
            status = "no_positive" if not positives else "no_negative"
            ctx.files.labels.append({"key": digest, "status": status, **counts})
            ctx.bars.step("label")
            continue
        labelled.append((query, positives, negatives))
    with ctx.run.timed("reasoning", inside="label"):
        write_reasoning(ctx, [query for query, _, _ in labelled if query.hash not in ctx.files.reasoning])
    for query, positives, negatives in labelled:
        reasoning = ctx.files.reasoning.get(query.hash)
        if reasoning is None:
            continue  # its reasoning request failed; a later run finishes it
        if reasoning["status"] != "ok":
            ctx.files.labels.append(
                {"key": query.hash, "status": "no_reasoning", "positives": len(positives), "negatives": len(negatives)}
            )
        else:
            row = {
                "prompt": ctx.source.instruction,
                "query": query.text,
                "reasoning_query": reasoning_query(query.text, reasoning["reasoning"]),
                "pos": [ctx.source.corpus[doc] for doc in positives],
                "neg": [ctx.source.corpus[doc] for doc in negatives],
            }
            if ctx.files.train.append(row):
                ctx.run.rows += 1
        ctx.bars.step("label")
