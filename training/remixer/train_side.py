"""Training rows straight from the offline CHAMP task's TRAIN side (real gold labels, no LLM), beside ReMixer's.

Each TRAIN problem becomes a row: the problem is the query, its gold concepts the positives, the concepts ranked
highest by BM25 that are not gold the hard negatives, and the problem followed by its worked solution the reasoning
query (the solution is exactly the reasoning about which knowledge the problem needs). Nothing of the TEST side is
read beyond what :func:`reasonembed_rag.evaluation.offline.champ_rows` splits off. Written to
``OUTPUT/train/champ_concepts_train_gold.jsonl`` by ``synthesize --seeds offline --train-side-rows`` - a task file of
its own, so batches never mix gold and synthetic rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .mining import DEFAULT_MINER, make_retriever
from .parsing import reasoning_query
from .records import JsonlLog, content_hash

GOLD_TASK = "champ_concepts_train_gold"


def offline_train_rows(*, negatives: int = 15, depth: int = 50) -> list[dict[str, Any]]:
    """Rows ``{prompt, query, reasoning_query, pos, neg}`` for every TRAIN problem of the offline CHAMP task.

    Args:
        negatives: Hard negatives per row (the best-ranked non-gold concepts).
        depth: Concepts ranked per problem before the gold ones are removed.
    """
    from reasonembed_rag.evaluation.offline import CHAMP_TASK, champ_rows
    from reasonembed_rag.instructions import EXTRA_INSTRUCTIONS

    if negatives < 1:
        raise ValueError(f"negatives must be at least 1, got {negatives}.")
    examples, documents = champ_rows()
    corpus = {row["id"]: row["content"] for row in documents}
    train = examples["train"]
    rankings = make_retriever(DEFAULT_MINER, corpus).search([row["query"] for row in train], min(depth, len(corpus)))
    rows = []
    for example, ranking in zip(train, rankings, strict=True):
        gold = set(example["gold_ids"])
        hard = [doc for doc in ranking if doc not in gold][:negatives]
        reasoning = example.get("reasoning") or ""
        rows.append(
            {
                "prompt": EXTRA_INSTRUCTIONS[CHAMP_TASK],
                "query": example["query"],
                "reasoning_query": reasoning_query(example["query"], reasoning) if reasoning else example["query"],
                "pos": [corpus[doc] for doc in example["gold_ids"]],
                "neg": [corpus[doc] for doc in hard],
            }
        )
    return rows


def write_offline_train_rows(output: str | Path, *, negatives: int = 15) -> tuple[Path, int]:
    """Append the TRAIN-side rows not yet in ``OUTPUT/train/champ_concepts_train_gold.jsonl``; (path, rows added)."""
    log = JsonlLog(
        Path(output) / "train" / f"{GOLD_TASK}.jsonl",
        key=None,
        key_of=lambda row: content_hash(GOLD_TASK, row["query"]),
    )
    added = sum(log.append(row) for row in offline_train_rows(negatives=negatives))
    return log.path, added
