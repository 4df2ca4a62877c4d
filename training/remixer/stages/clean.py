"""Stage 0, domain cleaning (optional): the LLM answers Yes/No whether a seed belongs to the task's domain."""

from __future__ import annotations

from typing import Any

from ..parsing import parse_yes_no
from ..seeds import Seed
from .context import REPLY_KEPT_CHARACTERS, TaskContext


def clean_seeds(ctx: TaskContext, seeds: list[Seed]) -> list[Seed]:
    """Ask about the seeds not checked yet; return the seeds kept (all of them when cleaning is off)."""
    if not ctx.settings.clean_domain:
        return seeds
    todo = [seed for seed in seeds if seed.hash not in ctx.files.clean]
    ctx.bars.grow("clean", len(seeds))
    ctx.bars.step("clean", len(seeds) - len(todo))
    jobs = [(seed, ctx.prompts.clean_messages(seed.content)) for seed in todo]
    for seed, completion in ctx.run.requests.results("clean", jobs, max_tokens=ctx.settings.max_tokens["clean"]):
        verdict = parse_yes_no(completion.text)
        record: dict[str, Any] = {
            "key": seed.hash,
            "id": seed.id,
            "verdict": {True: "yes", False: "no", None: "unparseable"}[verdict],
        }
        if verdict is None:
            record["reply"] = completion.text[:REPLY_KEPT_CHARACTERS]
        ctx.files.clean.append(record)
        ctx.bars.step("clean")
    # Unparseable verdicts keep the seed: cleaning only removes what the LLM clearly rejects.
    return [
        seed
        for seed in seeds
        if (checked := ctx.files.clean.get(seed.hash)) is not None and checked["verdict"] != "no"
    ]
