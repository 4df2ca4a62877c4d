"""Stage 1, conditioned query generation: one query per seed (or ``queries_per_seed``) at a sampled target length
and difficulty. Replies that are empty, echo the prompt, point at their source or copy it are rejected; queries are
unique by content hash (seeds are already unique by theirs)."""

from __future__ import annotations

import random
from typing import Any

from ..parsing import clean_query
from ..records import content_hash
from ..seeds import Seed
from .context import REPLY_KEPT_CHARACTERS, SyntheticQuery, TaskContext, query_hash


def generate_queries(ctx: TaskContext, seeds: list[Seed]) -> list[SyntheticQuery]:
    """Generate the missing queries of ``seeds``; return all of their accepted queries (new and from earlier runs)."""
    settings = ctx.settings
    keys = [
        (seed, index, content_hash("generate", seed.task, seed.hash, str(index)))
        for seed in seeds
        for index in range(settings.queries_per_seed)
    ]
    todo = [(seed, index, key) for seed, index, key in keys if key not in ctx.files.queries]
    ctx.bars.grow("generate", len(keys))
    ctx.bars.step("generate", len(keys) - len(todo))
    jobs = []
    for seed, index, key in todo:
        length, difficulty = ctx.prompts.sample_conditions(random.Random(f"{settings.seed}:{key}"))
        messages = ctx.prompts.generation_messages(seed.content, length=length, difficulty=difficulty)
        jobs.append(((seed, index, key, length, difficulty), messages))
    sentences = ctx.prompts.generation_prefix_text()
    for (seed, index, key, length, difficulty), completion in ctx.run.requests.results(
        "generate", jobs, max_tokens=settings.max_tokens["generate"]
    ):
        query, reason = clean_query(
            completion.text,
            source=seed.content,
            forbidden_phrases=ctx.prompts.forbidden_phrases,
            prompt_sentences=sentences,
            truncated=completion.finish_reason == "length",
        )
        record: dict[str, Any] = {
            "key": key,
            "seed": seed.hash,
            "seed_id": seed.id,
            "index": index,
            "length": length,
            "difficulty": difficulty,
        }
        if query is None:
            record.update(status="malformed", reason=reason, reply=completion.text[:REPLY_KEPT_CHARACTERS])
        else:
            digest = query_hash(seed.task, query)
            status = "duplicate" if digest in ctx.query_hashes else "ok"
            record.update(status=status, query=query, query_hash=digest)
            if status == "ok":
                ctx.query_hashes.add(digest)
                ctx.run.generated += 1
        ctx.files.queries.append(record)
        ctx.bars.step("generate")
    records = [ctx.files.queries.get(key) for _, _, key in keys]
    return [
        SyntheticQuery.from_record(record) for record in records if record is not None and record["status"] == "ok"
    ]
