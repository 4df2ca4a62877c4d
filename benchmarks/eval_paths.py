"""Seconds per task for each evaluation path, document embeddings already cached in Chroma.

Baseline: ``direct`` (encoder + exact search over the cached vectors). Target: each framework path <= 1.3x direct.
All paths run in this process on the same collection; each is timed ``--repeat`` times and the best kept.

    python benchmarks/eval_paths.py --model minilm-l6
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from reasonembed_rag import ReasonEmbedEncoder
    from reasonembed_rag.evaluation.data import load_folder_task
    from reasonembed_rag.evaluation.offline import CHAMP_TASK, build_offline_tasks
    from reasonembed_rag.evaluation.runner import VIAS, evaluate_dense

    with tempfile.TemporaryDirectory() as scratch:
        task = load_folder_task(build_offline_tasks(os.path.join(scratch, "data")), CHAMP_TASK)
        encoder = ReasonEmbedEncoder.from_pretrained(args.model)
        chroma = os.path.join(scratch, "chroma")
        evaluate_dense(task, encoder, chroma=chroma)  # index once: every timed run reuses the vectors
        best: dict[str, float] = {}
        scores: dict[str, float] = {}
        for _ in range(args.repeat):
            for via in VIAS:
                start = time.perf_counter()
                result = evaluate_dense(task, encoder, via=via, chroma=chroma)
                best[via] = min(best.get(via, float("inf")), time.perf_counter() - start)
                scores[via] = result.metrics["ndcg@10"]
                assert result.documents_embedded == 0
    print(f"task {task.name}: {len(task.queries)} queries, {len(task.documents)} documents, model {args.model}")
    for via in VIAS:
        print(f"{via:>10}: {best[via]:6.2f} s  ({best[via] / best['direct']:.2f}x direct)  nDCG@10 {scores[via]:.4f}")


if __name__ == "__main__":
    main()
