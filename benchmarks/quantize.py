"""Dynamic int8 (``quantize="int8"``) against float32 on CPU, on the same texts, in one process.

For each model: the offline CHAMP test side (``champ_concepts``: 109 problems, 89 concepts) is embedded by the float
and the int8 encoder, alternately ``--repeat`` times (the best time of each kept, so a busy machine slows both alike).
Printed: the speed ratio (float seconds / int8 seconds; above 1 means int8 is faster), nDCG@10 of each with exact
search, their difference in points, and the mean cosine between the float and int8 vector of every text.
Goal on CPU: int8 within 1.0 nDCG@10 point of float, and faster.

    nice python benchmarks/quantize.py --models minilm-l6,reasonembed-smollm2-135m
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="minilm-l6,reasonembed-smollm2-135m")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from reasonembed_rag import ReasonEmbedEncoder
    from reasonembed_rag.evaluation.metrics import evaluate_run
    from reasonembed_rag.evaluation.offline import CHAMP_TASK
    from reasonembed_rag.evaluation.tasks import OFFLINE, load_tasks
    from reasonembed_rag.retrieval import exact_top_k

    if args.threads:
        torch.set_num_threads(args.threads)
    (task,) = load_tasks(OFFLINE, [CHAMP_TASK])
    doc_ids = list(task.documents)
    documents = [task.documents[d] for d in doc_ids]
    queries = [q.text for q in task.queries]
    excluded = {q.id: q.excluded_ids for q in task.queries}

    def embed(encoder: ReasonEmbedEncoder) -> tuple[np.ndarray, np.ndarray, float]:
        start = time.perf_counter()
        docs = encoder.encode_documents(documents, show_progress=False)
        found = encoder.encode_queries(queries, instruction=task.instruction, show_progress=False)
        return docs, found, time.perf_counter() - start

    def ndcg(docs: np.ndarray, found: np.ndarray) -> float:
        positions, scores = exact_top_k(found @ docs.T, len(doc_ids))
        run = {
            q.id: {doc_ids[p]: float(s) for p, s in zip(positions[row], scores[row], strict=True)}
            for row, q in enumerate(task.queries)
        }
        return evaluate_run(run, task.qrels, excluded)[0]["ndcg@10"]

    print(
        f"task {task.name}: {len(queries)} queries, {len(documents)} documents; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, best of {args.repeat}"
    )
    print("| model | float s | int8 s | speed ratio | nDCG@10 float | nDCG@10 int8 | change (points) | mean cosine |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for alias in args.models.split(","):
        encoders = {
            "float": ReasonEmbedEncoder.from_pretrained(alias, device="cpu"),
            "int8": ReasonEmbedEncoder.from_pretrained(alias, device="cpu", quantize="int8"),
        }
        best = dict.fromkeys(encoders, float("inf"))
        vectors = {}
        for _ in range(args.repeat):
            for name, encoder in encoders.items():
                docs, found, seconds = embed(encoder)
                best[name] = min(best[name], seconds)
                vectors[name] = (docs, found)
        scores = {name: ndcg(*pair) for name, pair in vectors.items()}
        pairs = zip(vectors["float"], vectors["int8"], strict=True)
        cosine = float(np.mean(np.concatenate([np.sum(a * b, axis=1) for a, b in pairs])))
        print(
            f"| {alias} | {best['float']:.2f} | {best['int8']:.2f} | {best['float'] / best['int8']:.2f}x | "
            f"{100 * scores['float']:.2f} | {100 * scores['int8']:.2f} | "
            f"{100 * (scores['int8'] - scores['float']):+.2f} | {cosine:.4f} |"
        )


if __name__ == "__main__":
    main()
