"""Training rows straight from the offline CHAMP task's TRAIN side (real gold labels, no LLM), beside ReMixer's.

Each TRAIN problem becomes a row: the problem is the query, its gold concepts the positives, the concepts ranked
highest by BM25 that are not gold the hard negatives, and the problem followed by its worked solution the reasoning
query (the solution is exactly the reasoning about which knowledge the problem needs). Nothing of the TEST side is
read beyond what :func:`reasonembed_rag.evaluation.offline.champ_rows` splits off. Written to
``OUTPUT/train/champ_concepts_train_gold.jsonl`` by ``synthesize --seeds offline --train-side-rows`` - a task file of
its own, so batches never mix gold and synthetic rows.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .mining import DEFAULT_MINER, make_retriever
from .parsing import reasoning_query
from .records import JsonlLog, content_hash

GOLD_TASK = "champ_concepts_train_gold"
GOLD_OOD_TASK = "champ_concepts_ood_train_gold"
"""Gold rows of the TRAIN problems outside the out-of-domain validation's held-out categories and concepts."""


def offline_train_rows(*, negatives: int = 15, depth: int = 50) -> list[dict[str, Any]]:
    """Rows ``{prompt, query, reasoning_query, pos, neg}`` for every TRAIN problem of the offline CHAMP task.

    Args:
        negatives: Hard negatives per row (the best-ranked non-gold concepts, by BM25).
        depth: Concepts ranked per problem before the gold ones are removed.
    """
    from reasonembed_rag.evaluation.offline import champ_rows

    examples, documents = champ_rows()
    corpus = {row["id"]: row["content"] for row in documents}
    return gold_rows(examples["train"], corpus, negatives=negatives, depth=depth)


def gold_rows(
    examples: list[dict[str, Any]],
    corpus: dict[str, str],
    *,
    negatives: int = 15,
    depth: int = 50,
    miner: str = DEFAULT_MINER,
    hints: bool = False,
) -> list[dict[str, Any]]:
    """Training rows from CHAMP example rows (``id, query, gold_ids, reasoning``) over a concept corpus.

    Args:
        examples: TRAIN-side example rows (as :func:`~reasonembed_rag.evaluation.offline.champ_rows` gives them).
        corpus: Concept id -> text; the positives and the mined negatives come from it (gold ids outside it are
            dropped, so a corpus without the held-out concepts never trains on them).
        negatives: Hard negatives per row (the best-ranked non-gold concepts).
        depth: Concepts ranked per problem before the gold ones are removed.
        miner: ``bm25`` or an encoder alias / folder that ranks the concepts (see :func:`.mining.make_retriever`).
        hints: Put CHAMP's human hints before the worked solution in the reasoning query.
    """
    from reasonembed_rag.evaluation.offline import CHAMP_TASK, champ_hints
    from reasonembed_rag.instructions import EXTRA_INSTRUCTIONS

    if negatives < 1:
        raise ValueError(f"negatives must be at least 1, got {negatives}.")
    instruction = EXTRA_INSTRUCTIONS[CHAMP_TASK]
    retriever = make_retriever(miner, corpus, instruction=instruction)
    rankings = retriever.search([row["query"] for row in examples], min(depth, len(corpus)))
    rows = []
    for example, ranking in zip(examples, rankings, strict=True):
        gold = [doc for doc in example["gold_ids"] if doc in corpus]
        if not gold:
            continue
        hard = [doc for doc in ranking if doc not in gold][:negatives]
        reasoning = " ".join([*(champ_hints(example["id"]) if hints else []), example.get("reasoning") or ""]).strip()
        rows.append(
            {
                "prompt": instruction,
                "query": example["query"],
                "reasoning_query": reasoning_query(example["query"], reasoning) if reasoning else example["query"],
                "pos": [corpus[doc] for doc in gold],
                "neg": [corpus[doc] for doc in hard],
            }
        )
    return rows


def ood_training_rows(
    *,
    categories: tuple[str, ...] | None = None,
    remixer: str | Path | Sequence[str | Path] | None = None,
    negatives: int = 15,
    miner: str = DEFAULT_MINER,
) -> dict[str, list[dict[str, Any]]]:
    """Training rows for the out-of-domain validation split: nothing of its held-out categories or concepts.

    Returns ``{task file stem: rows}``: the gold rows of the TRAIN problems outside ``categories`` (hints and
    worked solution as the reasoning query; negatives mined by ``miner`` among the concepts that are not held out),
    and, with ``remixer`` (one or more ``synthesize`` output folders), their synthetic rows minus every held-out
    concept and minus the queries generated from a held-out problem or concept (read from their ``work/`` records).
    Rows of one task from several folders go to one file (a query once).

    ``categories=()`` holds nothing out: every TRAIN problem and concept (the refit of a recipe already chosen on
    the validation; the validation then no longer measures the result).
    """
    from reasonembed_rag.evaluation.offline import OOD_CATEGORIES, champ_ood_rows, champ_rows

    examples, documents = champ_rows()
    validation: list[dict[str, Any]]
    held_out: list[str]
    if categories == ():
        validation, training, held_out = [], examples["train"], []
    else:
        validation, training, held_out = champ_ood_rows(categories or OOD_CATEGORIES)
    corpus = {row["id"]: row["content"] for row in documents if row["id"] not in held_out}
    gold_task = GOLD_TASK if categories == () else GOLD_OOD_TASK
    result = {gold_task: gold_rows(training, corpus, negatives=negatives, miner=miner, hints=True)}
    folders = [] if remixer is None else [remixer] if isinstance(remixer, str | Path) else list(remixer)
    banned_seeds = {f"train_problem:{row['id']}" for row in validation} | set(held_out)
    banned_texts = {row["content"] for row in documents if row["id"] in held_out}
    for folder in folders:
        for task, rows in _remixer_rows_without(Path(folder), banned_seeds, banned_texts).items():
            seen = {row["query"] for row in result.get(task, [])}
            result.setdefault(task, []).extend(row for row in rows if row["query"] not in seen)
    return result


