"""The training loop: InfoNCE or Redapter on a decoder (LoRA, last-token pooling) or encoder (full, mean pooling).

Texts become vectors through the SAME code as inference: :meth:`ReasonEmbedEncoder.tokenize` (special-token framing,
end token kept when truncating), :meth:`ReasonEmbedEncoder.pad_token_ids` (left padding with position ids for
decoders) and :meth:`ReasonEmbedEncoder.pool` (the model's pooling, L2-normalised). LoRA layers are injected into the
encoder's own model, so the encoder embeds with the trained weights at any point.

One optimiser step = ``grad_accum`` micro-batches, each one batch of one task (see :mod:`training.data`). The
micro-batch stream runs through the epochs' batch plans back to back, so the state of a run is just its step
count: a checkpoint (see :mod:`training.checkpoints`) holds the trainable weights, the optimiser, the scheduler,
the step and the RNG states, and ``--resume`` continues exactly as if the run had not stopped.

Launched with ``torchrun`` (``WORLD_SIZE`` > 1), each rank trains on its slice of every global batch (see
:mod:`training.distributed`).

Output folder layout: the finished model (see :mod:`training.export`), ``train_log.jsonl`` (one line per step),
``training_args.json``, and checkpoints under ``checkpoints/checkpoint-<step>/`` (or ``--checkpoint-dir``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reasonembed_rag.encoder import ReasonEmbedEncoder
from reasonembed_rag.instructions import INSTRUCT_QUERY_FORMAT
from reasonembed_rag.jsonl import read_jsonl
from reasonembed_rag.models import get_spec

from . import checkpoints
from .data import Batch, BatchPlanner, TrainingData, load_training_data
from .distributed import all_reduce_gradients, rank_device, setup_distributed
from .export import ADAPTER_DTYPES, EXPORT_FORMS, export_model, quiet_transformers
from .loss import LOSSES, InfoNCELoss, LossOutput, RedapterLoss

logger = logging.getLogger(__name__)

LOG_NAME = "train_log.jsonl"
ARGS_NAME = "training_args.json"
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""All attention and MLP projections of Llama/Qwen/Mistral-style decoders (the paper's LoRA targets)."""
RESUME_CHECKED = (
    "data",
    "model",
    "loss",
    "seed",
    "batch_size",
    "group_size",
    "grad_accum",
    "learning_rate",
    "epochs",
    "max_steps",
    "lora",
    "lora_rank",
    "lora_targets",
    "query_format",
)


