"""Encoding speed: ReasonEmbedEncoder vs sentence-transformers ``encode`` on the same model, texts and process.

Texts are real math text (CHAMP problems, solutions and concepts, from the ``champ-dataset`` package) cut to
token lengths drawn log-uniformly from 32-2048 (BRIGHT-like: many short posts, a long tail of long documents),
plus a uniform set where every text has the same length. Prints texts/s for each, the ratio, peak memory, and for
bfloat16 the speed and the minimum cosine to the float32 vectors.

    python benchmarks/encode_speed.py --model minilm-l6 --n 2000
    python benchmarks/encode_speed.py --model smollm2-135m --n 200 --dtypes float32,bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def corpus_text() -> str:
    import champ_dataset

    dataset = champ_dataset.load("v0")
    parts = [c.text for c in dataset.concepts.values()]
    for problem in dataset.problems.values():
        parts.append(problem.text)
        parts.extend(step.text for step in problem.solution.steps)
        parts.extend(m.text for conv in problem.conversations.values() for m in conv.messages if m.text)
    return "\n".join(parts)[:3_000_000]  # about 800k tokens: plenty of distinct windows


def make_texts(tokenizer, n: int, *, uniform: int | None, seed: int = 0) -> list[str]:
    """Windows of real text with target token lengths (log-uniform 32-2048, or all ``uniform`` long)."""
    ids = tokenizer(corpus_text(), add_special_tokens=False)["input_ids"]
    rng = np.random.default_rng(seed)
    lengths = np.full(n, uniform) if uniform else np.exp(rng.uniform(np.log(32), np.log(2048), size=n)).astype(int)
    texts = []
    for length in lengths:
        start = int(rng.integers(0, len(ids) - length - 1))
        texts.append(tokenizer.decode(ids[start : start + length]))
    return texts


def sentence_transformer(encoder, pooling: str, max_length: int, dtype: torch.dtype):
    from sentence_transformers import SentenceTransformer, models

    path = encoder.source
    transformer = models.Transformer(path, max_seq_length=max_length, model_args={"dtype": dtype})
    if pooling == "lasttoken":
        transformer.tokenizer.padding_side = "left"
        if transformer.tokenizer.pad_token is None:
            transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
    pool = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode=pooling)
    return SentenceTransformer(modules=[transformer, pool, models.Normalize()], device="cpu")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--uniform-length", type=int, default=256)
    parser.add_argument("--st-batch-size", type=int, default=32, help="sentence-transformers batch size")
    parser.add_argument("--dtypes", default="float32", help="comma list; the first is the reference")
    parser.add_argument("--other-dtype-n", type=int, default=200, help="texts for the other dtypes (slow on CPU)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", default=None, help="also write results here")
    parser.add_argument("--save-texts", default=None, help="write the generated text sets to this JSON file")
    parser.add_argument("--texts-file", default=None, help="read text sets from a --save-texts file (no champ needed)")
    args = parser.parse_args()

    from reasonembed_rag import ReasonEmbedEncoder

    results: dict[str, object] = {"model": args.model, "n": args.n, "torch_threads": torch.get_num_threads()}
    dtypes = args.dtypes.split(",")
    reference = ReasonEmbedEncoder.from_pretrained(args.model, dtype=dtypes[0], device=args.device)
    device = reference.devices[0]
    print(f"model={args.model} device={device} threads={torch.get_num_threads()} n={args.n}")
    if args.texts_file:
        with open(args.texts_file) as handle:
            sets = json.load(handle)
    else:
        sets = {
            "varied 32-2048": make_texts(reference.tokenizer, args.n, uniform=None),
            f"uniform {args.uniform_length}": make_texts(reference.tokenizer, args.n, uniform=args.uniform_length),
        }
    if args.save_texts:
        with open(args.save_texts, "w") as handle:
            json.dump(sets, handle)
    for label, texts in sets.items():
        tokens = sum(len(t) for t in reference.tokenize(texts))
        ours, ours_s = timed(lambda t=texts: reference.encode(t))
        st = sentence_transformer(reference, reference.config.pooling, reference.max_length, DTYPE[dtypes[0]])
        st.to(device)
        theirs, theirs_s = timed(
            lambda t=texts, st=st: st.encode(t, batch_size=args.st_batch_size, convert_to_numpy=True)
        )
        cosine = float((ours * theirs).sum(axis=1).min()) if reference.config.pooling != "lasttoken" else None
        row = {
            "texts": len(texts),
            "tokens": tokens,
            "ours_texts_per_s": len(texts) / ours_s,
            "st_texts_per_s": len(texts) / theirs_s,
            "ratio": theirs_s / ours_s,
            "min_cosine_vs_st": cosine,
        }
        print(
            f"[{label}] {tokens} tokens | ours {row['ours_texts_per_s']:.1f} texts/s | "
            f"sentence-transformers {row['st_texts_per_s']:.1f} texts/s | ratio {row['ratio']:.2f}x"
            + (f" | min cosine {cosine:.5f}" if cosine is not None else "")
        )
        results[label] = row
        for dtype in dtypes[1:]:
            other = ReasonEmbedEncoder.from_pretrained(args.model, dtype=dtype, device=args.device)
            subset = texts[: args.other_dtype_n]
            vectors, seconds = timed(lambda t=subset, o=other: o.encode(t))
            cos = float((vectors * ours[: len(subset)]).sum(axis=1).min())
            _, base_s = timed(lambda t=subset: reference.encode(t))
            print(
                f"[{label}] {dtype} on {len(subset)} texts: {len(subset) / seconds:.1f} texts/s "
                f"({base_s / seconds:.2f}x float32) "
                f"min cosine to float32 {cos:.5f}"
            )
            results[f"{label} {dtype}"] = {
                "texts_per_s": len(subset) / seconds,
                "speedup": base_s / seconds,
                "min_cosine": cos,
            }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["peak_rss_mb"] = peak
    if device.type == "cuda":
        results["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(
        f"peak RSS {peak:.0f} MB"
        + (f", peak CUDA {results['peak_cuda_mb']:.0f} MB" if "peak_cuda_mb" in results else "")
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

if __name__ == "__main__":
    main()
