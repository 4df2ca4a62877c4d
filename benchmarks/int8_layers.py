"""Which linear layers dynamic int8 may quantise: chosen on the out-of-domain validation, never on the test side.

For each model, embeds ``champ_concepts_ood`` (42 train-side problems of held-out CHAMP categories, 89 concepts) in
float32 and with three int8 variants, in one process: every linear layer; all but each feed-forward block's output
projection (``down_proj`` / BERT's FFN ``output.dense``: what ``quantize="int8"`` does); and all but every output
projection (attention too). Printed per variant: how many linear layers are int8, nDCG@10 and its change against
float, the mean cosine between the float and int8 vector of every text, and the speed ratio (float s / int8 s).

    nice python benchmarks/int8_layers.py --models minilm-l6,reasonembed-smollm2-135m
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="minilm-l6,reasonembed-smollm2-135m")
    parser.add_argument("--task", default="champ_concepts_ood", help="offline task to measure on (the validation)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from reasonembed_rag import ReasonEmbedEncoder
    from reasonembed_rag.encoder import _is_feed_forward_output
    from reasonembed_rag.evaluation.metrics import evaluate_run
    from reasonembed_rag.evaluation.tasks import OFFLINE, load_tasks
    from reasonembed_rag.retrieval import exact_top_k

    warnings.filterwarnings("ignore")
    (task,) = load_tasks(OFFLINE, [args.task])
    doc_ids = list(task.documents)
    documents = [task.documents[d] for d in doc_ids]
    queries = [q.text for q in task.queries]
    excluded = {q.id: q.excluded_ids for q in task.queries}

    def measure(encoder: ReasonEmbedEncoder) -> tuple[np.ndarray, float, float]:
        start = time.perf_counter()
        docs = encoder.encode_documents(documents, show_progress=False)
        found = encoder.encode_queries(queries, instruction=task.instruction, show_progress=False)
        seconds = time.perf_counter() - start
        positions, scores = exact_top_k(found @ docs.T, len(doc_ids))
        run = {
            q.id: {doc_ids[p]: float(s) for p, s in zip(positions[row], scores[row], strict=True)}
            for row, q in enumerate(task.queries)
        }
        return np.concatenate([docs, found]), seconds, evaluate_run(run, task.qrels, excluded)[0]["ndcg@10"]

    def is_output(name: str) -> bool:
        return _is_feed_forward_output(name) or name.endswith(("o_proj", "attention.output.dense"))

    variants = {
        "every linear layer": lambda name: True,
        "all but the FFN output (default)": lambda name: not _is_feed_forward_output(name),
        "all but every output projection": lambda name: not is_output(name),
    }
    print(f"task {task.name}: {len(queries)} queries, {len(documents)} documents; torch {torch.__version__}")
    print("| model | int8 layers | linear int8 | nDCG@10 | change (points) | mean cosine | speed ratio |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for model in args.models.split(","):
        base = ReasonEmbedEncoder.from_pretrained(model, device="cpu")
        vectors, seconds, ndcg = measure(base)
        print(f"| {model} | none (float32) | 0 | {ndcg * 100:.2f} | | | |", flush=True)
        for label, keep in variants.items():
            encoder = ReasonEmbedEncoder.from_pretrained(model, device="cpu")
            linear = [n for n, m in encoder.model.named_modules() if isinstance(m, torch.nn.Linear)]
            chosen = {name: per_channel_dynamic_qconfig for name in linear if keep(name)}
            quantize_dynamic(encoder.model, chosen, inplace=True)
            int8, int8_seconds, int8_ndcg = measure(encoder)
            cosine = float(np.mean(np.sum(int8 * vectors, axis=1)))
            print(
                f"| {model} | {label} | {len(chosen)}/{len(linear)} | {int8_ndcg * 100:.2f} | "
                f"{(int8_ndcg - ndcg) * 100:+.2f} | {cosine:.4f} | {seconds / int8_seconds:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
