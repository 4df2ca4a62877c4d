"""Offline reasoning tasks built from real data inside packages, written in the BRIGHT layout.

``champ_concepts``: CHAMP competition-math problems (``champ-dataset``, MIT) -> the concepts and theorems linked in
each problem's ``ch_list`` (the ``C_...`` entries). The corpus is all 89 CHAMP concepts; problems that link no concept
are left out; gold answers are kept for the agent demos. Like BRIGHT's theorem tasks, the query rarely shares words
with the theorem that solves it.

Split (fixed, documented): a problem is on the TEST side when the first byte of ``sha256(problem id)`` is even,
otherwise on the TRAIN side. Evaluation uses ``champ_concepts`` (test side); training uses ``champ_concepts_train``
only, never the test side.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..instructions import EXTRA_INSTRUCTIONS

CHAMP_TASK = "champ_concepts"
CHAMP_TRAIN_TASK = "champ_concepts_train"
OFFLINE_TASKS = (CHAMP_TASK,)


def champ_split(problem_id: str) -> str:
    """``test`` or ``train`` for a CHAMP problem id (stable across machines and versions)."""
    return "test" if hashlib.sha256(problem_id.encode()).digest()[0] % 2 == 0 else "train"


def _concept_text(concept) -> str:  # noqa: ANN001 - champ_dataset.Concept
    return f"{concept.name}: {concept.text}" if concept.name else concept.text


def champ_rows() -> tuple[dict[str, list[dict]], list[dict]]:
    """({"test": [example rows], "train": [...]}, document rows) for the CHAMP concept task."""
    try:
        import champ_dataset
    except ImportError as error:
        raise RuntimeError("The offline task needs the champ-dataset package: pip install champ-dataset") from error
    dataset = champ_dataset.load("v0")
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


def build_offline_tasks(root: str | Path) -> Path:
    """Write the offline tasks under ``root`` (idempotent) and return ``root``."""
    root = Path(root)
    examples, documents = champ_rows()
    for task, side in ((CHAMP_TASK, "test"), (CHAMP_TRAIN_TASK, "train")):
        folder = root / task
        folder.mkdir(parents=True, exist_ok=True)
        _write_jsonl(folder / "examples.jsonl", examples[side])
        _write_jsonl(folder / "documents.jsonl", documents)
        (folder / "instruction.txt").write_text(EXTRA_INSTRUCTIONS[CHAMP_TASK] + "\n", encoding="utf-8")
    return root


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