@dataclass
class TrainingArguments:
    """Everything a run depends on (the ``reasonembed-train train`` options)."""

    data: str
    """Training JSONL file or folder of them (one task per file)."""
    model: str
    """Backbone: a registry alias (``smollm2-135m``, ``minilm-l6``), a Hub id or a folder."""
    output: str
    """Where the trained model folder, the log and (by default) the checkpoints go."""
    loss: str = "redapter"
    """``redapter`` or ``infonce``."""
    lora: bool | None = None
    """LoRA (True) or full fine-tuning (False); None: LoRA for decoders, full for encoders."""
    lora_rank: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None
    """Module names to adapt; None: all attention + MLP projections (``all-linear`` when those names are absent)."""
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    """Share of the optimiser steps with a linear learning-rate warm-up (then linear decay to 0)."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    """Gradient clipping (0 disables)."""
    epochs: int = 1
    max_steps: int | None = None
    """Optimiser steps; default all complete steps of ``epochs`` epochs."""
    batch_size: int | None = None
    """Queries per device per micro-batch; default the data's ``batch_size``, else 8."""
    group_size: int | None = None
    """Passages per query (1 positive + hard negatives); default the data's ``train_group_size``, else 16."""
    grad_accum: int = 1
    query_max_length: int = 512
    passage_max_length: int = 512
    reasoning_query_max_length: int | None = None
    """Default: ``query_max_length``."""
    temperature: float = 0.02
    redapter_warmup_steps: int = 100
    mask_false_negatives: bool = False
    """Leave a query's other positives out of its negatives when they turn up in the batch (off: exactly the
    paper's loss)."""
    gradient_checkpointing: bool = False
    bf16: bool | None = None
    """bfloat16 autocast (frozen LoRA backbones are also stored in bf16); None: on when CUDA supports it."""
    seed: int = 42
    save_steps: int = 0
    """Checkpoint every N optimiser steps (0: only the final model)."""
    save_total_limit: int = 0
    """Keep only the newest N checkpoints (0: keep all)."""
    checkpoint_dir: str | None = None
    """Default ``<output>/checkpoints``."""
    resume: str | None = None
    """``latest`` (newest checkpoint in the checkpoint folder) or a checkpoint folder."""
    query_format: str = INSTRUCT_QUERY_FORMAT
    pooling: str | None = None
    """``lasttoken``, ``mean`` or ``cls``; None: the backbone's own (last-token for decoders, as in the paper). The
    exported model records it."""
    sub_batch_size: int = 0
    """Texts per forward pass (length-sorted chunks; lowers memory, not the result); 0: all at once."""
    device: str | None = None
    skip_malformed: bool = False
    export_form: str = "adapter"
    """LoRA runs: ``adapter`` (base + adapter) or ``merged`` (full weights)."""
    adapter_dtype: str = "float32"
    overwrite: bool = False
    """Allow writing into an output folder that already holds a model."""
    progress: bool = True
    name: str | None = None
    """Model name for the card; default the output folder's name."""

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"Unknown loss {self.loss!r}. Accepted values: {', '.join(LOSSES)}.")
        if self.export_form not in EXPORT_FORMS:
            raise ValueError(f"Unknown export form {self.export_form!r}. Accepted values: {', '.join(EXPORT_FORMS)}.")
        if self.adapter_dtype not in ADAPTER_DTYPES:
            raise ValueError(f"Unknown adapter dtype {self.adapter_dtype!r}. Accepted: {', '.join(ADAPTER_DTYPES)}.")
        positive = ("lora_rank", "lora_alpha", "epochs", "grad_accum", "query_max_length", "passage_max_length")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("max_steps", "batch_size", "group_size", "reasoning_query_max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise ValueError("learning_rate and temperature must be positive.")
        if "{query}" not in self.query_format:
            raise ValueError(f"query_format must contain '{{query}}', got {self.query_format!r}.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingArguments:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class StepRecord:
    """What one optimiser step logs (a line of ``train_log.jsonl``)."""

    step: int
    epoch: float
    tasks: list[str]
    loss: float
    plain_loss: float
    learning_rate: float
    grad_norm: float
    tokens: int
    """Real (unpadded) query and passage tokens that went through forward and backward."""
    seconds: float
    weighted: bool
    """Whether Redapter weighting was on (False for InfoNCE and during the warm-up)."""
    ri_min: float | None = None
    ri_max: float | None = None
    ri_mean: float | None = None
    ri_median: float | None = None
    reasoning_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    output: Path
    steps: int
    history: list[StepRecord]
    seconds: float


# ---------------------------------------------------------------------------------------------------- trainer


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Builds the model, data, loss, optimiser and scheduler for a run; :meth:`train` runs it.

    Example:
        >>> args = TrainingArguments(data="train.jsonl", model="smollm2-135m", output="out", max_steps=10)
        >>> Trainer(args).train().steps                              # doctest: +SKIP
        10
    """

    def __init__(self, args: TrainingArguments, *, data: TrainingData | None = None) -> None:
        self.args = args
        self.ranks = setup_distributed(args.device)
        self.device = rank_device(self.ranks, args.device)
        self.bf16 = self._resolve_bf16(args.bf16)
        self.output = Path(args.output)
        self.checkpoint_dir = Path(args.checkpoint_dir) if args.checkpoint_dir else self.output / "checkpoints"
        seed_everything(args.seed)

        self.data = data or load_training_data(
            args.data, require_reasoning_query=args.loss == "redapter", skip_malformed=args.skip_malformed
        )
        self.encoder = self._load_encoder()
        self.kind = self.encoder.config.kind
        self.use_lora = args.lora if args.lora is not None else self.kind == "decoder"
        self.model = self._prepare_model()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not self.trainable:
            raise ValueError("No trainable parameters: check --lora-targets.")

        self.planner = BatchPlanner(
            self.data,
            batch_size=args.batch_size,
            group_size=args.group_size,
            seed=args.seed,
            world_size=self.ranks.world_size,
            query_format=args.query_format,
            skip_malformed=args.skip_malformed,
            mask_false_negatives=args.mask_false_negatives,
        )
        available = (args.epochs * self.planner.steps_per_epoch) // args.grad_accum
        self.total_steps = args.max_steps or available
        if self.total_steps < 1:
            raise ValueError(
                f"Not enough data for one optimiser step: {self.planner.steps_per_epoch} batch(es) per epoch, "
                f"{args.epochs} epoch(s), --grad-accum {args.grad_accum}. Lower --batch-size or --grad-accum."
            )
        self.loss_fn: InfoNCELoss = (
            RedapterLoss(temperature=args.temperature, warmup_steps=args.redapter_warmup_steps)
            if args.loss == "redapter"
            else InfoNCELoss(temperature=args.temperature)
        )
        self.optimizer = self._build_optimizer()
        from transformers import get_linear_schedule_with_warmup

        self.warmup_steps = math.ceil(args.warmup_ratio * self.total_steps)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, self.warmup_steps, self.total_steps)
        self.step = 0
        self.history: list[StepRecord] = []
        self._stream: Iterator[Batch] | None = None

    # ------------------------------------------------------------------------------------------------ setup

    def _resolve_bf16(self, requested: bool | None) -> bool:
        cuda = self.device.type == "cuda"
        if requested is None:
            return cuda and torch.cuda.is_bf16_supported()
        if requested and cuda and not torch.cuda.is_bf16_supported():
            raise ValueError("--bf16 was asked for but this GPU does not support bfloat16.")
        return requested

    def _load_encoder(self) -> ReasonEmbedEncoder:
        # A frozen LoRA backbone can live in bf16 (saves memory on big models); weights that are trained stay
        # float32 and only the compute runs in bf16 (autocast). Full fine-tuning casts back in _prepare_model.
        dtype = "bfloat16" if (self.bf16 and self.args.lora is not False) else "float32"
        encoder = ReasonEmbedEncoder.from_pretrained(
            self.args.model, device=self.device, dtype=dtype, pooling=self.args.pooling
        )
        encoder.config.query_format = self.args.query_format
        self.query_max_length = self._cap_length("query", self.args.query_max_length, encoder)
        self.passage_max_length = self._cap_length("passage", self.args.passage_max_length, encoder)
        self.reasoning_query_max_length = self._cap_length(
            "reasoning query", self.args.reasoning_query_max_length or self.args.query_max_length, encoder
        )
        return encoder

    @staticmethod
    def _cap_length(what: str, requested: int, encoder: ReasonEmbedEncoder) -> int:
        if requested > encoder.max_length:
            logger.warning(
                "The %s max length %d exceeds the model's %d; training with %d.",
                what,
                requested,
                encoder.max_length,
                encoder.max_length,
            )
            return encoder.max_length
        return requested

    def _prepare_model(self) -> torch.nn.Module:
        model: Any = self.encoder.model
        if not self.use_lora and next(model.parameters()).dtype != torch.float32:
            model.float()
        if getattr(model.config, "use_cache", None) is not None:
            model.config.use_cache = False
        if self.args.gradient_checkpointing:
            self.set_gradient_checkpointing(True)
        self.lora_targets: list[str] | str | None = None
        if self.use_lora:
            try:
                from peft import LoraConfig, get_peft_model
            except ImportError as error:
                raise ImportError("LoRA training needs peft: pip install 'reasonembed-rag[train]'.") from error
            targets: list[str] | str = self.args.lora_targets or self.default_lora_targets(model)
            config = LoraConfig(
                r=self.args.lora_rank,
                lora_alpha=self.args.lora_alpha,
                lora_dropout=self.args.lora_dropout,
                target_modules=targets,
                bias="none",
            )
            try:
                with quiet_transformers():
                    model = get_peft_model(model, config)
            except ValueError as error:
                raise ValueError(f"LoRA targets {targets!r} do not match the model's modules: {error}") from error
            self.lora_targets = targets if isinstance(targets, str) else sorted(targets)
        else:
            for parameter in model.parameters():
                parameter.requires_grad_(True)
        model.train()
        return model

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Turn gradient checkpointing of the backbone on or off (also between steps)."""
        model: Any = self.encoder.model
        if not enabled:
            if hasattr(model, "activation_checkpointing_disable"):
                model.activation_checkpointing_disable()
            else:
                model.gradient_checkpointing_disable()
            return
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise ValueError(f"{type(model).__name__} does not support gradient checkpointing.")
        # Non-reentrant checkpointing works with frozen inputs (LoRA) and several forwards per backward.
        if hasattr(model, "activation_checkpointing_enable"):  # the newer transformers 5 name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    @staticmethod
    def default_lora_targets(model: torch.nn.Module) -> list[str] | str:
        """All attention + MLP projections that the model has; ``all-linear`` for other architectures."""
        names = {
            name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
        }
        found = [name for name in DEFAULT_LORA_TARGETS if name in names]
        return found or "all-linear"

    def _build_optimizer(self) -> torch.optim.Optimizer:
        decay = [p for p in self.trainable if p.ndim >= 2]
        no_decay = [p for p in self.trainable if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": self.args.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return torch.optim.AdamW(groups, lr=self.args.learning_rate)

    # ------------------------------------------------------------------------------------------------ embedding

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def embed(self, texts: Sequence[str], *, max_length: int, grad: bool = True) -> tuple[torch.Tensor, int]:
        """Vectors for texts exactly as inference computes them (with gradient unless ``grad=False``).

        Returns:
            ``(len(texts), dimension)`` float32 L2-normalised vectors and the number of real tokens.
        """
        token_ids = self.encoder.tokenize(list(texts), max_length=max_length)
        order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
        chunk = self.args.sub_batch_size or len(order)
        pieces: list[torch.Tensor] = []
        with torch.set_grad_enabled(grad):
            for start in range(0, len(order), chunk):
                rows = [token_ids[i] for i in order[start : start + chunk]]
                inputs = {k: v.to(self.device) for k, v in self.encoder.pad_token_ids(rows).items()}
                with self._autocast():
                    hidden = self.model(**inputs)[0]
                pieces.append(self.encoder.pool(hidden, inputs["attention_mask"]))
            vectors = torch.cat(pieces)
            inverse = torch.empty(len(order), dtype=torch.long)
            inverse[torch.tensor(order)] = torch.arange(len(order))
            vectors = vectors[inverse.to(vectors.device)]
        return vectors, sum(len(ids) for ids in token_ids)

    def compute_loss(self, batch: Batch, step: int) -> tuple[LossOutput, int, int]:
        """The loss of one micro-batch at optimiser step ``step`` (0-based), its graded and reasoning tokens."""
        queries, query_tokens = self.embed(batch.queries, max_length=self.query_max_length)
        passages, passage_tokens = self.embed(batch.passages, max_length=self.passage_max_length)
        reasoning = None
        reasoning_tokens = 0
        if self.loss_fn.needs_reasoning_queries(step):
            if batch.reasoning_queries is None:
                raise ValueError(f"Task {batch.task!r}: Redapter needs a reasoning_query in every row.")
            reasoning, reasoning_tokens = self.embed(
                batch.reasoning_queries, max_length=self.reasoning_query_max_length, grad=False
            )
        output = self.loss_fn(
            queries,
            passages,
            group_size=batch.group_size,
            reasoning_queries=reasoning,
            step=step,
            false_negatives=batch.false_negatives,
        )
        return output, query_tokens + passage_tokens, reasoning_tokens

    # ------------------------------------------------------------------------------------------------ loop

    def _micro_batches(self, first_step: int) -> Iterator[Batch]:
        """The micro-batch stream from optimiser step ``first_step`` on (epochs back to back)."""
        per_epoch = self.planner.steps_per_epoch
        position = first_step * self.args.grad_accum
        while True:
            epoch, index = divmod(position, per_epoch)
            for _, batch in self.planner.batches(epoch, start=index, rank=self.ranks.rank):
                yield batch
            position = (epoch + 1) * per_epoch

    def train(self) -> TrainResult:
        """Run (or resume) the training, then export the model folder. Returns what happened."""
        args = self.args
        if self.ranks.main:
            self._check_output()
            self.output.mkdir(parents=True, exist_ok=True)
            (self.output / ARGS_NAME).write_text(json.dumps(asdict(args), indent=2) + "\n")
        if args.resume:
            self.load_checkpoint(checkpoints.find_checkpoint(args.resume, self.checkpoint_dir))
        if self.ranks.main:
            self._trim_log()
        from tqdm.auto import tqdm

        started = time.perf_counter()
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=f"Training ({args.loss})",
            unit="step",
            disable=not (args.progress and self.ranks.main),
        )
        with bar:
            while self.step < self.total_steps:
                record = self.train_step()
                if self.ranks.main:
                    postfix = {"loss": f"{record.loss:.4f}"}
                    if record.ri_mean is not None:
                        postfix["RI mean"] = f"{record.ri_mean:.3f}"
                    bar.set_postfix(postfix)
                bar.update(1)
                if args.save_steps and self.step % args.save_steps == 0 and self.step < self.total_steps:
                    self.save_checkpoint()
        seconds = time.perf_counter() - started
        self.model.eval()  # training is over: the encoder embeds deterministically (no dropout) from here on
        if self.ranks.main:
            self.export(self.output, seconds=seconds)
        self.ranks.barrier()
        return TrainResult(output=self.output, steps=self.step, history=self.history, seconds=seconds)

    def train_step(self) -> StepRecord:
        """One optimiser step on the next micro-batches of the run; logged and added to :attr:`history`."""
        if self._stream is None:
            self._stream = self._micro_batches(self.step)
        record = self._optimiser_step(self._stream)
        self.history.append(record)
        self.step += 1
        if self.ranks.main:
            self._log(record)
        return record

    def _optimiser_step(self, stream: Iterator[Batch]) -> StepRecord:
        began = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        tasks: list[str] = []
        losses: list[float] = []
        stats: list[dict[str, float]] = []
        tokens = reasoning_tokens = 0
        weighted = False
        for _ in range(self.args.grad_accum):
            batch = next(stream)
            output, graded, reasoning = self.compute_loss(batch, self.step)
            (output.loss / self.args.grad_accum).backward()
            tasks.append(batch.task)
            losses.append(float(output.loss.detach()))
            stats.append(output.stats())
            tokens += graded
            reasoning_tokens += reasoning
            weighted = weighted or output.weights is not None
        if self.ranks.world_size > 1:
            all_reduce_gradients(self.trainable)
        if self.args.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable, self.args.max_grad_norm))
        else:
            grad_norm = float(
                torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in self.trainable if p.grad is not None]))
            )
        learning_rate = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        # Every micro-batch of a step has the same keys (the warm-up is counted in optimiser steps); min and max
        # over the micro-batches are the extremes, the rest means.
        mean = {key: float(np.mean([s[key] for s in stats])) for key in stats[0]}
        if "ri_min" in mean:
            mean["ri_min"] = min(s["ri_min"] for s in stats)
            mean["ri_max"] = max(s["ri_max"] for s in stats)
        return StepRecord(
            step=self.step + 1,
            epoch=round((self.step + 1) * self.args.grad_accum / self.planner.steps_per_epoch, 4),
            tasks=tasks,
            loss=float(np.mean(losses)),
            plain_loss=mean["plain_loss"],
            learning_rate=learning_rate,
            grad_norm=grad_norm,
            tokens=tokens,
            seconds=round(time.perf_counter() - began, 4),
            weighted=weighted,
            ri_min=mean.get("ri_min"),
            ri_max=mean.get("ri_max"),
            ri_mean=mean.get("ri_mean"),
            ri_median=mean.get("ri_median"),
            reasoning_tokens=reasoning_tokens,
        )

    # ------------------------------------------------------------------------------------------------ files

    def _check_output(self) -> None:
        if self.args.resume or self.args.overwrite:
            return
        if (self.output / "reasonembed_config.json").exists() or (self.output / LOG_NAME).exists():
            raise FileExistsError(
                f"{self.output} already holds a trained model or a training log. Pass --resume to continue it, "
                f"--overwrite to replace it, or choose another --output."
            )

    def _log(self, record: StepRecord) -> None:
        line = {k: v for k, v in asdict(record).items() if v is not None and k != "extra"}
        line["tokens_per_second"] = round(record.tokens / record.seconds, 1) if record.seconds > 0 else None
        self.output.mkdir(parents=True, exist_ok=True)
        with (self.output / LOG_NAME).open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    def _trim_log(self) -> None:
        """Drop log lines past the current step (a run killed after its last checkpoint logged them)."""
        path = self.output / LOG_NAME
        if not path.exists():
            return
        kept = [row for _, row in read_jsonl(path) if row["step"] <= self.step]
        path.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The trainable parameters by name (LoRA weights, or all weights for full fine-tuning)."""
        return {name: p.detach() for name, p in self.model.named_parameters() if p.requires_grad}

    def save_checkpoint(self) -> Path:
        """Write ``checkpoint-<step>``: trainable weights, optimiser, scheduler, step and RNG states."""
        folder = self.checkpoint_dir / checkpoints.checkpoint_name(self.step)
        if self.ranks.main:
            checkpoints.save_checkpoint(
                folder,
                trainable=self.trainable_state(),
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                state={"step": self.step, "total_steps": self.total_steps, "arguments": asdict(self.args)},
            )
        self.ranks.barrier()
        checkpoints.save_rng_state(folder / checkpoints.rng_state_name(self.ranks.rank))
        if self.ranks.main:
            checkpoints.prune_checkpoints(self.checkpoint_dir, self.args.save_total_limit)
        return folder

    def load_checkpoint(self, folder: str | Path) -> None:
        """Restore weights, optimiser, scheduler, step and RNG states from a checkpoint folder."""
        folder = Path(folder)
        state = checkpoints.load_checkpoint(
            folder, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, rank=self.ranks.rank
        )
        saved = state.get("arguments", {})
        changed = [k for k in RESUME_CHECKED if k in saved and saved[k] != getattr(self.args, k)]
        if changed:
            logger.warning("Resuming with changed settings %s; the run will not match an uninterrupted one.", changed)
        self.step = int(state["step"])
        self._stream = None
        logger.info("Resumed from %s at step %d of %d.", folder, self.step, self.total_steps)

    def load_weights(self, folder: str | Path) -> None:
        """Set the trainable weights to a checkpoint's (nothing else: enough to export its model)."""
        checkpoints.load_trainable(Path(folder), self.model)

    def export(self, folder: str | Path, *, form: str | None = None, seconds: float | None = None) -> Path:
        """Write the model folder (see :func:`training.export.export_model`) with its card."""
        base = self.args.model
        if get_spec(base) is None and Path(base).expanduser().exists():
            base = str(Path(base).expanduser().resolve())
        was_training = self.model.training
        self.model.eval()
        try:
            return export_model(
                self.model,
                self.encoder,
                folder,
                form=form or self.args.export_form,
                base_model=base,
                task_instructions=self.data.task_instructions(),
                adapter_dtype=self.args.adapter_dtype,
                info=self.training_info(seconds),
            )
        finally:
            self.model.train(was_training)

    def training_info(self, seconds: float | None = None) -> dict[str, Any]:
        """Facts for the model card."""
        history: list[Any] = [r for r in self._read_log() if r["step"] <= self.step] or list(self.history)
        window = history[-max(1, len(history) // 10) :] if history else []
        final: dict[str, Any] = {"window": len(window)}
        for key in ("loss", "plain_loss", "ri_mean", "ri_median"):
            values = [getattr(r, key) if isinstance(r, StepRecord) else r.get(key) for r in window]
            values = [v for v in values if v is not None]
            final[key] = float(np.mean(values)) if values else None
        if self.use_lora:
            method = f"LoRA (rank {self.args.lora_rank}, alpha {self.args.lora_alpha}, targets {self.lora_targets})"
        else:
            method = "full fine-tuning"
        arguments = asdict(self.args)
        for key in ("resume", "overwrite", "progress", "checkpoint_dir", "name", "device"):
            arguments.pop(key, None)
        arguments["lora"] = self.use_lora
        arguments["lora_targets"] = self.lora_targets
        arguments["effective_batch_size"] = (
            f"{self.args.batch_size or 'data/8'} x {self.ranks.world_size} device(s) x {self.args.grad_accum} accum"
        )
        arguments["bf16"] = self.bf16
        arguments["gradient_checkpointing"] = self.args.gradient_checkpointing
        return {
            "name": self.args.name or Path(self.args.output).name,
            "arguments": arguments,
            "method": method,
            "data": self.data.summary(),
            "steps": self.step,
            "epochs_done": round(self.step * self.args.grad_accum / self.planner.steps_per_epoch, 3),
            "train_seconds": round(seconds, 1) if seconds is not None else None,
            "device": f"{self.ranks.world_size} x {self.device.type}",
            "final": final,
        }

    def _read_log(self) -> list[dict[str, Any]]:
        path = self.output / LOG_NAME
        if not path.exists():
            return []
        return [row for _, row in read_jsonl(path)]


def train(args: TrainingArguments) -> TrainResult:
    """Build a :class:`Trainer` and run it."""
    return Trainer(args).train()


def export_checkpoint(
    checkpoint: str | Path, output: str | Path, *, form: str = "adapter", adapter_dtype: str | None = None
) -> Path:
    """Rebuild a run from a checkpoint folder and export its model (e.g. the adapter of step 500).

    The training data is read again (for the task instructions and the card), so it must still be where the run
    found it.
    """
    checkpoint = Path(checkpoint)
    state = checkpoints.read_state(checkpoint)
    values = dict(
        state["arguments"],
        resume=None,
        progress=False,
        device="cpu",
        bf16=False,
        overwrite=True,
        gradient_checkpointing=False,
    )
    if adapter_dtype:
        values["adapter_dtype"] = adapter_dtype
    trainer = Trainer(TrainingArguments.from_dict(values))
    trainer.load_weights(checkpoint)
    trainer.step = int(state["step"])
    return trainer.export(output, form=form)
