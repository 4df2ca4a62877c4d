"""Choose the shipped model's training settings on a held-out slice of the TRAIN side, then train it.

    python scripts/sweep_shipped_model.py --output outputs/sweep            # GPU if there is one, else CPU
    python scripts/sweep_shipped_model.py --output outputs/sweep --grid smoke --device cpu   # 2-step check

1. The train side's gold rows (``champ_concepts_train_gold.jsonl``) are split by problem: a fixed quarter is held
   out as the validation queries; the synthesized ReMixer rows all stay in training.
2. Every configuration of the grid is trained (Redapter) on the rest, in ``--jobs`` worker processes, and scored
   on the validation queries against the task's corpus: exact cosine search, then the official scorer's
   ``evaluate_run`` (nDCG@10). The test side is scored too, for the record, but never used to choose.
3. The configuration with the best validation nDCG@10 is trained on ALL the data twice, Redapter and its InfoNCE
   twin, into ``OUTPUT/final/``.

``OUTPUT/sweep.jsonl`` gets one line per finished configuration and a rerun skips those (resumable).
``OUTPUT/summary.json`` holds the table and the choice. Past ``--deadline-s`` no new configuration starts and the
best one so far is used. Final numbers come from ``reasonembed-rag bright`` through Chroma, not from here.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOLD_FILE = "champ_concepts_train_gold.jsonl"
VALIDATION_SHARE = 0.25

BASE: dict[str, Any] = {
    "model": "smollm2-135m",
    "pooling": "mean",  # the shipped model's (docs/sweep-2026-11-26 ran before, with last-token pooling)
    "loss": "redapter",
    "lora_rank": 32,
    "lora_alpha": 64,
    "temperature": 0.02,
    "group_size": 8,
    "query_max_length": 128,
    "passage_max_length": 256,
    "reasoning_query_max_length": 384,
    "warmup_ratio": 0.1,
    "seed": 42,
    "adapter_dtype": "float16",
    "bf16": False,  # the CPU users run the fp32 base: train against the same weights
}


def grid(name: str) -> list[dict[str, Any]]:
    """The configurations to try (each a dict of TrainingArguments values on top of BASE)."""
    if name == "smoke":
        return [{"batch_size": 2, "group_size": 2, "max_steps": 2, "learning_rate": 2e-4, "redapter_warmup_steps": 1}]
    configs = []
    for batch, lr, epochs, mask in itertools.product((8, 32), (1e-4, 3e-4), (3, 10), (False, True)):
        configs.append({"batch_size": batch, "learning_rate": lr, "epochs": epochs, "mask_false_negatives": mask})
    return configs


def config_name(config: dict[str, Any]) -> str:
    short = {"batch_size": "b", "learning_rate": "lr", "epochs": "e", "mask_false_negatives": "m", "max_steps": "s"}
    parts = [f"{short.get(k, k)}{int(v) if isinstance(v, bool) else v}" for k, v in sorted(config.items())]
    return "-".join(parts).replace("_", "")


def split_data(data: Path, target: Path) -> set[str]:
    """Copy the training files to ``target`` minus the held-out gold rows; return the held-out query texts."""
    from reasonembed_rag.jsonl import read_jsonl

    target.mkdir(parents=True, exist_ok=True)
    held_out: set[str] = set()
    for path in sorted(data.glob("*.jsonl")):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if path.name == GOLD_FILE:
            kept = []
            for line, (_, row) in zip(lines, read_jsonl(path, fields=("query",)), strict=True):
                query = row["query"]
                bucket = int(hashlib.sha256(query.encode()).hexdigest(), 16) % 1000
                if bucket < VALIDATION_SHARE * 1000:
                    held_out.add(query)
                else:
                    kept.append(line)
            lines = kept
        (target / path.name).write_text("\n".join(lines) + "\n")
    if not held_out:
        raise SystemExit(f"No {GOLD_FILE} under {data}: nothing to validate on.")
    return held_out


def load_eval_tasks(tasks_root: Path, held_out: set[str]) -> dict[str, Any]:
    from reasonembed_rag.evaluation.data import load_folder_task
    from reasonembed_rag.evaluation.offline import CHAMP_TASK, CHAMP_TRAIN_TASK

    validation = load_folder_task(tasks_root, CHAMP_TRAIN_TASK)
    validation.queries = [q for q in validation.queries if q.text in held_out]
    if len(validation.queries) != len(held_out):
        raise SystemExit(f"Matched {len(validation.queries)} of {len(held_out)} held-out queries in {tasks_root}.")
    return {"validation": validation, "test": load_folder_task(tasks_root, CHAMP_TASK)}


def score(folder: Path, tasks: dict[str, Any], device: str) -> dict[str, float]:
    """nDCG@10 (x100) of a model folder on each task: exact cosine search over the whole corpus."""
    import torch

    from reasonembed_rag.encoder import ReasonEmbedEncoder
    from reasonembed_rag.evaluation.metrics import evaluate_run

    # Full float32 products, as on CPU: this small model's 10th and 11th scores are ~0.001 apart in cosine, and the
    # same weights scored 19.5 nDCG@10 on an H100 with TF32 on against 17.9 on CPU.
    torch.backends.cuda.matmul.allow_tf32 = False
    encoder = ReasonEmbedEncoder.from_pretrained(folder, device=device, dtype="float32")
    result = {}
    for name, task in tasks.items():
        ids = list(task.documents)
        documents = encoder.encode_documents([task.documents[i] for i in ids], show_progress=False)
        queries = encoder.encode_queries(
            [q.text for q in task.queries], instruction=task.instruction, show_progress=False
        )
        scores = queries @ documents.T
        run = {q.id: dict(zip(ids, map(float, row), strict=True)) for q, row in zip(task.queries, scores, strict=True)}
        mean, _ = evaluate_run(run, task.qrels, {q.id: q.excluded_ids for q in task.queries})
        result[name] = round(100 * mean["ndcg@10"], 2)
    return result


def planned_steps(data: Path, values: dict[str, Any]) -> int:
    """Optimiser steps of a run (the planner's count: full batches per task, a small task still gives one)."""
    if values.get("max_steps"):
        return int(values["max_steps"])
    rows = [sum(1 for line in path.read_text().splitlines() if line.strip()) for path in sorted(data.glob("*.jsonl"))]
    return values.get("epochs", 1) * sum(max(1, n // values["batch_size"]) for n in rows if n)


def train_and_score(
    config: dict[str, Any], data: Path, output: Path, tasks: dict[str, Any], device: str, threads: int
) -> dict[str, Any]:
    """Worker: one training run, then its scores (a process of its own, so runs can share a GPU)."""
    import torch

    from reasonembed_rag.training.trainer import TrainingArguments, train

    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = True  # fp32 weights (as on CPU), TF32 matrix products on a GPU
    started = time.time()
    values = {**BASE, **config, "data": str(data), "output": str(output), "device": device}
    if "redapter_warmup_steps" not in values:  # plain InfoNCE for the first tenth of the run, as in the paper
        values["redapter_warmup_steps"] = max(1, round(0.1 * planned_steps(data, values)))
    values.update(overwrite=True, progress=False, name=output.name)
    result = train(TrainingArguments.from_dict(values))
    row = {"name": output.name, "config": config, "steps": result.steps, "train_s": round(time.time() - started, 1)}
    row.update(score(output, tasks, device))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data/remixer-champ/train")
    parser.add_argument("--tasks-root", type=Path, default=None, help="BRIGHT-layout folder (default: offline)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--model", default=BASE["model"], help="backbone (default: %(default)s)")
    parser.add_argument("--grid", choices=("full", "smoke"), default="full")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at once, one process each (8 CUDA processes failed on an H100)"
    )
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--deadline-s", type=float, default=float("inf"), help="start no new run after this")
    parser.add_argument("--no-final", action="store_true", help="only the sweep")
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tasks_root = args.tasks_root
    if tasks_root is None:
        from reasonembed_rag.evaluation.tasks import offline_data_root

        tasks_root = offline_data_root()
    started = time.time()
    held_out = split_data(args.data, args.output / "split")
    tasks = load_eval_tasks(tasks_root, held_out)
    print(f"{len(held_out)} validation queries held out; device {device}", flush=True)

    # Convert a GGUF backbone once, before the workers race to do it.
    from reasonembed_rag.models import convert_gguf, get_spec, package_path

    spec = get_spec(args.model)
    if spec is not None and spec.gguf_file:
        convert_gguf(package_path(spec), spec.gguf_file)
    from reasonembed_rag.jsonl import read_jsonl

    log = args.output / "sweep.jsonl"
    done = {row["name"]: row for _, row in read_jsonl(log)} if log.exists() else {}
    todo = [c for c in grid(args.grid) if config_name(c) not in done]
    backbone = {} if args.model == BASE["model"] else {"model": args.model}
    threads = max(1, (os.cpu_count() or 2) // max(args.jobs, 1))
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {}
        for config in todo:
            name = config_name(config)
            futures[
                pool.submit(
                    _guarded,
                    {**config, **backbone},
                    args.output / "split",
                    args.output / "runs" / name,
                    tasks,
                    device,
                    threads,
                    started + args.deadline_s,
                )
            ] = name
        for future in as_completed(futures):
            row = future.result()
            if row is None:
                continue
            done[row["name"]] = row
            with log.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            shutil.rmtree(args.output / "runs" / row["name"], ignore_errors=True)
            print(json.dumps(row), flush=True)

    rows = sorted(done.values(), key=lambda r: -r["validation"])
    if not rows:
        raise SystemExit("No configuration finished before the deadline.")
    best = rows[0]
    summary: dict[str, Any] = {
        "base": BASE,
        "validation_queries": len(held_out),
        "device": device,
        "runs": rows,
        "chosen": best["config"],
        "final": {},
    }
    print(f"chosen {best['name']}: validation {best['validation']}, test {best['test']}", flush=True)
    if not args.no_final:
        # Redapter and its InfoNCE twin on all the data: same settings, batches and steps; only the loss differs.
        finals = {"reasonembed-smollm2-135m": "redapter", "reasonembed-basic-smollm2-135m": "infonce"}
        with ProcessPoolExecutor(len(finals), mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(
                    train_and_score,
                    {**best["config"], **backbone, "loss": loss},
                    args.data,
                    args.output / "final" / name,
                    {"test": tasks["test"]},
                    device,
                    threads,
                ): name
                for name, loss in finals.items()
            }
            for future in as_completed(futures):
                summary["final"][futures[future]] = row = future.result()
                print(json.dumps(row), flush=True)
    summary["seconds"] = round(time.time() - started, 1)
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def _guarded(
    config: dict[str, Any], data: Path, output: Path, tasks: dict[str, Any], device: str, threads: int, deadline: float
) -> dict[str, Any] | None:
    if time.time() > deadline:
        return None
    return train_and_score(config, data, output, tasks, device, threads)


if __name__ == "__main__":
    raise SystemExit(main())
