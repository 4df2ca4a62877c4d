"""Choose a shipped model's settings on the out-of-domain validation, then measure seeds of the choice.

    python scripts/sweep_minilm.py sweep --data data/champ-ood/train --output outputs/minilm-sweep
    python scripts/sweep_minilm.py seeds --data data/champ-ood/train --output outputs/minilm-seeds \
        --config '{"learning_rate": 1e-4, "max_steps": 16}' --seeds 42,43,44
    python scripts/sweep_minilm.py sweep --model smollm2-135m --data data/champ-ood/mix --output outputs/smol-sweep
    python scripts/sweep_minilm.py cv --output outputs/cv --cv-name mix --remixer data/remixer-champ \
        --config '{"learning_rate": 3e-4}' --soup --seeds 42,43,44
    python scripts/sweep_minilm.py cv-fusion --output outputs/cv --cv-name mix --config '{"learning_rate": 3e-4}' \
        --seeds 42 --alpha 0.75

``--model`` picks the backbone and its base settings (:data:`PRESETS`: ``reasonembed-minilm-l6``'s on
all-MiniLM-L6-v2, ``reasonembed-smollm2-135m``'s on SmolLM2-135M); ``--config`` overrides any of them.

The validation is ``champ_concepts_ood`` (TRAIN problems of held-out CHAMP categories; their gold concepts are
never trained on, see :func:`reasonembed_rag.evaluation.offline.champ_ood_rows`), the training data is
``reasonembed-train champ-data``'s output (nothing of the held-out part). Each run trains a LoRA adapter on
the backbone and is scored at several WiSE-FT weights ``alpha``: the weights ``W0 + alpha * (W1 - W0)``
between the backbone (``W0``) and the trained model (``W1``), which for a LoRA adapter is exactly the adapter scaled
by ``alpha``. ``sweep`` scores the validation only; ``seeds`` also the TEST side, and writes per-query nDCG@10 for
the paired tests. Scoring is exact cosine search + the project's scorer (``evaluate_run``), as ``reasonembed-rag
bright --via direct`` does. ``OUTPUT/runs.jsonl`` gets one line per run; a rerun skips finished runs.
``score`` scores model folders trained elsewhere (``reasonembed-train train``, one seed per process) as ``seeds``
does. ``cv`` is the sturdier check: leave-one-category-out over all five CHAMP categories of the TRAIN side (each fold
trains on ``champ-data --hold-out CATEGORY`` data plus the ``--remixer`` folders, filtered the same way, and scores
that category's TRAIN problems), pooled over the 114 TRAIN problems instead of the validation's 42, with a paired
test against ``minilm-l6`` on the same queries. ``cv --soup`` trains each setting once per ``--seeds`` seed in
every fold, keeps the fold models and also scores their uniform soup. ``cv-fusion`` takes those fold models (one
seed, one alpha) and tries the hybrid's BM25 weight with plain and LLM-expanded queries (:func:`cv_fusion`).
``baseline`` scores untrained models (``NAME@POOLING`` overrides the pooling); ``report`` prints per-seed numbers,
mean +- std and paired tests per query against one of them (needs scipy, which the test extra brings).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

MINILM: dict[str, Any] = {
    "model": "minilm-l6",
    "query_format": "{query}",  # all-MiniLM-L6-v2 was trained without instructions
    "lora": True,
    "lora_rank": 16,
    "lora_alpha": 32,
    "loss": "redapter",
    "temperature": 0.05,  # sentence-transformers' scale 20, what MiniLM was trained with
    "batch_size": 8,
    "group_size": 4,  # 1 positive + 3 mined negatives (+ in-batch); small enough for a shared 2-core CPU
    "query_max_length": 128,
    "passage_max_length": 128,
    "reasoning_query_max_length": 256,
    "warmup_ratio": 0.1,
    "redapter_warmup_steps": 2,
    "mask_false_negatives": True,
    "learning_rate": 1e-4,
    "epochs": 2,
    "seed": 42,
    "adapter_dtype": "float16",
    "sub_batch_size": 16,
    "save_steps": 0,
}
SMOLLM2: dict[str, Any] = {
    "model": "smollm2-135m",
    "pooling": "mean",  # the 4-bit backbone's last-token states are bunched (training/README.md)
    "lora": True,
    "lora_rank": 32,
    "lora_alpha": 64,
    "loss": "redapter",
    "temperature": 0.02,
    "batch_size": 4,
    "group_size": 4,
    "query_max_length": 128,
    "passage_max_length": 256,
    "reasoning_query_max_length": 256,
    "warmup_ratio": 0.1,
    "redapter_warmup_steps": 2,
    "mask_false_negatives": True,
    "learning_rate": 2e-4,
    "epochs": 1,
    "seed": 42,
    "adapter_dtype": "float16",
    "sub_batch_size": 4,  # length-sorted chunks: 2-4x faster than one padded pass on CPU
    "save_steps": 0,
}
PRESETS: dict[str, dict[str, Any]] = {"minilm-l6": MINILM, "smollm2-135m": SMOLLM2}
"""Base settings per backbone (``--model``)."""
GRIDS: dict[str, list[dict[str, Any]]] = {
    "minilm-l6": [{"learning_rate": lr} for lr in (1e-4, 3e-4)],
    "smollm2-135m": [{"pooling": p, "learning_rate": lr} for p in ("mean", "lasttoken") for lr in (2e-4, 5e-4)],
}
"""The settings ``sweep`` tries on each training folder (on top of the preset; each is scored at every alpha)."""
BASELINES: dict[str, tuple[str, ...]] = {
    "minilm-l6": ("minilm-l6",),
    "smollm2-135m": ("smollm2-135m", "smollm2-135m@mean", "minilm-l6"),
}
"""The untrained models ``baseline`` scores (``NAME@POOLING``: that pooling instead of the model's own)."""
ALPHAS = (0.25, 0.5, 0.75, 1.0)


def name_of(config: dict[str, Any], data: Path) -> str:
    short = {"learning_rate": "lr", "epochs": "e", "max_steps": "s", "temperature": "t", "seed": "seed"}
    parts = [f"{short.get(k, k)}{v}" for k, v in sorted(config.items())]
    return "-".join([data.name, *parts]).replace("_", "")


def load_tasks(names: list[str]) -> dict[str, Any]:
    from reasonembed_rag.evaluation.data import load_folder_task
    from reasonembed_rag.evaluation.tasks import offline_data_root

    root = offline_data_root()
    return {name: load_folder_task(root, name) for name in names}


def score(encoder: Any, tasks: dict[str, Any]) -> dict[str, Any]:
    """{task: {"ndcg@10": x100, "per_query": {id: ndcg@10}}} by exact cosine search over each task's corpus.

    Each task also gets ``"<task>+hybrid"``: the same run fused with BM25 (:func:`reasonembed_rag.fusion.fuse`, the
    default 0.75 dense / 0.25 BM25 min-max fusion every path uses).
    """
    from reasonembed_rag.evaluation.metrics import evaluate_run
    from reasonembed_rag.fusion import fuse

    result = {}
    for name, task in tasks.items():
        ids = list(task.documents)
        documents = encoder.encode_documents([task.documents[i] for i in ids], show_progress=False)
        queries = encoder.encode_queries([q.text for q in task.queries], instruction=task.instruction)
        scores = queries @ documents.T
        run = {q.id: dict(zip(ids, map(float, row), strict=True)) for q, row in zip(task.queries, scores, strict=True)}
        lexical = bm25_rankings(task)
        hybrid = {q: dict(fuse(sorted(hits.items(), key=lambda hit: -hit[1]), lexical[q])) for q, hits in run.items()}
        excluded = {q.id: q.excluded_ids for q in task.queries}
        for key, scored in ((name, run), (f"{name}+hybrid", hybrid)):
            mean, per_query = evaluate_run(scored, task.qrels, excluded)
            result[key] = {
                "ndcg@10": round(100 * mean["ndcg@10"], 2),
                "per_query": {q: round(m["ndcg@10"], 5) for q, m in per_query.items()},
            }
    return result


_BM25: dict[str, dict[str, Any]] = {}


def bm25_rankings(task: Any) -> dict[str, Any]:
    """{query id: BM25 ranking} over the task's corpus (the project's one BM25), computed once per task."""
    from reasonembed_rag.retrieval import BM25Index

    if task.name not in _BM25:
        hits = BM25Index(task.documents).search([q.text for q in task.queries], len(task.documents))
        _BM25[task.name] = {q.id: ranking for q, ranking in zip(task.queries, hits, strict=True)}
    return _BM25[task.name]


def load_encoder(name: str) -> Any:
    """A registry alias, folder, or ``NAME@POOLING`` (the same model with that pooling)."""
    from reasonembed_rag.encoder import ReasonEmbedEncoder

    model, _, pooling = name.partition("@")
    return ReasonEmbedEncoder.from_pretrained(model, pooling=pooling or None)


def averaged(folders: list[Path], backbone: str) -> tuple[Any, Any]:
    """``(encoder, set_alpha)``: the trained model in ``folders`` (several: their uniform soup, the mean of their
    weights) and a function that loads ``W0 + alpha * (W1 - W0)`` into it (W0 the backbone, W1 the trained weights)."""
    import torch

    from reasonembed_rag.encoder import ReasonEmbedEncoder

    tuned = ReasonEmbedEncoder.from_pretrained(folders[0])
    base = ReasonEmbedEncoder.from_pretrained(backbone).model.state_dict()
    trained = {k: v.clone() for k, v in tuned.model.state_dict().items()}
    for folder in folders[1:]:
        for k, v in ReasonEmbedEncoder.from_pretrained(folder).model.state_dict().items():
            if v.is_floating_point():
                trained[k] += v
    trained = {k: v / len(folders) if v.is_floating_point() else v for k, v in trained.items()}

    def set_alpha(alpha: float) -> None:
        with torch.no_grad():
            tuned.model.load_state_dict(
                {k: base[k] + alpha * (v - base[k]) if v.is_floating_point() else v for k, v in trained.items()}
            )

    return tuned, set_alpha


def interpolated_scores(
    folders: Path | list[Path], backbone: str, tasks: dict[str, Any], alphas: tuple[float, ...]
) -> dict[str, Any]:
    """Scores of ``W0 + alpha * (W1 - W0)`` for each alpha (:func:`averaged`; several folders: their soup)."""
    tuned, set_alpha = averaged([folders] if isinstance(folders, Path) else folders, backbone)
    result = {}
    for alpha in alphas:
        set_alpha(alpha)
        result[str(alpha)] = score(tuned, tasks)
    return result


def run_one(
    base: dict[str, Any], config: dict, data: Path, output: Path, tasks: dict[str, Any], alphas: tuple[float, ...]
) -> dict:
    from reasonembed_rag.training.trainer import TrainingArguments, train

    started = time.time()
    values = {**base, **config, "data": str(data), "output": str(output), "overwrite": True, "progress": False}
    result = train(TrainingArguments.from_dict(values))
    row = {"name": output.name, "config": config, "steps": result.steps, "train_s": round(time.time() - started, 1)}
    row["scores"] = interpolated_scores(output, base["model"], tasks, alphas)
    return row


def summary(row: dict) -> str:
    """A run's nDCG@10 per alpha and task, as one JSON line."""
    return json.dumps({a: {t: s["ndcg@10"] for t, s in v.items()} for a, v in row["scores"].items()})


def paired_report(rows: list[dict], baseline: dict, alpha: str, tasks: list[str]) -> dict[str, Any]:
    """Per-seed nDCG@10, mean +- std, and paired tests per query against the baseline (scipy)."""
    import numpy as np
    from scipy.stats import ttest_rel, wilcoxon

    report: dict[str, Any] = {"alpha": alpha, "seeds": {}, "tasks": {}}
    lines = ["| seed | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for row in rows:
        scores = row["scores"][alpha]
        report["seeds"][row["config"]["seed"]] = {t: scores[t]["ndcg@10"] for t in tasks}
        lines.append(f"| {row['config']['seed']} | " + " | ".join(f"{scores[t]['ndcg@10']:.1f}" for t in tasks) + " |")
    for task in tasks:
        base = baseline["scores"][task]["per_query"]
        ids = sorted(base)
        reference = np.array([base[q] for q in ids])
        per_seed = np.array([[row["scores"][alpha][task]["per_query"][q] for q in ids] for row in rows])
        means = per_seed.mean(axis=1) * 100
        tests = []
        for seed_scores in [*per_seed, per_seed.mean(axis=0)]:
            differs = bool(np.any(seed_scores != reference))
            tests.append(
                {
                    "delta": round(float((seed_scores - reference).mean() * 100), 2),
                    "t_test_p": round(float(ttest_rel(seed_scores, reference).pvalue), 4) if differs else 1.0,
                    "wilcoxon_p": round(float(wilcoxon(seed_scores, reference).pvalue), 4) if differs else 1.0,
                }
            )
        report["tasks"][task] = {
            "queries": len(ids),
            "baseline": round(float(reference.mean() * 100), 2),
            "mean": round(float(means.mean()), 2),
            "std": round(float(means.std(ddof=1)), 2) if len(means) > 1 else 0.0,
            "per_seed_vs_baseline": tests[:-1],
            "seed_mean_vs_baseline": tests[-1],
        }
    lines.append(
        "| mean +- std | "
        + " | ".join(f"{report['tasks'][t]['mean']:.1f} +- {report['tasks'][t]['std']:.1f}" for t in tasks)
        + " |"
    )
    baseline_cells = " | ".join(f"{report['tasks'][t]['baseline']:.1f}" for t in tasks)
    lines.append(f"| {baseline['name']} | {baseline_cells} |")
    for task in tasks:
        entry = report["tasks"][task]
        seeds = ", ".join(
            f"{seed}: {t['delta']:+.1f} (t p={t['t_test_p']}, Wilcoxon p={t['wilcoxon_p']})"
            for seed, t in zip(report["seeds"], entry["per_seed_vs_baseline"], strict=True)
        )
        mean = entry["seed_mean_vs_baseline"]
        lines.append(
            f"\n{task} ({entry['queries']} queries), paired per query against {baseline['name']}: {seeds}; "
            f"per-query mean of the seeds {mean['delta']:+.1f} (t p={mean['t_test_p']}, "
            f"Wilcoxon p={mean['wilcoxon_p']})."
        )
    report["markdown"] = "\n".join(lines)
    return report


def fold_task(category: str) -> Any:
    """The TRAIN problems of one CHAMP category against all 89 concepts (a leave-one-category-out fold)."""
    from reasonembed_rag.evaluation.data import RetrievalTask
    from reasonembed_rag.evaluation.offline import CHAMP_TRAIN_TASK, champ_categories

    task = load_tasks([CHAMP_TRAIN_TASK])[CHAMP_TRAIN_TASK]
    of = champ_categories()
    queries = [q for q in task.queries if of[q.id] == category]
    return RetrievalTask(f"cv-{category}", queries, task.documents, task.instruction)


def cross_validate(args: argparse.Namespace, alphas: tuple[float, ...]) -> int:
    """``cv`` mode: each setting trained once per held-out category; pooled per-query nDCG@10 per alpha."""
    import numpy as np
    from scipy.stats import ttest_rel

    from reasonembed_rag.evaluation.offline import CHAMP_TRAIN_TASK, champ_categories
    from reasonembed_rag.training.remixer.train_side import write_ood_training_data

    categories = sorted(set(champ_categories().values()))
    log = args.output / "cv.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(row["name"], row["fold"]) for row in rows}
    baseline_file = args.output / "cv-baseline.json"
    if not baseline_file.exists():
        tasks = load_tasks([CHAMP_TRAIN_TASK])
        baseline_file.write_text(json.dumps(score(load_encoder(BASELINES[args.model][-1]), tasks)))
    baseline = json.loads(baseline_file.read_text())
    reference = baseline[CHAMP_TRAIN_TASK]["per_query"]
    print(
        f"{BASELINES[args.model][-1]}: {baseline[CHAMP_TRAIN_TASK]['ndcg@10']:.2f}, "
        f"+hybrid {baseline[CHAMP_TRAIN_TASK + '+hybrid']['ndcg@10']:.2f} over the TRAIN side",
        flush=True,
    )
    configs = [args.config] if args.config else GRIDS[args.model]
    soups: list[tuple[str, list[str]]] = []  # (soup name, the run names of its seeds)
    if args.soup:
        seeds = [int(seed) for seed in args.seeds.split(",")]
        seeded = [[{**config, "seed": seed} for seed in seeds] for config in configs]
        soups = [
            (
                f"{name_of(config, Path(args.cv_name))}-soup{'+'.join(map(str, seeds))}",
                [name_of(c, Path(args.cv_name)) for c in group],
            )
            for config, group in zip(configs, seeded, strict=True)
        ]
        configs = [config for group in seeded for config in group]
    for config in configs:
        name = name_of(config, Path(args.cv_name))
        for category in categories:
            run = args.output / "runs" / f"{name}-{category}"
            if (name, category) in done and (run.exists() or not args.soup):
                continue
            data = args.output / "data" / args.cv_name / category
            if not data.exists():
                write_ood_training_data(data, categories=(category,), remixer=args.remixer, miner="minilm-l6")
            row = run_one(PRESETS[args.model], config, data, run, {category: fold_task(category)}, alphas)
            row.update(name=name, fold=category, data=str(data))
            with log.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            if not (args.soup or args.keep):
                shutil.rmtree(run, ignore_errors=True)
            print(name, category, row["steps"], "steps", row["train_s"], "s", summary(row), flush=True)
    for soup, names in soups:
        for category in categories:
            if (soup, category) in done:
                continue
            runs = [args.output / "runs" / f"{name}-{category}" for name in names]
            row = {"name": soup, "fold": category, "config": {"soup": names}}
            row["scores"] = interpolated_scores(
                runs, PRESETS[args.model]["model"], {category: fold_task(category)}, alphas
            )
            with log.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(soup, category, summary(row), flush=True)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    for name in [*(name_of(config, Path(args.cv_name)) for config in configs), *(soup for soup, _ in soups)]:
        folds = [row for row in rows if row["name"] == name]
        for alpha in map(str, alphas):
            for variant in ("", "+hybrid"):
                per_query = {
                    q: v
                    for row in folds
                    for q, v in row["scores"][alpha].get(row["fold"] + variant, {}).get("per_query", {}).items()
                }
                if not per_query:
                    continue  # folds scored before the hybrid was added
                ids = sorted(per_query)
                mine, base = np.array([per_query[q] for q in ids]), np.array([reference[q] for q in ids])
                p = float(ttest_rel(mine, base).pvalue) if np.any(mine != base) else 1.0
                delta = 100 * (mine - base).mean()
                print(
                    f"{name}{variant} alpha {alpha}: {100 * mine.mean():.2f} over {len(ids)} queries "
                    f"({BASELINES[args.model][-1]} {100 * base.mean():.2f}, {delta:+.2f}, t p={p:.3f})",
                    flush=True,
                )
    return 0


FUSION_WEIGHTS = (0.0, 0.1, 0.25, 0.4, 0.5, 0.75, 1.0)
"""The BM25 shares ``cv-fusion`` tries (0 = dense alone, 1 = BM25 alone)."""


def cv_fusion(args: argparse.Namespace, alphas: tuple[float, ...]) -> int:
    """``cv-fusion`` mode: the hybrid's BM25 weight, with and without expansion, chosen out of domain.

    Reuses ``cv --soup --keep``'s fold models of one setting (``--config``, seed ``--seeds``' first) at the chosen
    WiSE-FT weight (``--alpha``), and ``minilm-l6``. Each TRAIN problem is searched plain and expanded (the local LLM's
    sketch, ``--expansion-max-tokens``, cached in ``OUTPUT/expansions.jsonl``) by the fold model that never saw its
    category, and by BM25; min-max fusion at each of :data:`FUSION_WEIGHTS`; nDCG@10 pooled over the 114 problems.
    """
    import numpy as np
    from scipy.stats import ttest_rel

    from reasonembed_rag.encoder import ReasonEmbedEncoder
    from reasonembed_rag.evaluation.metrics import evaluate_run
    from reasonembed_rag.evaluation.offline import champ_categories
    from reasonembed_rag.expansion import QueryExpander
    from reasonembed_rag.fusion import Hybrid, fuse
    from reasonembed_rag.llm import choose_llm
    from reasonembed_rag.retrieval import BM25Index

    alpha = float(args.alpha)
    seed = int(args.seeds.split(",")[0])
    name = name_of({**args.config, "seed": seed}, Path(args.cv_name))
    categories = sorted(set(champ_categories().values()))
    folds = {category: fold_task(category) for category in categories}
    task = next(iter(folds.values()))
    ids = list(task.documents)
    base = ReasonEmbedEncoder.from_pretrained(PRESETS[args.model]["model"])
    per_query: dict[str, dict[str, float]] = {}
    with QueryExpander(
        choose_llm(), cache=args.output / "expansions.jsonl", max_tokens=args.expansion_max_tokens
    ) as expander:
        for category, fold in folds.items():
            plain = [q.text for q in fold.queries]
            texts = {"plain": plain, "expanded": expander.expand(plain, instruction=fold.instruction)}
            tuned, set_alpha = averaged([args.output / "runs" / f"{name}-{category}"], PRESETS[args.model]["model"])
            set_alpha(alpha)
            excluded = {q.id: q.excluded_ids for q in fold.queries}
            for model, encoder in (("minilm-l6", base), (name, tuned)):
                documents = encoder.encode_documents([fold.documents[i] for i in ids], show_progress=False)
                for variant, queries in texts.items():
                    scores = encoder.encode_queries(queries, instruction=fold.instruction) @ documents.T
                    lexical = BM25Index(fold.documents).search(queries, len(ids))
                    dense = [sorted(zip(ids, map(float, row), strict=True), key=lambda hit: -hit[1]) for row in scores]
                    for weight in FUSION_WEIGHTS:
                        run = {
                            q.id: dict(fuse(hits, bm25, hybrid=Hybrid(weight=weight)))
                            for q, hits, bm25 in zip(fold.queries, dense, lexical, strict=True)
                        }
                        _, metrics = evaluate_run(run, fold.qrels, excluded)
                        per_query.setdefault(f"{model}|{variant}|{weight:g}", {}).update(
                            {q: m["ndcg@10"] for q, m in metrics.items()}
                        )
    (args.output / f"cv-fusion-{name}-alpha{alpha:g}.json").write_text(json.dumps(per_query) + "\n")
    reference = per_query["minilm-l6|plain|0"]
    ids_q = sorted(reference)
    base_scores = np.array([reference[q] for q in ids_q])
    print(f"BM25 weight -> pooled nDCG@10 x 100 over {len(ids_q)} TRAIN problems (paired t against minilm-l6 plain)")
    for key, scores in per_query.items():
        mine = np.array([scores[q] for q in ids_q])
        p = float(ttest_rel(mine, base_scores).pvalue) if np.any(mine != base_scores) else 1.0
        print(f"{key}: {100 * mine.mean():.2f} ({100 * (mine - base_scores).mean():+.2f}, t p={p:.3f})", flush=True)
    print(expander.summary(), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("sweep", "seeds", "score", "baseline", "report", "cv", "cv-fusion"))
    parser.add_argument("--model", choices=sorted(PRESETS), default="minilm-l6", help="backbone and its base settings")
    parser.add_argument("--data", type=Path, action="append", help="training folder(s); sweep tries each")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument(
        "--config",
        type=json.loads,
        default={},
        help="seeds: the chosen settings; sweep: one instead of the grid (JSON)",
    )
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--alphas", default=",".join(map(str, ALPHAS)))
    parser.add_argument("--keep", action="store_true", help="keep each run's model folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folders", type=Path, nargs="+", default=[], help="score: trained model folders")
    parser.add_argument("--tasks", help="score: comma-separated tasks (default: the validation and the test side)")
    parser.add_argument("--part", default="0/1", help="I/N: run every N-th plan from the I-th (parallel workers)")
    parser.add_argument("--baseline", type=Path, help="report: the baseline mode's runs.jsonl")
    parser.add_argument("--baseline-name", help="report: which of its rows (default: the first)")
    parser.add_argument("--alpha", default="1.0", help="report: the WiSE-FT alpha chosen on the validation")
    parser.add_argument("--remixer", action="append", default=[], help="cv: ReMixer folders filtered into each fold")
    parser.add_argument("--cv-name", default="gold", help="cv: a name for this data mix (its folds' folder)")
    parser.add_argument(
        "--soup",
        action="store_true",
        help="cv: train each setting once per --seeds seed and also score their uniform soup (mean of the weights)",
    )
    parser.add_argument("--expansion-max-tokens", type=int, default=64, help="cv-fusion: the sketch's token cap")
    args = parser.parse_args(argv)

    import torch

    from reasonembed_rag.evaluation.offline import CHAMP_OOD_TASK, CHAMP_TASK

    torch.set_num_threads(args.threads)
    alphas = tuple(float(a) for a in args.alphas.split(","))
    args.output.mkdir(parents=True, exist_ok=True)
    log = args.output / "runs.jsonl"
    if args.mode == "cv":
        return cross_validate(args, alphas)
    if args.mode == "cv-fusion":
        return cv_fusion(args, alphas)
    if args.mode == "baseline":
        tasks = load_tasks([CHAMP_OOD_TASK, CHAMP_TASK])
        for model in BASELINES[args.model]:
            row = {"name": model, "scores": score(load_encoder(model), tasks)}
            with log.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps({k: v["ndcg@10"] for k, v in row["scores"].items()}), flush=True)
        return 0
    if args.mode == "score":
        tasks = load_tasks(args.tasks.split(",") if args.tasks else [CHAMP_OOD_TASK, CHAMP_TASK])
        for folder in args.folders:
            trained = json.loads((folder / "training_args.json").read_text())
            config = {key: trained[key] for key in ("seed", "loss", "learning_rate", "pooling", "data")}
            steps = json.loads((folder / "training_info.json").read_text())["steps"]
            row = {"name": folder.name, "config": config, "steps": steps}
            row["scores"] = interpolated_scores(folder, trained["model"], tasks, alphas)
            with log.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(folder.name, summary(row), flush=True)
        return 0
    if args.mode == "report":
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        baselines = [json.loads(line) for line in args.baseline.read_text().splitlines()]
        named = [row for row in baselines if args.baseline_name in (None, row["name"])]
        if not named:
            parser.error(f"no baseline {args.baseline_name!r} in {args.baseline}: {[r['name'] for r in baselines]}")
        baseline = named[0]
        report = paired_report(rows, baseline, str(float(args.alpha)), [CHAMP_TASK, CHAMP_OOD_TASK])
        (args.output / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        print(report["markdown"])
        return 0
    task_names = [CHAMP_OOD_TASK] if args.mode == "sweep" else [CHAMP_OOD_TASK, CHAMP_TASK]
    tasks = load_tasks(task_names)
    done = {row["name"] for row in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
    if args.mode == "sweep":
        configs = [args.config] if args.config else GRIDS[args.model]
        plans = [(config, data) for data in args.data for config in configs]
    else:
        plans = [({**args.config, "seed": int(seed)}, args.data[0]) for seed in args.seeds.split(",")]
    part, parts = map(int, args.part.split("/"))
    for config, data in plans[part::parts]:
        name = name_of(config, data)
        if name in done:
            continue
        row = run_one(PRESETS[args.model], config, data, args.output / "runs" / name, tasks, alphas)
        row["data"] = str(data)
        with log.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        if not args.keep:
            shutil.rmtree(args.output / "runs" / name, ignore_errors=True)
        print(name, row["steps"], "steps", row["train_s"], "s", summary(row), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
