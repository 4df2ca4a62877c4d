"""ReasonEmbedEncoder: load an embedding model, tokenize, pool, normalise, batch.

The framework-free core. Everything that turns text into vectors lives here; the LlamaIndex, LangChain and
Chroma adapters only call :meth:`ReasonEmbedEncoder.encode_queries` and
:meth:`ReasonEmbedEncoder.encode_documents`.

Last-token pooling is correct by construction: each text is tokenized without special tokens, truncated to
leave room for them, and then framed with the tokenizer's own special tokens, with the end token appended if the
tokenizer does not add one. Sequences are padded on the LEFT with explicit position ids, so the pooled position
is always that end token and a padded batch gives the same vectors as one text at a time.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .instructions import BARE_QUERY_FORMAT, INSTRUCT_QUERY_FORMAT, format_query, get_instruction
from .models import POOLINGS, QUANTIZATIONS, ModelNotAvailableError, ModelSpec, convert_gguf, get_spec, package_path

logger = logging.getLogger(__name__)

CONFIG_NAME = "reasonembed_config.json"
"""Settings saved next to the weights so that a model folder carries its own pooling and query format."""

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
_DECODER_TYPES = {"llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3", "phi3", "gpt2", "olmo", "smollm3"}
AUTO_PROGRESS_THRESHOLD = 256
"""Show a progress bar by default from this many texts on."""


@dataclass
class EncoderConfig:
    """What a model folder records about how to embed with it (saved as ``reasonembed_config.json``)."""

    kind: str = "decoder"
    """``decoder`` (causal LM backbone) or ``encoder`` (bidirectional)."""
    pooling: str = "lasttoken"
    query_format: str = INSTRUCT_QUERY_FORMAT
    max_length: int = 8192
    normalize: bool = True
    task_instructions: dict[str, str] = field(default_factory=dict)
    """The model's own task -> instruction table; consulted before BRIGHT's."""
    base_model: str | None = None
    """For adapter folders: the alias, Hub id or folder of the backbone the adapter applies to."""

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> EncoderConfig | None:
        path = Path(folder) / CONFIG_NAME
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, folder: str | os.PathLike[str]) -> None:
        Path(folder, CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> EncoderConfig:
        return cls(kind=spec.kind, pooling=spec.pooling, query_format=spec.query_format, max_length=spec.max_length)


def _check_choice(name: str, value: str, accepted: Sequence[str]) -> str:
    if value not in accepted:
        raise ValueError(f"Unknown {name} {value!r}. Accepted values: {', '.join(accepted)}.")
    return value


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The compute dtype: float32 on CPU, bfloat16 on GPUs that support it (else float16), unless asked."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"Unsupported dtype {dtype}. Accepted values: {', '.join(DTYPES)} or 'auto'.")
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    return DTYPES[_check_choice("dtype", dtype, [*DTYPES, "auto"])]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Parse and check a device, defaulting to the first GPU when there is one."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"Unknown device {device!r}. Accepted values: 'cpu', 'cuda', 'cuda:N', 'mps'.") from error
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"Device {device!r} was asked for but no CUDA GPU is available here; use device='cpu'.")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"Device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s).")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Device {device!r} was asked for but MPS is not available here; use device='cpu'.")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unsupported device {device!r}. Accepted values: 'cpu', 'cuda', 'cuda:N', 'mps'.")
    return parsed


def check_texts(texts: Sequence[str], *, what: str = "texts") -> list[str]:
    """Validate a batch of texts: a list (or tuple) of strings. Empty and whitespace-only strings are allowed."""
    if isinstance(texts, str):
        raise TypeError(f"{what} must be a list of strings, got a single str; wrap it in a list: [text].")
    try:
        items = list(texts)
    except TypeError as error:
        raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}.") from error
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{what}[{index}] is {type(item).__name__}, not str: {item!r:.80}. Pass text only.")
    return items


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state at each sequence's last real token (works for left and right padding)."""
    if bool(attention_mask[:, -1].all()):
        return hidden[:, -1]
    last = attention_mask.sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def cls_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return hidden[:, 0]