def _remixer_rows_without(folder: Path, banned_seeds: set[str], banned_texts: set[str]) -> dict[str, list[dict]]:
    """The synthetic rows of a ReMixer output folder, minus banned seeds' queries and banned documents (a row that
    is left without a positive or without a hard negative goes too)."""
    rows: dict[str, list[dict]] = {}
    for path in sorted((folder / "train").glob("*.jsonl")):
        if path.stem.endswith("_gold"):
            continue
        seed_of = {}
        queries = folder / "work" / path.stem / "queries.jsonl"
        for line in queries.read_text(encoding="utf-8").splitlines() if queries.exists() else []:
            record = json.loads(line)
            seed_of[record.get("query")] = record.get("seed_id")
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row["query"] not in seed_of:
                raise ValueError(f"{path}: query {row['query'][:60]!r} has no record in {queries}; cannot check it.")
            pos = [text for text in row["pos"] if text not in banned_texts]
            neg = [text for text in row["neg"] if text not in banned_texts]
            if seed_of[row["query"]] in banned_seeds or not pos or not neg:
                continue  # a row left without a positive or a hard negative cannot train
            kept.append({**row, "pos": pos, "neg": neg})
        rows[path.stem] = kept
    return rows


def write_ood_training_data(output: str | Path, **options: Any) -> dict[str, int]:
    """Write :func:`ood_training_rows` as ``OUTPUT/<task>.jsonl`` (one task file each); {file name: rows}."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    counts = {}
    for stem, rows in ood_training_rows(**options).items():
        path = output / f"{stem}.jsonl"
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        counts[path.name] = len(rows)
    return counts


def write_offline_train_rows(output: str | Path, *, negatives: int = 15) -> tuple[Path, int]:
    """Append the TRAIN-side rows not yet in ``OUTPUT/train/champ_concepts_train_gold.jsonl``; (path, rows added)."""
    log = JsonlLog(
        Path(output) / "train" / f"{GOLD_TASK}.jsonl",
        key=None,
        key_of=lambda row: content_hash(GOLD_TASK, row["query"]),
    )
    added = sum(log.append(row) for row in offline_train_rows(negatives=negatives))
    return log.path, added


def register(subparsers: Any) -> None:
    """The ``champ-data`` subcommand of ``reasonembed-train``."""
    parser = subparsers.add_parser(
        "champ-data",
        help="training rows for the out-of-domain validation split of the offline CHAMP task",
        description="Write OUTPUT/<task>.jsonl training files from the CHAMP TRAIN side without the held-out "
        "categories of the out-of-domain validation (champ_concepts_ood) or any concept gold for them: the gold rows "
        "(CHAMP's hints and worked solution as the reasoning query, mined hard negatives) and, with --remixer, the "
        "synthetic rows of a `synthesize` output folder minus everything held out.",
    )
    parser.add_argument("--output", required=True, help="folder for the task files")
    parser.add_argument(
        "--remixer",
        action="append",
        default=None,
        help="a `synthesize` output folder whose rows are filtered in (repeatable: e.g. --seeds offline and wordnet)",
    )
    parser.add_argument("--miner", default=DEFAULT_MINER, help="bm25 or an encoder alias/folder mining negatives")
    parser.add_argument("--negatives", type=int, default=15, help="hard negatives per row")
    parser.add_argument(
        "--hold-out",
        type=_categories,
        default=None,
        help="comma-separated CHAMP problem categories (default: the validation's own, Combinatorics,Inequality); "
        "'none' holds nothing out, for the final refit of settings already chosen on the validation",
    )
    parser.set_defaults(handler=_run_champ_data)


def _categories(text: str) -> tuple[str, ...]:
    """``--hold-out``: ``none`` -> () (nothing held out), else the comma-separated categories."""
    if text.strip().lower() == "none":
        return ()
    categories = tuple(item.strip() for item in text.split(",") if item.strip())
    if not categories:
        raise argparse.ArgumentTypeError(f"{text!r}: name CHAMP categories, or 'none' to hold nothing out.")
    return categories


def _run_champ_data(namespace: Any) -> int:
    counts = write_ood_training_data(
        namespace.output,
        categories=namespace.hold_out,
        remixer=namespace.remixer,
        negatives=namespace.negatives,
        miner=namespace.miner,
    )
    for name, rows in counts.items():
        print(f"{Path(namespace.output) / name}: {rows} rows")
    return 0
