"""Export: write a model folder that :meth:`ReasonEmbedEncoder.from_pretrained` loads offline, and its model card.

Three forms:

* ``adapter`` (LoRA runs, the default): ``adapter_config.json`` + ``adapter_model.safetensors`` and a
  ``reasonembed_config.json`` whose ``base_model`` names the backbone (an alias such as ``smollm2-135m``, a Hub id or
  a folder). The encoder loads the backbone and merges the adapter. Small enough to keep in a repository
  (sizes: docs/measurements.md; ``adapter_dtype="float16"`` halves them).
* ``merged`` (LoRA runs): the adapter merged into full safetensors weights, loaded through the very same adapter
  code path first, so both forms give the same vectors.
* ``full`` (full fine-tuning): the trained weights.

Every form records pooling, query format, max length and the task instructions gathered from the training data's
prompts, so a trained model carries its own query format. ``README.md`` is a generated model card (data, loss,
steps, hyper-parameters, and a results table filled from ``results.json`` files of ``reasonembed-rag bright``).
``training_info.json`` keeps what the card is generated from, so :func:`write_model_card` can redo it later.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from reasonembed_rag.encoder import CONFIG_NAME, EncoderConfig, ReasonEmbedEncoder

TRAINING_INFO_NAME = "training_info.json"
RESULTS_NAME = "results.json"
RESULTS_NOTE_NAME = "results_note.txt"
CARD_NAME = "README.md"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
EXPORT_FORMS = ("adapter", "merged")
ADAPTER_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars ("Writing model shards") and no peft deprecation noise while saving/loading."""
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()


