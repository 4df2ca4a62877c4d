"""Stage 2, candidate mining: BM25 or an encoder ranks the task's corpus, the SOURCE DOCUMENT is dropped, and the
top ``keep_candidates`` stay (the miners themselves: :mod:`training.remixer.mining`)."""

from __future__ import annotations

from ..mining import exclude_source
from .context import SyntheticQuery, TaskContext


def mine_candidates(ctx: TaskContext, queries: list[SyntheticQuery]) -> None:
    """Record the candidates of every query that has none yet."""
    todo = [query for query in queries if query.hash not in ctx.files.candidates]
    ctx.bars.grow("mine", len(queries))
    ctx.bars.step("mine", len(queries) - len(todo))
    if not todo:
        return
    retriever = ctx.retriever()
    depth = min(ctx.settings.mine_depth, len(ctx.source.corpus))
    ranked = retriever.search([query.text for query in todo], depth)
    for query, ranking in zip(todo, ranked, strict=True):
        seed = ctx.seeds[query.seed]
        mined = exclude_source(
            ranking,
            ctx.source.corpus,
            source_id=seed.corpus_id,
            source_hash=seed.hash,
            keep=ctx.settings.keep_candidates,
            corpus_hashes=ctx.corpus_hashes,
        )
        ctx.files.candidates.append(
            {
                "key": query.hash,
                "miner": retriever.name,
                "candidates": mined.candidates,
                "source_excluded": mined.source_excluded,
            }
        )
        ctx.bars.step("mine")
