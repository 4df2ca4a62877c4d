"""Stage 3, relevance annotation: every (query, candidate) pair scored 1-5, pointwise, in ``<score>`` tags of an LLM
reply, or from the score token's logits in-process (:class:`training.remixer.annotator.LogitAnnotator`)."""

from __future__ import annotations

import random
from typing import Any

from reasonembed_rag.llm import Message

from ..parsing import parse_score
from ..records import content_hash
from .context import REPLY_KEPT_CHARACTERS, SynthesisAborted, SyntheticQuery, TaskContext

Pair = tuple[SyntheticQuery, str, str]
"""A query, a candidate's document id, and the pair's key in ``annotations.jsonl``."""


def candidate_pairs(ctx: TaskContext, queries: list[SyntheticQuery]) -> list[Pair]:
    """Every mined (query, candidate) pair of ``queries``, keyed by the query and the document's content."""
    pairs = []
    for query in queries:
        mined = ctx.files.candidates.get(query.hash)
        for doc_id in (mined or {}).get("candidates", []):
            if doc_id not in ctx.corpus_hashes:
                raise SynthesisAborted(
                    f"{ctx.files.candidates.path} names document {doc_id!r}, which is not in the corpus any more: "
                    "the corpus changed since that run. Use a new --output folder for a new corpus."
                )
            pairs.append((query, doc_id, content_hash(query.hash, ctx.corpus_hashes[doc_id])))
    return pairs


def annotate_candidates(ctx: TaskContext, queries: list[SyntheticQuery], extra: list[Pair] | None = None) -> None:
    """Score every pair of ``queries`` (and the ``extra`` pairs: the round-trip targets) that has no annotation yet."""
    settings = ctx.settings
    annotator = ctx.run.annotator
    pairs = list({pair[2]: pair for pair in [*(extra or []), *candidate_pairs(ctx, queries)]}.values())
    todo = [pair for pair in pairs if pair[2] not in ctx.files.annotations]
    ctx.bars.grow("annotate", len(pairs))
    ctx.bars.step("annotate", len(pairs) - len(todo))
    style = "direct" if annotator is not None else settings.annotation_style
    limit = settings.document_characters

    def messages(pair: Pair) -> list[Message]:
        document = ctx.source.corpus[pair[1]][:limit]
        order = random.Random(f"{settings.seed}:{pair[2]}")
        return ctx.prompts.annotation_messages(
            pair[0].text, document, style=style, rng=order, examples=annotator is None
        )

    if annotator is not None:
        step = max(1, annotator.batch_size * 4)
        for start in range(0, len(todo), step):
            batch = todo[start : start + step]
            for (query, doc_id, key), distribution in zip(
                batch, annotator.score([messages(pair) for pair in batch]), strict=True
            ):
                ctx.files.annotations.append(
                    {
                        "key": key,
                        "query": query.hash,
                        "doc_id": doc_id,
                        "status": "ok",
                        "score": distribution.score,
                        "probabilities": list(distribution.probabilities),
                        "annotator": "logits",
                    }
                )
                ctx.bars.step("annotate")
        return
    jobs = [(pair, messages(pair)) for pair in todo]
    # A direct answer is complete at its closing tag; stopping there saves the tokens small models add after it.
    stop = ["</score>"] if style == "direct" else None
    for (query, doc_id, key), completion in ctx.run.requests.results(
        "annotate",
        jobs,
        max_tokens=settings.max_tokens[f"annotate_{style}"],
        stop=stop,
        temperature=settings.annotation_temperature,
    ):
        score = parse_score(completion.text)
        row: dict[str, Any] = {
            "key": key,
            "query": query.hash,
            "doc_id": doc_id,
            "status": "ok" if score is not None else "unparseable",
            "score": score,
            "annotator": style,
        }
        if score is None:
            row["reply"] = completion.text[:REPLY_KEPT_CHARACTERS]
        ctx.files.annotations.append(row)
        ctx.bars.step("annotate")


def label_scores(annotations: list[dict[str, Any]], calibration: str = "none") -> list[int | None]:
    """The score each of a query's annotations counts with (None: unparseable).

    With ``calibration="query"``, scores read from logits are recomputed: each candidate's distribution is divided
    by the mean distribution over the query's candidates, then the most likely score is taken. This is contextual
    calibration (Zhao et al., 2021, "Calibrate before use") with the query's candidates as the reference: it removes
    a small model's constant preference for one digit and keeps what differs between candidates.
    """
    scores: list[int | None] = [row["score"] if row["status"] == "ok" else None for row in annotations]
    if calibration != "query":
        return scores
    indexed = [(i, row["probabilities"]) for i, row in enumerate(annotations) if row.get("probabilities")]
    if len(indexed) < 2:
        return scores
    mean = [sum(p[k] for _, p in indexed) / len(indexed) for k in range(5)]
    for i, probabilities in indexed:
        ratios = [probabilities[k] / mean[k] if mean[k] > 0 else 0.0 for k in range(5)]
        scores[i] = 1 + max(range(5), key=lambda k: (ratios[k], -k))
    return scores