POOL_FUNCTIONS = {"lasttoken": last_token_pool, "mean": mean_pool, "cls": cls_pool}


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    message = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


class ReasonEmbedEncoder:
    """Embeds queries and documents with a ReasonEmbed-style model.

    Example:
        >>> enc = ReasonEmbedEncoder.from_pretrained("minilm-l6")
        >>> enc.encode_queries(["What is 2+2?"], task="aops").shape
        (1, 384)
        >>> enc.encode_documents(["Addition of natural numbers ..."]).dtype
        dtype('float32')
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        config: EncoderConfig,
        *,
        name: str,
        devices: Sequence[torch.device] | None = None,
        batch_tokens: int | None = None,
        max_batch_size: int = 128,
        query_max_length: int | None = None,
        document_max_length: int | None = None,
    ) -> None:
        """Wrap an already loaded model; most users call :meth:`from_pretrained` instead."""
        _check_choice("pooling", config.pooling, POOLINGS)
        _check_choice("kind", config.kind, ("decoder", "encoder"))
        for option, value in (
            ("max_length", config.max_length),
            ("query_max_length", query_max_length),
            ("document_max_length", document_max_length),
        ):
            if value is not None and value < 4:
                raise ValueError(f"{option} must be at least 4 tokens, got {value}.")
        self.query_max_length = query_max_length
        """Tokens per query (default: :attr:`max_length`)."""
        self.document_max_length = document_max_length
        """Tokens per document (default: :attr:`max_length`)."""
        self.quantize: str | None = None
        """How the weights were quantised at load time (see :data:`QUANTIZATIONS`), or None."""
        self.name = name
        self.source: str | None = None
        """The folder or Hub id the weights were loaded from (set by :meth:`from_pretrained`)."""
        self.config = config
        self.tokenizer = tokenizer
        first = next(model.parameters())
        self.devices = list(devices) if devices else [first.device]
        self._replicas = [model if d == first.device else _copy_to(model, d) for d in self.devices]
        for replica in self._replicas:
            replica.eval()
        # On a CPU a forward pass of 2k tokens already keeps the cores busy, and small batches of similar length
        # waste little padding (CHAMP concepts: 1.26x the real tokens at 2k, 2.75x at 16k); GPUs want big batches.
        self.batch_tokens = batch_tokens or (65536 if self.devices[0].type == "cuda" else 2048)
        self.max_batch_size = max_batch_size
        self._prefix, self._suffix = self._special_token_frame()
        self._pad_id = next(
            (i for i in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id) if i is not None), 0
        )
        self._pool = POOL_FUNCTIONS[config.pooling]
        self.dimension: int = int(_hidden_size(model))

    # ----------------------------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        pooling: str | None = None,
        max_length: int | None = None,
        query_format: str | None = None,
        device: str | torch.device | None = None,
        devices: Sequence[str | torch.device] | None = None,
        dtype: str | torch.dtype | None = None,
        trust_remote_code: bool = False,
        batch_tokens: int | None = None,
        query_max_length: int | None = None,
        document_max_length: int | None = None,
        quantize: str | None = None,
    ) -> ReasonEmbedEncoder:
        """Load a registry alias, a Hub id, a local transformers folder, or a GGUF file.

        Args:
            name_or_path: ``minilm-l6``, ``smollm2-135m``, ``reason-embed-qwen3-8b``, ... (see
                :data:`reasonembed_rag.models.REGISTRY`), a Hub id, a folder, or a ``.gguf`` file.
            pooling: Override the pooling (``lasttoken``, ``mean``, ``cls``).
            max_length: Maximum tokens per text, special tokens included; longer texts are truncated.
            query_format: Override the query format, with ``{instruction}`` and ``{query}`` fields.
            device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; default the first GPU if any, else CPU.
            devices: Several devices at once (one model copy each); batches are spread over them.
            dtype: ``float32``, ``bfloat16``, ``float16`` or ``auto`` (float32 on CPU, bf16/fp16 on GPU).
            trust_remote_code: Allow custom modelling code from the model folder or Hub (off by default).
            batch_tokens: Padded tokens per forward pass; default 2k on CPU, 64k on GPU.
            query_max_length: Tokens per query (default ``max_length``), e.g. short queries beside long documents.
            document_max_length: Tokens per document (default ``max_length``).
            quantize: ``int8`` (dynamic int8 linear layers, CPU only, float32 activations), or ``8bit`` / ``4bit``
                (bitsandbytes weights, CUDA only; ``pip install bitsandbytes``). Default: no quantisation.
        """
        if pooling is not None:
            _check_choice("pooling", pooling, POOLINGS)
        if device is not None and devices:
            raise ValueError("Pass either device=... or devices=[...], not both.")
        resolved_devices = [resolve_device(d) for d in devices] if devices else [resolve_device(device)]
        torch_dtype = resolve_dtype(dtype, resolved_devices[0])
        quantization = _quantization_config(quantize, resolved_devices, torch_dtype)

        name = os.fspath(name_or_path)
        if get_spec(name) is None and Path(name).expanduser().exists():
            # Collections record this name and rebuild the model from it in other processes and folders.
            name = str(Path(name).expanduser().resolve())
        path, config = _locate(name)
        if pooling is not None:
            config.pooling = pooling
        if max_length is not None:
            config.max_length = int(max_length)
        if query_format is not None:
            if "{query}" not in query_format:
                raise ValueError(f"query_format must contain '{{query}}', got {query_format!r}.")
            config.query_format = query_format

        model, tokenizer = _load_weights(
            path, config, torch_dtype, trust_remote_code, quantization, resolved_devices[0]
        )
        if quantization is None:
            model.to(resolved_devices[0])
        if quantize == "int8":
            model = _quantize_int8(model)
        encoder = cls(
            model,
            tokenizer,
            config,
            name=name,
            devices=resolved_devices,
            batch_tokens=batch_tokens,
            query_max_length=query_max_length,
            document_max_length=document_max_length,
        )
        encoder.source = path
        encoder.quantize = quantize
        return encoder

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        """Write weights (safetensors), tokenizer and ``reasonembed_config.json`` so the folder reloads as is."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        model: Any = self._replicas[0]
        model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        self.config.save(folder)

    # ----------------------------------------------------------------------------------------------- formatting

    @property
    def model(self) -> torch.nn.Module:
        """The underlying transformers model (the first device's copy); training wraps and updates it in place."""
        return self._replicas[0]

    @property
    def query_format(self) -> str:
        return self.config.query_format

    @property
    def max_length(self) -> int:
        return self.config.max_length

    @property
    def special_tokens(self) -> tuple[list[int], list[int]]:
        """The token ids :meth:`tokenize` puts before and after every text (for attacks that edit the text tokens)."""
        return list(self._prefix), list(self._suffix)

    @property
    def uses_instructions(self) -> bool:
        """Whether this model's query format has room for an instruction (False for e.g. all-MiniLM-L6-v2)."""
        return "{instruction}" in self.config.query_format

    def loading_settings(self) -> dict[str, Any]:
        """The :meth:`from_pretrained` options that shape this encoder's vectors and where it runs (pooling, max
        length, query format, device), as plain values: what a collection records to rebuild the same encoder."""
        return {
            "pooling": self.config.pooling,
            "max_length": self.config.max_length,
            "query_format": self.config.query_format,
            "device": str(self.devices[0]),
        }

    def resolve_instruction(
        self, task: str | None = None, instruction: str | None = None, *, long: bool = False
    ) -> str | None:
        """The instruction for a task (the model's own table first, then BRIGHT's), or the one given."""
        if task is not None and instruction is not None:
            raise ValueError("Pass either task=... or instruction=..., not both.")
        if instruction is not None:
            if not isinstance(instruction, str):
                raise TypeError(f"instruction must be a str, got {type(instruction).__name__}.")
            return instruction
        if task is None:
            return None
        return get_instruction(task, long=long, extra=self.config.task_instructions)

    def format_queries(
        self, texts: Sequence[str], *, task: str | None = None, instruction: str | None = None, long: bool = False
    ) -> list[str]:
        """The exact strings the model sees for these queries."""
        chosen = self.resolve_instruction(task, instruction, long=long)
        return [format_query(text, chosen, self.config.query_format) for text in check_texts(texts, what="queries")]

    # ----------------------------------------------------------------------------------------------- encoding

    def encode_queries(
        self,
        texts: Sequence[str],
        *,
        task: str | None = None,
        instruction: str | None = None,
        long: bool = False,
        show_progress: bool | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embed queries with the task instruction in the model's query format.

        Returns:
            float32 array of shape ``(len(texts), dimension)``, rows L2-normalised.
        """
        formatted = self.format_queries(texts, task=task, instruction=instruction, long=long)
        return self.encode(
            formatted, show_progress=show_progress, batch_size=batch_size, max_length=self.query_max_length
        )

    def encode_documents(
        self, texts: Sequence[str], *, show_progress: bool | None = None, batch_size: int | None = None
    ) -> np.ndarray:
        """Embed documents. Documents never get an instruction."""
        return self.encode(
            check_texts(texts, what="documents"),
            show_progress=show_progress,
            batch_size=batch_size,
            max_length=self.document_max_length,
        )

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        *,
        show_progress: bool | None = None,
        batch_size: int | None = None,
        max_length: int | None = None,
    ) -> np.ndarray:
        """Embed texts exactly as given (no instruction added).

        Args:
            texts: The exact strings to embed.
            show_progress: Show a progress bar; default from 256 texts on.
            batch_size: At most this many texts per forward pass (default :attr:`max_batch_size`); the padded-token
                budget :attr:`batch_tokens` still applies.
            max_length: Tokens per text, special tokens included (default :attr:`max_length`).
        """
        if batch_size is not None and (type(batch_size) is not int or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        items = check_texts(texts)
        output = np.zeros((len(items), self.dimension), dtype=np.float32)
        if not items:
            return output
        token_ids = self.tokenize(items, max_length=max_length)
        batches = list(self._plan_batches(token_ids, batch_size or self.max_batch_size))
        if show_progress is None:
            show_progress = len(items) >= AUTO_PROGRESS_THRESHOLD
        from tqdm.auto import tqdm

        with tqdm(total=len(items), desc="Embedding", unit="text", disable=not show_progress) as bar:
            lock = threading.Lock()

            @torch.inference_mode()  # inference mode is per thread: worker threads need their own
            def run(replica_index: int) -> None:
                replica, device = self._replicas[replica_index], self.devices[replica_index]
                for indices in batches[replica_index :: len(self._replicas)]:
                    vectors = self._embed_with_backoff(replica, device, [token_ids[i] for i in indices])
                    output[indices] = vectors
                    with lock:
                        bar.update(len(indices))

            if len(self._replicas) == 1:
                run(0)
            else:
                with ThreadPoolExecutor(len(self._replicas)) as pool:
                    list(pool.map(run, range(len(self._replicas))))
        return output

    def tokenize(self, texts: Sequence[str], *, max_length: int | None = None) -> list[list[int]]:
        """Token ids per text: truncated content framed by the special tokens, end token always last.

        Args:
            texts: The exact strings to embed (queries already formatted).
            max_length: Tokens per text, special tokens included; default the model's ``max_length``. Training uses
                its own query and passage lengths through this argument, with the same framing as inference.
        """
        limit = self.config.max_length if max_length is None else int(max_length)
        budget = limit - len(self._prefix) - len(self._suffix)
        if budget < 1:
            raise ValueError(f"max_length {limit} leaves no room for text after the special tokens; use at least 4.")
        encoded = self.tokenizer(
            list(texts), add_special_tokens=False, truncation=True, max_length=budget, return_attention_mask=False
        )["input_ids"]
        return [[*self._prefix, *ids, *self._suffix] for ids in encoded]

    def _special_token_frame(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before and after a text; decoders always end with an end token."""
        probe = "reasoning"
        bare = self.tokenizer(probe, add_special_tokens=False)["input_ids"]
        full = self.tokenizer(probe, add_special_tokens=True)["input_ids"]
        start = next((i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare), 0)
        prefix, suffix = list(full[:start]), list(full[start + len(bare) :])
        if self.config.pooling == "lasttoken" and not suffix:
            eos = self.tokenizer.eos_token_id
            if eos is None:
                raise ValueError(
                    f"Model {self.name!r} uses last-token pooling but its tokenizer has no end-of-sequence token."
                )
            suffix = [eos]
        return prefix, suffix

    def _plan_batches(self, token_ids: list[list[int]], max_texts: int) -> Iterator[list[int]]:
        """Length-sorted (longest first) batches of at most ``max_texts`` whose padded size stays within the token
        budget."""
        order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
        batch: list[int] = []
        for index in order:
            width = len(token_ids[batch[0]]) if batch else len(token_ids[index])
            if batch and ((len(batch) + 1) * width > self.batch_tokens or len(batch) >= max_texts):
                yield batch
                batch = []
            batch.append(index)
        if batch:
            yield batch

    def _embed_with_backoff(self, model: torch.nn.Module, device: torch.device, batch: list[list[int]]) -> np.ndarray:
        try:
            return self._embed_batch(model, device, batch)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
            if not _is_out_of_memory(error) or len(batch) == 1:
                raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        half = len(batch) // 2
        logger.warning("Out of memory on %s with %d texts; retrying in halves.", device, len(batch))
        return np.concatenate(
            [
                self._embed_with_backoff(model, device, batch[:half]),
                self._embed_with_backoff(model, device, batch[half:]),
            ]
        )

    def _embed_batch(self, model: torch.nn.Module, device: torch.device, batch: list[list[int]]) -> np.ndarray:
        inputs = {name: tensor.to(device) for name, tensor in self.pad_token_ids(batch).items()}
        hidden = model(**inputs)[0]
        return self.pool(hidden, inputs["attention_mask"]).cpu().numpy()

    def pad_token_ids(self, batch: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Model inputs for a batch of :meth:`tokenize` outputs (CPU tensors).

        Decoders are padded on the LEFT with explicit position ids, so the last position is each text's end token
        and a padded text sees the positions it would see alone; encoders are padded on the right.
        """
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        left = self.config.kind == "decoder"
        for row, ids in enumerate(batch):
            span = slice(width - len(ids), width) if left else slice(0, len(ids))
            input_ids[row, span] = torch.tensor(list(ids), dtype=torch.long)
            attention_mask[row, span] = 1
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if left:
            # Positions count real tokens only, so a left-padded text sees exactly the positions it would alone.
            inputs["position_ids"] = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        return inputs

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooling, then L2 normalisation when configured, in float32 (differentiable: training uses it)."""
        pooled = self._pool(hidden, attention_mask).float()
        if self.config.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    def __repr__(self) -> str:
        devices = ", ".join(str(d) for d in self.devices)
        return (
            f"ReasonEmbedEncoder(name={self.name!r}, dimension={self.dimension}, pooling={self.config.pooling!r}, "
            f"max_length={self.config.max_length}, devices=[{devices}])"
        )


def _hidden_size(model: torch.nn.Module) -> int:
    config: Any = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(getattr(text_config, "hidden_size", None) or text_config.d_model)


def _copy_to(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model).to(device)


def _locate(name: str) -> tuple[str, EncoderConfig]:
    """Where the weights are and how to embed with them, for an alias, Hub id, folder or GGUF file."""
    spec = get_spec(name)
    if spec is not None:
        if spec.source == "package":
            folder = package_path(spec)
            path = str(convert_gguf(folder, spec.gguf_file) if spec.gguf_file else folder)
            return path, EncoderConfig.from_spec(spec)
        if spec.source == "project":
            from .models import project_model_path

            folder = project_model_path(spec)
            return str(folder), EncoderConfig.load(folder) or EncoderConfig.from_spec(spec)
        return spec.location, EncoderConfig.from_spec(spec)
    local = Path(name).expanduser()
    if local.is_file() and local.suffix == ".gguf":
        path = str(convert_gguf(local.parent, local.name))
        return path, _infer_config(path)
    if local.is_dir():
        return str(local), EncoderConfig.load(local) or _infer_config(str(local))
    if local.suffix == ".gguf" or name.startswith((".", "/", "~")) or os.sep in name and name.count("/") > 1:
        raise ModelNotAvailableError(f"No model file or folder at {name!r}.")
    return name, _hub_config(name)


def _hub_config(repo_id: str) -> EncoderConfig:
    try:
        from huggingface_hub import hf_hub_download

        return EncoderConfig.load(Path(hf_hub_download(repo_id, CONFIG_NAME)).parent) or _infer_config(repo_id)
    except Exception:  # noqa: BLE001 - no saved config on the Hub (or offline): infer from the model config
        return _infer_config(repo_id)


def _infer_config(path: str) -> EncoderConfig:
    """Guess pooling and query format for a folder without our config: sentence-transformers files, then the
    architecture (decoders get last-token pooling and the instruct format, encoders mean pooling and bare queries).
    """
    pooling_file = Path(path) / "1_Pooling" / "config.json"
    if pooling_file.exists():
        modes = json.loads(pooling_file.read_text())
        for key, pooling in (("pooling_mode_lasttoken", "lasttoken"), ("pooling_mode_cls_token", "cls")):
            if modes.get(key):
                kind = "decoder" if pooling == "lasttoken" else "encoder"
                fmt = INSTRUCT_QUERY_FORMAT if kind == "decoder" else BARE_QUERY_FORMAT
                return EncoderConfig(kind=kind, pooling=pooling, query_format=fmt, max_length=512)
        return EncoderConfig(kind="encoder", pooling="mean", query_format=BARE_QUERY_FORMAT, max_length=512)
    try:
        from transformers import AutoConfig

        model_config = AutoConfig.from_pretrained(path)
    except OSError as error:
        raise _not_available(path, error) from error
    architectures = getattr(model_config, "architectures", None) or []
    decoder = model_config.model_type in _DECODER_TYPES or any("CausalLM" in a for a in architectures)
    if decoder:
        return EncoderConfig(kind="decoder", pooling="lasttoken", query_format=INSTRUCT_QUERY_FORMAT, max_length=8192)
    return EncoderConfig(kind="encoder", pooling="mean", query_format=BARE_QUERY_FORMAT, max_length=512)


def _not_available(path: str, error: BaseException) -> ModelNotAvailableError:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    hint = (
        "HF_HUB_OFFLINE is set, so the Hugging Face Hub is not consulted; unset it (with network access) "
        "or download the model and pass its folder."
        if offline
        else "Check the id, your network access to the Hugging Face Hub, or pass a local folder."
    )
    return ModelNotAvailableError(f"Could not load model {path!r}: {error.__class__.__name__}: {error}. {hint}")


def require_bitsandbytes() -> None:
    """Import bitsandbytes or say how to install it (``--quantize 8bit|4bit`` needs it)."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise ModelNotAvailableError(
            "quantize='8bit'/'4bit' loads the weights through bitsandbytes, which is not installed: "
            "pip install bitsandbytes (or reasonembed-rag[quantize]); on CPU use quantize='int8' instead."
        ) from error


def _quantization_config(quantize: str | None, devices: Sequence[torch.device], dtype: torch.dtype) -> Any:
    """The transformers ``quantization_config`` for bitsandbytes (None for no or int8 quantisation), after checking
    that the quantisation fits the devices and dtype."""
    if quantize is None:
        return None
    _check_choice("quantize", quantize, QUANTIZATIONS)
    kinds = {d.type for d in devices}
    if quantize == "int8":
        if kinds != {"cpu"}:
            raise ValueError(
                "quantize='int8' (dynamic int8 linear layers) runs on CPU only, not on "
                f"{', '.join(map(str, devices))}; on CUDA use quantize='8bit' or '4bit' (bitsandbytes)."
            )
        if dtype != torch.float32:
            raise ValueError(f"quantize='int8' computes in float32; drop dtype={dtype} (or pass 'float32').")
        return None
    if kinds != {"cuda"}:
        raise ValueError(
            f"quantize={quantize!r} uses bitsandbytes' CUDA kernels and needs a CUDA device, not "
            f"{', '.join(map(str, devices))}; on CPU use quantize='int8'."
        )
    if len(devices) > 1:
        raise ValueError(f"quantize={quantize!r} loads the weights onto one GPU; pass one device, not {len(devices)}.")
    require_bitsandbytes()
    from transformers import BitsAndBytesConfig

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)


def _quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of the linear layers, except each feed-forward block's output projection: int8
    weights per output channel, activations quantised per batch at run time; embeddings, norms and pooling stay
    float32.

    The feed-forward output projection (``down_proj`` in Llama/Qwen-style decoders, the FFN ``output.dense`` in BERT)
    reads the activations with the large outliers, which one dynamic int8 scale per batch cannot hold; keeping it in
    float32 is what moves int8 from far below float to within its noise. Chosen on the out-of-domain validation
    (``champ_concepts_ood``), never on the test side; the measurements are in docs/measurements.md. Per-channel
    weights, because per-tensor scales cost MiniLM more cosine against float.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    targets = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not _is_feed_forward_output(name)
    }
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao: noise for our users
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*", category=UserWarning)
        return quantize_dynamic(model, targets)


def _is_feed_forward_output(name: str) -> bool:
    """Whether a linear layer's qualified name is a feed-forward block's output projection (decoders and BERT)."""
    return name.endswith("down_proj") or (name.endswith("output.dense") and ".attention." not in f".{name}")


def _load_weights(
    path: str,
    config: EncoderConfig,
    dtype: torch.dtype,
    trust_remote_code: bool,
    quantization: Any = None,
    device: torch.device | None = None,
) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if (Path(path) / "adapter_config.json").exists():
        if quantization is not None:
            raise ValueError(
                f"{path} holds a LoRA adapter, which is merged into float weights; save the merged model "
                "(ReasonEmbedEncoder.save_pretrained) and quantise that folder."
            )
        return _load_adapter(path, config, dtype, trust_remote_code)
    quantized = {} if quantization is None else {"quantization_config": quantization, "device_map": {"": str(device)}}
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModel.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True, **quantized
        )
    except OSError as error:
        raise _not_available(path, error) from error
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return model, tokenizer


def _load_adapter(
    path: str, config: EncoderConfig, dtype: torch.dtype, trust_remote_code: bool
) -> tuple[torch.nn.Module, Any]:
    """A LoRA adapter folder: load its backbone, apply and merge the adapter."""
    try:
        from peft import PeftModel
    except ImportError as error:
        raise ModelNotAvailableError(f"{path} holds a LoRA adapter; install peft to load it.") from error
    base = config.base_model or json.loads((Path(path) / "adapter_config.json").read_text())["base_model_name_or_path"]
    base_path, _ = _locate(base)
    base_model, tokenizer = _load_weights(base_path, config, dtype, trust_remote_code)
    if (Path(path) / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
    with warnings.catch_warnings():  # peft reads a property transformers deprecated: noise for our users
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        merged = PeftModel.from_pretrained(base_model, path).merge_and_unload()
    return merged, tokenizer


def encoder_settings(encoder: ReasonEmbedEncoder) -> Mapping[str, Any]:
    """What a vector collection should remember about the model that filled it."""
    return {"model": encoder.name, "dimension": encoder.dimension, "query_format": encoder.query_format}
