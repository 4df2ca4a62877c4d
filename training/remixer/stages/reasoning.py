"""The reasoning query of a labelled query: the reasoning about the knowledge the query needs (its seed's human
reasoning when there is some, else the LLM's), appended to the query
(:func:`training.remixer.parsing.reasoning_query`); part of stage 4, timed on its own."""

from __future__ import annotations

from typing import Any

from ..parsing import clean_reasoning
from .context import REPLY_KEPT_CHARACTERS, SyntheticQuery, TaskContext


def write_reasoning(ctx: TaskContext, queries: list[SyntheticQuery]) -> None:
    """Record the reasoning of each query: its seed's human reasoning when it has some (a CHAMP problem's hints and
    worked solution), else the LLM's (or why its reply was rejected)."""
    ctx.bars.grow("reasoning", len(queries))
    asked = []
    for query in queries:
        human = ctx.seeds[query.seed].reasoning
        if human:
            ctx.files.reasoning.append({"key": query.hash, "status": "ok", "source": "human", "reasoning": human})
            ctx.bars.step("reasoning")
        else:
            asked.append(query)
    jobs = [(query, ctx.prompts.reasoning_messages(query.text)) for query in asked]
    for query, completion in ctx.run.requests.results(
        "reasoning", jobs, max_tokens=ctx.settings.max_tokens["reasoning"]
    ):
        text, reason = clean_reasoning(
            completion.text, query=query.text, truncated=completion.finish_reason == "length"
        )
        row: dict[str, Any] = {"key": query.hash, "status": "ok" if text else "malformed", "source": "llm"}
        if text:
            row["reasoning"] = text
        else:
            row.update(reason=reason, reply=completion.text[:REPLY_KEPT_CHARACTERS])
        ctx.files.reasoning.append(row)
        ctx.bars.step("reasoning")
