"""The trainer on real tiny models: training vectors are inference vectors, a 2-step run changes weights and exports
a folder that loads, adapter and merged exports agree, resume equals an uninterrupted run, checkpointing and
sub-batches do not change the result, several ranks train like one."""

from __future__ import annotations

import json
import random
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from reasonembed_rag import ReasonEmbedEncoder
from reasonembed_rag.training.trainer import Trainer, TrainingArguments, export_checkpoint, train

from .tiny_models import WORDS, build_tiny_decoder

TEXTS = ["the prime number theorem", "", "a much longer text about the circle and the triangle " * 6, "code\nlist"]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_training_data(folder: Path, *, rows: int = 12, seed: int = 0) -> Path:
    """Two tasks of random-word rows in the released schema."""
    rng = random.Random(seed)
    for task in ("alpha", "beta"):
        lines = []
        for _ in range(rows):
            lines.append(
                json.dumps(
                    {
                        "prompt": f"Given a {task} question, retrieve relevant passages.",
                        "query": _words(rng, rng.randint(3, 12)),
                        "reasoning_query": _words(rng, rng.randint(10, 30)),
                        "pos": [_words(rng, rng.randint(5, 25))],
                        "neg": [_words(rng, rng.randint(5, 25)) for _ in range(rng.randint(1, 5))],
                    }
                )
            )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{task}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: one thread is much faster than waking a second one for each small product."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_qwen3(tmp_path_factory) -> Path:
    return build_tiny_decoder(tmp_path_factory.mktemp("qwen3"), "qwen3")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_training_data(tmp_path_factory.mktemp("data"))


def make_args(model: Path, data: Path, output: Path, **overrides) -> TrainingArguments:
    values = dict(
        data=str(data),
        model=str(model),
        output=str(output),
        loss="redapter",
        batch_size=3,
        group_size=3,
        max_steps=2,
        warmup_ratio=0.0,
        learning_rate=1e-3,
        redapter_warmup_steps=1,
        progress=False,
        device="cpu",
    )
    values.update(overrides)
    return TrainingArguments(**values)


def _trainable(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in trainer.trainable_state().items()}


@pytest.mark.parametrize("kind", ["qwen3", "llama"])
def test_training_vectors_are_the_inference_vectors(tmp_path, data_dir, kind):
    """Same tokenization (end token kept), left padding, position ids and pooling as ReasonEmbedEncoder.encode."""
    model = build_tiny_decoder(tmp_path / kind, kind)
    trainer = Trainer(make_args(model, data_dir, tmp_path / "out"))
    trainer.model.eval()
    with torch.no_grad():
        vectors, tokens = trainer.embed(TEXTS, max_length=trainer.encoder.max_length, grad=False)
        short, _ = trainer.embed(TEXTS, max_length=8, grad=False)
    np.testing.assert_allclose(vectors.numpy(), trainer.encoder.encode(TEXTS), atol=1e-5)
    assert tokens == sum(len(ids) for ids in trainer.encoder.tokenize(TEXTS))
    trainer.encoder.config.max_length = 8
    np.testing.assert_allclose(short.numpy(), trainer.encoder.encode(TEXTS), atol=1e-5)


def test_two_steps_change_weights_and_export_a_folder_that_loads(tmp_path, tiny_qwen3, data_dir):
    base = ReasonEmbedEncoder.from_pretrained(str(tiny_qwen3), device="cpu").encode(TEXTS)
    output = tmp_path / "model"
    trainer = Trainer(make_args(tiny_qwen3, data_dir, output))
    before = _trainable(trainer)
    result = trainer.train()
    assert result.steps == 2
    after = trainer.trainable_state()
    assert any(not torch.equal(before[name], after[name]) for name in before)

    loaded = ReasonEmbedEncoder.from_pretrained(str(output), device="cpu")
    vectors = loaded.encode(TEXTS)
    assert vectors.shape == base.shape and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors - base).max() > 1e-3, "training left the vectors unchanged"
    np.testing.assert_allclose(vectors, trainer.encoder.encode(TEXTS), atol=1e-5)  # what was trained is what loads

    config = json.loads((output / "reasonembed_config.json").read_text())
    assert config["base_model"] == str(tiny_qwen3.resolve())
    assert config["task_instructions"]["beta"] == "Given a beta question, retrieve relevant passages."
    assert loaded.format_queries(["q"], task="alpha") == [
        "Instruct: Given a alpha question, retrieve relevant passages.\nQuery: q"
    ]
    assert (output / "adapter_config.json").exists() and not (output / "model.safetensors").exists()

    log = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2]
    assert not log[0]["weighted"] and "ri_mean" not in log[0]  # step 0 is the Redapter warm-up
    assert log[1]["weighted"] and {"ri_min", "ri_max", "ri_mean", "ri_median", "plain_loss"} <= log[1].keys()
    card = (output / "README.md").read_text()
    assert "Redapter" in card and "| alpha | 12 |" in card and "No measured results yet" in card