def is_peft_model(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a peft wrapper (a LoRA run)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def save_adapter(model: torch.nn.Module, folder: str | os.PathLike[str], *, dtype: str = "float32") -> Path:
    """Write the LoRA adapter (config + safetensors weights, stored in ``dtype``) into ``folder``."""
    if dtype not in ADAPTER_DTYPES:
        raise ValueError(f"Unknown adapter dtype {dtype!r}. Accepted values: {', '.join(ADAPTER_DTYPES)}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)  # type: ignore[operator]
    weights = folder / ADAPTER_WEIGHTS_NAME
    if dtype != "float32":
        from safetensors.torch import load_file, save_file

        tensors = {name: tensor.to(ADAPTER_DTYPES[dtype]).contiguous() for name, tensor in load_file(weights).items()}
        save_file(tensors, weights, metadata={"format": "pt"})
    return folder


def scale_adapter(folder: str | os.PathLike[str], alpha: float) -> Path:
    """WiSE-FT for a LoRA adapter folder: scale its weight delta by ``alpha`` in place (0 = backbone, 1 = as trained).

    A merged LoRA layer is ``W0 + B @ A * scaling``, so multiplying every ``lora_B`` by ``alpha`` gives exactly the
    weight-space average ``W0 + alpha * (W1 - W0)`` of the backbone and the trained model. ``training_info.json``
    records the overall factor (scalings multiply) and the model card is regenerated.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (0 = the backbone, 1 = the trained model), got {alpha}.")
    folder = Path(folder)
    weights = folder / ADAPTER_WEIGHTS_NAME
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing: only LoRA adapter folders (--export-form adapter) scale.")
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    if not any("lora_B" in name for name in tensors):
        raise ValueError(f"{weights} holds no lora_B weights; is it a LoRA adapter?")
    scaled = {
        name: (tensor.float() * alpha).to(tensor.dtype) if "lora_B" in name else tensor
        for name, tensor in tensors.items()
    }
    save_file(scaled, weights, metadata={"format": "pt"})
    info_path = folder / TRAINING_INFO_NAME
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    info["wise_ft_alpha"] = round(info.get("wise_ft_alpha", 1.0) * alpha, 6)
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    write_model_card(folder)
    return folder


def soup_adapters(
    folders: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *, alpha: float = 1.0
) -> Path:
    """A uniform model soup of LoRA adapter folders (seeds of one recipe), as one exact LoRA adapter in ``output``.

    The soup's weights are the mean of the runs' weights, ``W0 + mean(B_i @ A_i * s_i)``, times ``alpha`` if given
    (WiSE-FT on the soup). peft's ``add_weighted_adapter(combination_type="cat")`` writes that exactly: one adapter
    whose rank is the sum of the runs' ranks. Every run must share the backbone, pooling and query format; the first
    run's config, arguments and log are kept, and ``training_info.json`` lists the runs and their seeds.
    """
    from peft import PeftModel

    if len(folders) < 2:
        raise ValueError(f"A soup needs at least two adapter folders, got {len(folders)}.")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1] (1 = the soup as averaged), got {alpha}.")
    sources = [Path(folder) for folder in folders]
    configs: list[EncoderConfig] = []
    for folder in sources:
        config = EncoderConfig.load(folder) if (folder / ADAPTER_WEIGHTS_NAME).exists() else None
        if config is None or config.base_model is None:
            raise FileNotFoundError(
                f"{folder} is not a LoRA adapter model folder (written with --export-form adapter)."
            )
        configs.append(config)
    for folder, config in zip(sources[1:], configs[1:], strict=True):
        for field in ("base_model", "pooling", "query_format", "max_length"):
            if getattr(config, field) != getattr(configs[0], field):
                raise ValueError(
                    f"{folder} and {sources[0]} differ in {field} ({getattr(config, field)!r} against "
                    f"{getattr(configs[0], field)!r}): only runs of one recipe make a soup."
                )
    output = Path(output)
    if output.resolve() in {folder.resolve() for folder in sources}:
        raise ValueError(f"Write the soup to a new folder, not over one of its runs ({output}).")
    from safetensors import safe_open

    with safe_open(str(sources[0] / ADAPTER_WEIGHTS_NAME), "pt") as weights:
        stored = weights.get_tensor(next(iter(weights.keys()))).dtype
    dtype = next(name for name, value in ADAPTER_DTYPES.items() if value == stored)
    backbone = ReasonEmbedEncoder.from_pretrained(str(configs[0].base_model), device="cpu", dtype="float32")
    names = [f"run{index}" for index in range(len(sources))]
    with quiet_transformers():
        model = PeftModel.from_pretrained(backbone.model, str(sources[0]), adapter_name=names[0])
        for name, folder in zip(names[1:], sources[1:], strict=True):
            model.load_adapter(str(folder), adapter_name=name)
        model.add_weighted_adapter(
            names, [alpha / len(names)] * len(names), adapter_name="default", combination_type="cat"
        )
        model.set_adapter("default")
        for name in names:
            model.delete_adapter(name)
        output.mkdir(parents=True, exist_ok=True)
        for stale in ("adapter_config.json", ADAPTER_WEIGHTS_NAME):
            (output / stale).unlink(missing_ok=True)
        save_adapter(model, output, dtype=dtype)
    configs[0].save(output)
    for name in ("training_args.json", "train_log.jsonl"):
        if (sources[0] / name).exists():
            (output / name).write_bytes((sources[0] / name).read_bytes())
    info_path = sources[0] / TRAINING_INFO_NAME
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    seeds = []
    for folder in sources:
        arguments = folder / "training_args.json"
        seeds.append(json.loads(arguments.read_text()).get("seed") if arguments.exists() else None)
    info["soup"] = {"runs": [str(folder) for folder in sources], "seeds": seeds}
    if alpha != 1.0:
        info["wise_ft_alpha"] = round(info.get("wise_ft_alpha", 1.0) * alpha, 6)
    info["files_mb"] = round(_folder_megabytes(output), 2)
    (output / TRAINING_INFO_NAME).write_text(json.dumps(info, indent=2, default=str) + "\n")
    write_model_card(output)
    return output


def export_model(
    model: torch.nn.Module,
    encoder: ReasonEmbedEncoder,
    folder: str | os.PathLike[str],
    *,
    form: str = "adapter",
    base_model: str | None = None,
    task_instructions: Mapping[str, str] | None = None,
    adapter_dtype: str = "float32",
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write a loadable model folder (and its model card).

    Args:
        model: The trained model: a peft model (LoRA) or a plain transformers model (full fine-tuning).
        encoder: The encoder the model was trained through (tokenizer, pooling, query format, max length).
        folder: Where to write; created if needed. Existing model files there are replaced.
        form: ``adapter`` or ``merged`` for LoRA runs; ignored for full fine-tuning (always full weights).
        base_model: For LoRA runs, the backbone as the loader should find it (alias, Hub id or folder).
        task_instructions: Task -> instruction, recorded in the config (from the training data's prompts).
        adapter_dtype: Storage dtype of adapter weights: ``float32``, ``float16`` or ``bfloat16``.
        info: Training facts for the model card (see :func:`write_model_card`).

    Returns:
        The folder.
    """
    if form not in EXPORT_FORMS:
        raise ValueError(f"Unknown export form {form!r}. Accepted values: {', '.join(EXPORT_FORMS)}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = replace(encoder.config, task_instructions=dict(task_instructions or encoder.config.task_instructions))
    for stale in ("adapter_config.json", ADAPTER_WEIGHTS_NAME, "model.safetensors", "model.safetensors.index.json"):
        (folder / stale).unlink(missing_ok=True)
    with quiet_transformers():
        written_form = _write_weights(model, encoder, folder, config, form, base_model, adapter_dtype)
    details = dict(info or {})
    details["export_form"] = written_form
    details["files_mb"] = round(_folder_megabytes(folder), 2)
    (folder / TRAINING_INFO_NAME).write_text(json.dumps(details, indent=2, default=str) + "\n")
    write_model_card(folder)
    return folder


def _write_weights(
    model: torch.nn.Module,
    encoder: ReasonEmbedEncoder,
    folder: Path,
    config: EncoderConfig,
    form: str,
    base_model: str | None,
    adapter_dtype: str,
) -> str:
    """Write the weights in the asked form; returns the form written (``full`` for full fine-tuning)."""
    if is_peft_model(model):
        if not base_model:
            raise ValueError("A LoRA model needs base_model= (the backbone's alias, Hub id or folder) to export.")
        adapter_config = replace(config, base_model=base_model)
        if form == "adapter":
            save_adapter(model, folder, dtype=adapter_dtype)
            adapter_config.save(folder)
        else:
            _export_merged(model, folder, adapter_config, adapter_dtype)
        return form
    _save_full(model, encoder.tokenizer, folder, replace(config, base_model=None))
    return "full"


def _export_merged(model: torch.nn.Module, folder: Path, config: EncoderConfig, adapter_dtype: str) -> None:
    """Save the adapter to a scratch folder, load it back through the encoder (which merges it), save full weights."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".adapter-") as scratch:
        save_adapter(model, scratch, dtype=adapter_dtype)
        config.save(scratch)
        merged = ReasonEmbedEncoder.from_pretrained(scratch, device="cpu", dtype="float32")
    merged.config = replace(config, base_model=None)
    _save_full(merged.model, merged.tokenizer, folder, merged.config)


def _save_full(model: torch.nn.Module, tokenizer: Any, folder: Path, config: EncoderConfig) -> None:
    model.save_pretrained(str(folder), safe_serialization=True)  # type: ignore[operator]
    tokenizer.save_pretrained(str(folder))
    config.save(folder)


def _folder_megabytes(folder: Path) -> float:
    """Size of the model files (the folder's own files; checkpoints in sub-folders do not ship)."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 2**20


# ---------------------------------------------------------------------------------------------------- model card


def load_results(paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Read ``reasonembed-rag bright`` result files (``{"model", "tasks": {task: {"ndcg@10": f}}, "mean": ...}``).

    A file may also hold a list of such objects (as a model folder's ``results.json`` does).
    """
    results: list[dict[str, Any]] = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"Cannot read results file {path}: {error}") from error
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item, dict) or not isinstance(item.get("tasks"), dict):
                raise ValueError(f"{path}: expected the output of `reasonembed-rag bright --output` (a 'tasks' map).")
            results.append(item)
    return results


def add_results(
    folder: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]], *, note: str | None = None
) -> Path:
    """Add result files to a model folder's ``results.json`` (a model's new row replaces its old) and redo the card.

    ``note`` (kept in ``results_note.txt``, replacing an earlier one) is printed under the results table: say there
    which numbers are not what they seem, e.g. a task whose queries the model trained on.
    """
    folder = Path(folder)
    if not (folder / CONFIG_NAME).exists():
        raise ValueError(f"{folder} is not a model folder (no {CONFIG_NAME}).")
    if note is not None:
        (folder / RESULTS_NOTE_NAME).write_text(note.strip() + "\n", encoding="utf-8")
    existing = load_results([folder / RESULTS_NAME]) if (folder / RESULTS_NAME).exists() else []
    new = load_results(paths)
    names = {_row_name(item) for item in new}
    merged = [item for item in existing if _row_name(item) not in names] + new
    (folder / RESULTS_NAME).write_text(json.dumps(merged, indent=2) + "\n")
    return write_model_card(folder)


def _row_name(result: Mapping[str, Any]) -> str:
    name = str(result.get("model", "?"))
    if "/" in name and Path(name).is_absolute():
        name = Path(name).name  # a local model folder: its folder name, not this machine's path
    via = result.get("via")
    return f"{name} (via {via})" if via and via != "direct" else name


def results_table(results: Sequence[Mapping[str, Any]], metric: str = "ndcg@10") -> str:
    """A Markdown table: one row per result, one column per task plus the mean, ``metric`` x 100."""
    tasks = sorted({task for result in results for task in result["tasks"]})
    header = ["model", *tasks, "mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        values = [result["tasks"].get(task, {}).get(metric) for task in tasks]
        mean = (result.get("mean") or {}).get(metric)
        if mean is None and values and all(v is not None for v in values):
            mean = sum(values) / len(values)
        cells = [f"{100 * v:.1f}" if isinstance(v, int | float) else "-" for v in [*values, mean]]
        lines.append("| " + " | ".join([_row_name(result), *cells]) + " |")
    return "\n".join(lines)


def write_model_card(folder: str | os.PathLike[str]) -> Path:
    """(Re)generate ``README.md`` from ``training_info.json`` and ``results.json`` in the folder."""
    folder = Path(folder)
    info_path = folder / TRAINING_INFO_NAME
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    config = EncoderConfig.load(folder) or EncoderConfig()
    results = load_results([folder / RESULTS_NAME]) if (folder / RESULTS_NAME).exists() else []
    name = info.get("name") or folder.name
    args = info.get("arguments", {})
    data = info.get("data", {})
    final = info.get("final", {})
    loss = str(args.get("loss", "?"))
    loss_text = {
        "redapter": "Redapter (RI-InfoNCE): InfoNCE with each query weighted by its clamped (0-5), L1-normalised "
        "reasoning intensity L / (L_reasoning + 1e-6)"
        + (
            f", after {args.get('redapter_warmup_steps')} plain warm-up steps"
            if "redapter_warmup_steps" in args
            else ""
        ),
        "infonce": "InfoNCE (the ReasonEmbed 'basic' recipe)",
    }.get(loss, loss)
    method = info.get("method", "?")
    lines = [
        "---",
        "library_name: reasonembed-rag",
        "tags: [sentence-embeddings, retrieval, reasoning, reasonembed]",
        *([f"base_model: {config.base_model}"] if config.base_model else []),
        "---",
        "",
        f"# {name}",
        "",
        f"A ReasonEmbed-style embedding model trained with `reasonembed-train` on `{args.get('model', '?')}`: "
        f"{loss_text}. Pooling `{config.pooling}`, query format `{config.query_format!r}`, "
        f"max length {config.max_length}. Stored as {_form_text(info.get('export_form'), config)}"
        + (f" ({info['files_mb']} MB)." if "files_mb" in info else "."),
        "",
        "## Usage",
        "",
        "```python",
        "from reasonembed_rag import ReasonEmbedEncoder",
        "",
        f'encoder = ReasonEmbedEncoder.from_pretrained("{folder.name}")  # this folder (or its registry alias)',
        f'queries = encoder.encode_queries(["..."], task="{next(iter(config.task_instructions), "biology")}")',
        'documents = encoder.encode_documents(["..."])',
        "scores = queries @ documents.T  # cosine",
        "```",
        "",
        "## Results",
        "",
    ]
    if results:
        lines += [
            "nDCG@10 x 100 (pytrec_eval), measured with `reasonembed-rag bright`:",
            "",
            results_table(results),
            "",
        ]
        if (folder / RESULTS_NOTE_NAME).exists():
            lines += [(folder / RESULTS_NOTE_NAME).read_text(encoding="utf-8").strip(), ""]
    else:
        lines += [
            "No measured results yet. Measure with `reasonembed-rag bright --model <this folder> --output "
            "results.json` and add them with `reasonembed-train card <this folder> --results results.json [...]`.",
            "",
        ]
    lines += ["## Training data", ""]
    if data:
        lines.append(
            f"{data.get('samples', '?')} rows from `{args.get('data', '?')}`"
            + (f" ({data['skipped']} malformed rows skipped)" if data.get("skipped") else "")
            + ", one task per batch:"
        )
        lines += ["", "| task | rows |", "|---|---|"]
        lines += [f"| {task} | {entry.get('samples')} |" for task, entry in data.get("tasks", {}).items()]
        lines.append("")
    if config.task_instructions:
        lines += ["Task instructions recorded in the model (from the data's prompts):", ""]
        lines += [f"- `{task}`: {text}" for task, text in config.task_instructions.items()]
        lines.append("")
    lines += ["## Training", ""]
    if info:
        lines += [
            f"- Method: {method}",
            *(
                [
                    f"- WiSE-FT: the adapter's weight delta scaled by {info['wise_ft_alpha']} (weights = backbone + "
                    f"{info['wise_ft_alpha']} x (trained - backbone))"
                ]
                if "wise_ft_alpha" in info
                else []
            ),
            *(
                [
                    f"- Model soup: the uniform mean of the weights of {len(info['soup']['seeds'])} runs of this "
                    f"recipe (seeds {', '.join(map(str, info['soup']['seeds']))}), stored as one LoRA adapter of "
                    "their summed rank"
                ]
                if "soup" in info
                else []
            ),
            f"- Steps: {info.get('steps', '?')} optimiser steps ({info.get('epochs_done', '?')} epochs), "
            f"{info.get('train_seconds', '?')} s on {info.get('device', '?')}",
            f"- Final (mean of the last {final.get('window', '?')} steps): "
            + ", ".join(f"{key} {value:.4g}" for key, value in final.items() if key != "window" and value is not None),
            "",
            "| hyper-parameter | value |",
            "|---|---|",
        ]
        lines += [f"| {key} | {_cell(value)} |" for key, value in args.items() if key not in ("data", "output")]
        lines.append("")
    lines += [
        "## Method",
        "",
        "ReasonEmbed (arXiv 2510.08252): last-token pooled, L2-normalised embeddings; queries formatted as "
        "`Instruct: {instruction}\\nQuery: {query}`, documents without instruction; cosine similarity; InfoNCE with "
        "in-batch and hard negatives at temperature 0.02, optionally re-weighted per query by Redapter."
        + (
            ""
            if config.pooling == "lasttoken"
            else f" This model uses `{config.pooling}` pooling instead of the paper's last-token pooling."
        ),
        "",
    ]
    card = folder / CARD_NAME
    card.write_text("\n".join(lines))
    return card


def _form_text(form: str | None, config: EncoderConfig) -> str:
    if form == "adapter":
        return f"a LoRA adapter over `{config.base_model}`, merged at load time"
    if form == "merged":
        return "full weights (LoRA merged)"
    return "full weights"


def _cell(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value).replace("\n", "\\n").replace("|", "\\|")
