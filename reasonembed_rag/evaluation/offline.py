"""Offline reasoning tasks built from real data inside packages, written in the BRIGHT layout.

``champ_concepts``: CHAMP competition-math problems (``champ-dataset``, MIT) -> the concepts and theorems linked in
each problem's ``ch_list`` (the ``C_...`` entries). The corpus is all 89 CHAMP concepts; problems that link no concept
are left out; gold answers are kept for the agent demos. Like BRIGHT's theorem tasks, the query rarely shares words
with the theorem that solves it.

Split (fixed, documented): a problem is on the TEST side when the first byte of ``sha256(problem id)`` is even,
otherwise on the TRAIN side. Evaluation uses ``champ_concepts`` (test side); training uses ``champ_concepts_train``
only, never the test side.

``champ_concepts_ood``: the project's own out-of-domain validation, cut from the TRAIN side alone. Its queries are
the TRAIN problems of the held-out categories (:data:`OOD_CATEGORIES`), the corpus is again all 89 concepts, and
every concept that is gold for one of those problems is held out of training altogether (:func:`champ_ood_rows`).
A model that trains on the rest has never seen a held-out problem, category or gold concept, so memorising the
concepts it was trained on cannot help it there; choose training settings on this task, never on the test side.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from ..instructions import EXTRA_INSTRUCTIONS

CHAMP_TASK = "champ_concepts"
CHAMP_TRAIN_TASK = "champ_concepts_train"
CHAMP_OOD_TASK = "champ_concepts_ood"
OFFLINE_TASKS = (CHAMP_TASK,)
"""Evaluated by default (``reasonembed-rag bright --data offline``); the others are named with ``--tasks``."""
OOD_CATEGORIES = ("Combinatorics", "Inequality")
"""Problem categories held out for :data:`CHAMP_OOD_TASK`: 42 TRAIN problems and the 21 concepts they need."""


def champ_split(problem_id: str) -> str:
    """``test`` or ``train`` for a CHAMP problem id (stable across machines and versions)."""
    return "test" if hashlib.sha256(problem_id.encode()).digest()[0] % 2 == 0 else "train"


def _concept_text(concept) -> str:  # noqa: ANN001 - champ_dataset.Concept
    return f"{concept.name}: {concept.text}" if concept.name else concept.text


@functools.cache
def _champ_dataset():  # noqa: ANN202 - champ_dataset.Dataset; loaded once per process (it is read-only here)
    try:
        import champ_dataset
    except ImportError as error:
        raise RuntimeError("The offline task needs the champ-dataset package: pip install champ-dataset") from error
    return champ_dataset.load("v0")


def champ_rows() -> tuple[dict[str, list[dict]], list[dict]]:
    """({"test": [example rows], "train": [...]}, document rows) for the CHAMP concept task."""
    dataset = _champ_dataset()
    documents = [{"id": cid, "content": _concept_text(c)} for cid, c in sorted(dataset.concepts.items())]
    examples: dict[str, list[dict]] = {"test": [], "train": []}
    for pid, problem in sorted(dataset.problems.items()):
        gold = sorted({c for c in problem.ch_list if c in dataset.concepts})
        if not gold:
            continue
        examples[champ_split(pid)].append(
            {
                "id": pid,
                "query": problem.text,
                "gold_ids": gold,
                "excluded_ids": [],
                "gold_answer": problem.answer,
                "reasoning": " ".join(step.text for step in problem.solution.steps),
            }
        )
    return examples, documents


def champ_ood_rows(
    categories: tuple[str, ...] = OOD_CATEGORIES,
) -> tuple[list[dict], list[dict], list[str]]:
    """Split the TRAIN side by problem category: (validation examples, training examples, held-out concept ids).

    Validation examples are the TRAIN problems whose category is in ``categories``; the held-out concepts are every
    concept gold for one of them. Training examples are the other TRAIN problems with the held-out concepts removed
    from their gold lists (a problem left with no gold is dropped). No TEST problem is read.

    Args:
        categories: CHAMP problem categories to hold out (e.g. ``("Combinatorics", "Inequality")``).
    """
    dataset = _champ_dataset()
    known = sorted({problem.category for problem in dataset.problems.values()})
    unknown = sorted(set(categories) - set(known))
    if unknown or not categories:
        raise ValueError(f"Hold-out categories {unknown or categories!r}: choose CHAMP categories from {known}.")
    train = champ_rows()[0]["train"]
    validation = [row for row in train if dataset.problems[row["id"]].category in categories]
    held_out = sorted({concept for row in validation for concept in row["gold_ids"]})
    training = []
    for row in train:
        if dataset.problems[row["id"]].category in categories:
            continue
        gold = [concept for concept in row["gold_ids"] if concept not in held_out]
        if gold:
            training.append({**row, "gold_ids": gold})
    return validation, training, held_out


def champ_categories() -> dict[str, str]:
    """``{problem id: CHAMP category}`` for every problem (e.g. ``"Number-Theory"``)."""
    return {pid: problem.category for pid, problem in _champ_dataset().problems.items()}


def champ_hints(problem_id: str) -> list[str]:
    """The human hints CHAMP gives for a problem (its ``H_...`` entries, in order); empty when it has none."""
    dataset = _champ_dataset()
    return [dataset.hints[h].text for h in dataset.problems[problem_id].ch_list if h in dataset.hints]


def build_offline_tasks(root: str | Path) -> Path:
    """Write the offline tasks under ``root`` (idempotent) and return ``root``."""
    root = Path(root)
    examples, documents = champ_rows()
    validation, _, _ = champ_ood_rows()
    sides = {CHAMP_TASK: examples["test"], CHAMP_TRAIN_TASK: examples["train"], CHAMP_OOD_TASK: validation}
    for task, rows in sides.items():
        folder = root / task
        folder.mkdir(parents=True, exist_ok=True)
        _write_jsonl(folder / "examples.jsonl", rows)
        _write_jsonl(folder / "documents.jsonl", documents)
        (folder / "instruction.txt").write_text(EXTRA_INSTRUCTIONS[CHAMP_TASK] + "\n", encoding="utf-8")
    return root


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