def test_adapter_and_merged_exports_give_the_same_vectors(tmp_path, tiny_qwen3, data_dir):
    trainer = Trainer(make_args(tiny_qwen3, data_dir, tmp_path / "run", loss="infonce"))
    trainer.train()
    merged = trainer.export(tmp_path / "merged", form="merged")
    trainer.args.adapter_dtype = "float16"
    half = trainer.export(tmp_path / "half", form="adapter")
    adapter_vectors = ReasonEmbedEncoder.from_pretrained(str(tmp_path / "run"), device="cpu").encode(TEXTS)
    merged_encoder = ReasonEmbedEncoder.from_pretrained(str(merged), device="cpu")
    assert not (merged / "adapter_config.json").exists() and (merged / "model.safetensors").exists()
    assert merged_encoder.config.base_model is None and merged_encoder.config.task_instructions
    np.testing.assert_allclose(merged_encoder.encode(TEXTS), adapter_vectors, atol=1e-5)
    half_vectors = ReasonEmbedEncoder.from_pretrained(str(half), device="cpu").encode(TEXTS)
    assert (half_vectors * adapter_vectors).sum(axis=1).min() > 0.999
    full_size = (tmp_path / "run" / "adapter_model.safetensors").stat().st_size
    assert (half / "adapter_model.safetensors").stat().st_size < 0.6 * full_size


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_qwen3, data_dir):
    """4 steps straight vs 2 steps + checkpoint + resume; crosses the Redapter warm-up; LoRA dropout on (RNG)."""
    settings = dict(max_steps=4, save_steps=2, redapter_warmup_steps=3, lora_dropout=0.1, warmup_ratio=0.5)
    straight = Trainer(make_args(tiny_qwen3, data_dir, tmp_path / "straight", **settings))
    straight.train()
    checkpoint = tmp_path / "straight" / "checkpoints" / "checkpoint-2"
    assert {p.name for p in checkpoint.iterdir()} == {
        "trainable.safetensors",
        "optimizer.safetensors",
        "scheduler.json",
        "trainer_state.json",
        "rng_state_0.safetensors",
    }
    for path in checkpoint.iterdir():  # no pickle: every file parses as JSON or safetensors
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            safe_open(str(path), framework="pt").keys()
    shutil.copytree(checkpoint, tmp_path / "resumed" / "checkpoints" / "checkpoint-2")
    # A run killed after its checkpoint logged a step that the resumed run will redo.
    (tmp_path / "resumed" / "train_log.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')
    resumed = Trainer(make_args(tiny_qwen3, data_dir, tmp_path / "resumed", resume="latest", **settings))
    result = resumed.train()
    assert result.steps == 4 and [r.step for r in result.history] == [3, 4]
    expected, got = straight.trainable_state(), resumed.trainable_state()
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-7)
    assert [r.loss for r in result.history] == pytest.approx([r.loss for r in straight.history[2:]], rel=1e-6)
    log = [json.loads(line) for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4]


class _WritesAFile:
    """Unpickling this object creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_checkpoint_with_pickled_state_is_refused_not_unpickled(tmp_path, tiny_qwen3, data_dir):
    """Checkpoints of older versions held torch.save pickles: resuming from one must not run what they contain."""
    Trainer(make_args(tiny_qwen3, data_dir, tmp_path / "run", max_steps=3, save_steps=2)).train()
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    marker = tmp_path / "unpickled"
    for name in ("optimizer.safetensors", "scheduler.json", "rng_state_0.safetensors"):
        (checkpoint / name).unlink()
    for name in ("optimizer.pt", "scheduler.pt", "rng_state_0.pt"):
        torch.save(_WritesAFile(marker), checkpoint / name)
    resumed = Trainer(make_args(tiny_qwen3, data_dir, tmp_path / "run", max_steps=3, resume=str(checkpoint)))
    with pytest.raises(ValueError, match=r"pickle format \(optimizer.pt, rng_state_0.pt, scheduler.pt\).*export"):
        resumed.train()
    export_checkpoint(checkpoint, tmp_path / "exported")  # what the error offers: the weights are no pickle
    assert ReasonEmbedEncoder.from_pretrained(str(tmp_path / "exported"), device="cpu").encode(TEXTS).shape[0] == 4
    assert not marker.exists()


def _first_gradient(trainer: Trainer) -> tuple[float, dict[str, torch.Tensor], int]:
    """Loss and trainable gradients of the run's first micro-batch (at a weighted Redapter step), its token count."""
    _, batch = next(trainer.planner.batches(0))
    output, tokens, _ = trainer.compute_loss(batch, step=trainer.args.redapter_warmup_steps)
    output.loss.backward()
    grads = {name: p.grad.clone() for name, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.optimizer.zero_grad(set_to_none=True)
    return float(output.loss.detach()), grads, tokens


def test_gradient_checkpointing_and_sub_batches_do_not_change_the_result(tmp_path, tiny_qwen3, data_dir):
    """Both only change the order of float32 sums, so they may move results by rounding and no more.

    The loss and gradients of one micro-batch: a sum of n float32 terms taken in another order differs by at most
    n * eps relative (eps = 2**-23), and no sum here has more terms than the batch has tokens (measured: 7e-7 against
    a bound of 2.4e-5). A sub-batch that drops, swaps or detaches a text, or a loss scaled when sub-batched, moves them
    by 1e-1 or more (checked by breaking the trainer on purpose).

    The trained weights, by their update rather than element by element: AdamW divides each gradient by its own
    running size, so an element whose gradient lies within rounding noise of zero moves by up to ~lr per step in
    either run, in either direction (measured: one element of a LoRA A matrix, 1.5e-5 apart). Per tensor, the
    difference of the updates stays within 1% of the update (measured: 1.2e-3; a dropped text: 93%). AdamW and
    clipping also undo a wrongly scaled loss, which is why the gradients are compared first.
    """
    plain = Trainer(make_args(tiny_qwen3, data_dir, tmp_path / "plain"))
    other = Trainer(make_args(tiny_qwen3, data_dir, tmp_path / "other", gradient_checkpointing=True, sub_batch_size=2))
    assert other.encoder.model.gradient_checkpointing and not plain.encoder.model.gradient_checkpointing
    plain_loss, plain_grads, tokens = _first_gradient(plain)
    other_loss, other_grads, _ = _first_gradient(other)
    rounding = tokens * torch.finfo(torch.float32).eps
    assert other_loss == pytest.approx(plain_loss, rel=rounding)
    for name, grad in plain_grads.items():
        assert float((other_grads[name] - grad).norm()) <= rounding * float(grad.norm()), name

    before = _trainable(plain)
    plain.train()
    other.train()
    others = other.trainable_state()
    for name, tensor in plain.trainable_state().items():
        update = tensor - before[name]
        assert float((others[name] - before[name] - update).norm()) <= 1e-2 * float(update.norm()), name


def test_bf16_autocast_trains_and_exports(tmp_path, tiny_qwen3, data_dir):
    trainer = Trainer(make_args(tiny_qwen3, data_dir, tmp_path / "bf16", bf16=True, max_steps=1))
    assert next(trainer.encoder.model.parameters()).dtype == torch.bfloat16  # frozen backbone
    assert all(p.dtype == torch.float32 for p in trainer.trainable)  # LoRA weights stay float32
    result = trainer.train()
    assert np.isfinite(result.history[0].loss)
    assert ReasonEmbedEncoder.from_pretrained(str(tmp_path / "bf16"), device="cpu").encode(TEXTS).shape[0] == len(
        TEXTS
    )


def test_output_with_a_model_is_not_overwritten_by_accident(tmp_path, tiny_qwen3, data_dir):
    train(make_args(tiny_qwen3, data_dir, tmp_path / "out", max_steps=1))
    with pytest.raises(FileExistsError, match="--resume .* --overwrite"):
        train(make_args(tiny_qwen3, data_dir, tmp_path / "out", max_steps=1))
    train(make_args(tiny_qwen3, data_dir, tmp_path / "out", max_steps=1, overwrite=True))
    assert len((tmp_path / "out" / "train_log.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow
def test_encoder_backbone_full_fine_tuning_with_mean_pooling(tmp_path, data_dir):
    """all-MiniLM-L6-v2 (packaged): full fine-tuning by default, exported as full weights with the instruct format."""
    output = tmp_path / "minilm"
    trainer = Trainer(
        make_args(Path("minilm-l6"), data_dir, output, loss="infonce", query_max_length=64, passage_max_length=64)
    )
    assert not trainer.use_lora and trainer.encoder.config.pooling == "mean"
    assert len(trainer.trainable) == len(list(trainer.model.parameters()))
    raw = ReasonEmbedEncoder.from_pretrained("minilm-l6", device="cpu").encode(TEXTS)
    trainer.train()
    loaded = ReasonEmbedEncoder.from_pretrained(str(output), device="cpu")
    assert loaded.config.kind == "encoder" and loaded.config.pooling == "mean" and loaded.uses_instructions
    assert (output / "model.safetensors").exists() and not (output / "adapter_config.json").exists()
    vectors = loaded.encode(TEXTS)
    np.testing.assert_allclose(vectors, trainer.encoder.encode(TEXTS), atol=1e-5)
    assert np.abs(vectors - raw).max() > 1e-4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_worker(rank: int, port: int, values: dict, results: str) -> None:
    import os

    os.environ.update(
        WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    try:
        trainer = Trainer(TrainingArguments(**values))
        trainer.train()
        torch.save({k: v.clone() for k, v in trainer.trainable_state().items()}, f"{results}/rank{rank}.pt")
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_train_like_one_process_with_the_whole_batch(tmp_path, tiny_qwen3, data_dir):
    """gloo, 2 ranks x 2 queries == 1 process x 4 queries: same batches, gathered negatives, summed gradients."""
    single = Trainer(make_args(tiny_qwen3, data_dir, tmp_path / "single", batch_size=4, max_steps=3))
    single.train()
    values = vars(make_args(tiny_qwen3, data_dir, tmp_path / "ranks", batch_size=2, max_steps=3)).copy()
    torch.multiprocessing.spawn(_rank_worker, args=(_free_port(), values, str(tmp_path)), nprocs=2)
    expected = single.trainable_state()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name, tensor in expected.items():
            torch.testing.assert_close(got[name], tensor, rtol=1e-4, atol=1e-6)
    assert ReasonEmbedEncoder.from_pretrained(str(tmp_path / "ranks"), device="cpu").encode(TEXTS).shape[0] == len(
        TEXTS
    )


def test_masking_false_negatives_reaches_the_loss_of_a_real_run(tmp_path, tiny_qwen3):
    """Rows sharing a positive: with the mask, the first step's loss is lower (a copy of the target left the
    softmax); without it, the copy counts as a negative."""
    rows = [
        {
            "prompt": "Given a question, retrieve the theorem.",
            "query": f"question {i}",
            "reasoning_query": f"question {i} needs the shared theorem",
            "pos": ["the shared theorem"],
            "neg": [f"unrelated passage {i}"],
        }
        for i in range(4)
    ]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    losses = {}
    for mask in (False, True):
        trainer = Trainer(
            make_args(
                tiny_qwen3,
                tmp_path / "data",
                tmp_path / f"out{mask}",
                batch_size=4,
                group_size=2,
                max_steps=1,
                temperature=1.0,
                mask_false_negatives=mask,
            )
        )
        losses[mask] = trainer.train_step().loss
    # At tau = 1 every cosine is in [-1, 1], so leaving 3 copies of the target out lowers the loss by > 0.09.
    assert losses[True] < losses[False] - 0.09


def test_a_decoder_trained_with_mean_pooling_loads_and_encodes_with_mean_pooling(tmp_path, tiny_qwen3, data_dir):
    """--pooling is recorded in the exported folder, so the loaded model embeds exactly as it was trained."""
    output = tmp_path / "mean"
    trainer = Trainer(make_args(tiny_qwen3, data_dir, output, pooling="mean", max_steps=1))
    assert trainer.encoder.config.pooling == "mean"
    trainer.train()
    loaded = ReasonEmbedEncoder.from_pretrained(str(output), device="cpu")
    assert (
        loaded.config.pooling == "mean"
        and json.loads((output / "reasonembed_config.json").read_text())["pooling"] == "mean"
    )
    np.testing.assert_allclose(loaded.encode(TEXTS), trainer.encoder.encode(TEXTS), atol=1e-5)
    trainer.model.eval()
    with torch.no_grad():
        trained, _ = trainer.embed(TEXTS, max_length=trainer.encoder.max_length, grad=False)
    np.testing.assert_allclose(trained.numpy(), loaded.encode(TEXTS), atol=1e-5)
    assert "`mean` pooling instead of the paper's last-token pooling" in (output / "README.md").read_text()
    last = ReasonEmbedEncoder.from_pretrained(str(output), device="cpu", pooling="lasttoken").encode(TEXTS)
    assert np.abs(last - loaded.encode(TEXTS)).max() > 1e-3  # the pooling really differs
