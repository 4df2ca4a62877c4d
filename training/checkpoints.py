"""Checkpoint folders of a training run: finding, pruning, writing and reading them, without pickle.

A checkpoint ``checkpoint-<step>/`` holds the trainable weights (``trainable.safetensors``), the optimiser
(``optimizer.safetensors``), the scheduler (``scheduler.json``), the step and the run's arguments
(``trainer_state.json``) and each rank's random-generator states (``rng_state_<rank>.safetensors``): all a run
needs to continue as if it had not stopped (see :class:`training.trainer.Trainer`).

Tensors go into safetensors files and everything else into JSON, so resuming from a checkpoint that someone else
wrote cannot run code. Checkpoints of older versions held pickles (``optimizer.pt``, ``scheduler.pt``,
``rng_state_<rank>.pt``); they are refused with an error that says so, never unpickled.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_NAME = "trainer_state.json"
TRAINABLE_NAME = "trainable.safetensors"
OPTIMIZER_NAME = "optimizer.safetensors"
SCHEDULER_NAME = "scheduler.json"
PICKLED_NAMES = ("optimizer.pt", "scheduler.pt", "rng_state_*.pt")
"""What checkpoints of older versions held in pickle format."""
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


def _by_step(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    if not checkpoint_dir.is_dir():
        return []
    return sorted(
        (int(m.group(1)), path) for path in checkpoint_dir.iterdir() if (m := CHECKPOINT_PATTERN.match(path.name))
    )


def find_checkpoint(resume: str, checkpoint_dir: Path) -> Path:
    """The folder that ``--resume`` names: ``latest`` (the newest complete one under ``checkpoint_dir``) or a path."""
    if resume != "latest":
        path = Path(resume)
        if not (path / STATE_NAME).exists():
            raise FileNotFoundError(f"{path} is not a checkpoint folder (no {STATE_NAME}).")
        return path
    found = [path for _, path in _by_step(checkpoint_dir) if (path / STATE_NAME).exists()]
    if not found:
        raise FileNotFoundError(f"--resume: no checkpoint under {checkpoint_dir}.")
    return found[-1]


def prune_checkpoints(checkpoint_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (0 keeps all)."""
    if not keep:
        return
    for _, path in _by_step(checkpoint_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(
    folder: Path,
    *,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
) -> None:
    """Write what all ranks share: weights, optimiser, scheduler and ``state`` (step, arguments) as JSON. Each rank
    adds its own generator states with :func:`save_rng_state`."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().cpu() for k, v in trainable.items()}, folder / TRAINABLE_NAME)
    save_optimizer_state(optimizer.state_dict(), folder / OPTIMIZER_NAME)
    save_scheduler_state(scheduler.state_dict(), folder / SCHEDULER_NAME)
    (folder / STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")


def load_checkpoint(
    folder: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, rank: int
) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` and :func:`save_rng_state` wrote; returns the saved ``state``."""
    refuse_pickled(folder)
    state = json.loads((folder / STATE_NAME).read_text())
    load_trainable(folder, model)
    optimizer.load_state_dict(load_optimizer_state(folder / OPTIMIZER_NAME))
    scheduler.load_state_dict(load_scheduler_state(folder / SCHEDULER_NAME))
    rng_path = folder / rng_state_name(rank)
    if rng_path.exists():
        restore_rng_state(rng_path)
    return state


def read_state(folder: Path) -> dict[str, Any]:
    """A checkpoint's ``trainer_state.json`` (step, total steps, the run's arguments)."""
    if not (folder / STATE_NAME).exists():
        raise FileNotFoundError(f"{folder} is not a checkpoint folder (no {STATE_NAME}).")
    return json.loads((folder / STATE_NAME).read_text())


def load_trainable(folder: Path, model: torch.nn.Module) -> None:
    """Set ``model``'s trainable parameters to a checkpoint's weights (enough to export its model)."""
    from safetensors.torch import load_file

    weights = load_file(folder / TRAINABLE_NAME)
    parameters = dict(model.named_parameters())
    missing = [name for name, p in parameters.items() if p.requires_grad and name not in weights]
    if missing:
        raise ValueError(
            f"{folder} does not match this model: {len(missing)} trainable tensors missing, e.g. {missing[0]}."
        )
    with torch.no_grad():
        for name, tensor in weights.items():
            parameters[name].copy_(tensor)


def rng_state_name(rank: int) -> str:
    """The file of one rank's random-generator states."""
    return f"rng_state_{rank}.safetensors"


def save_optimizer_state(state: dict[str, Any], path: Path) -> None:
    """Write ``optimizer.state_dict()``: its tensors in safetensors, the rest as JSON in the file's metadata."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    per_parameter: dict[str, dict[str, Any]] = {}
    for parameter, values in state["state"].items():
        plain: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{parameter}/{key}"] = value.detach().contiguous().cpu()
            else:
                plain[key] = value
        per_parameter[str(parameter)] = plain
    metadata = {"param_groups": json.dumps(state["param_groups"]), "state": json.dumps(per_parameter)}
    save_file(tensors, path, metadata=metadata)


def load_optimizer_state(path: Path) -> dict[str, Any]:
    """Read what :func:`save_optimizer_state` wrote, as ``optimizer.load_state_dict`` takes it (tensors on CPU; the
    optimiser moves them to its parameters' device)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if "param_groups" not in metadata or "state" not in metadata:
            raise ValueError(f"{path} holds no optimiser state (no param_groups/state metadata).")
        state = {int(parameter): values for parameter, values in json.loads(metadata["state"]).items()}
        for key in handle.keys():
            parameter, name = key.split("/", 1)
            state[int(parameter)][name] = handle.get_tensor(key)
    return {"state": state, "param_groups": json.loads(metadata["param_groups"])}


def save_scheduler_state(state: dict[str, Any], path: Path) -> None:
    """Write ``scheduler.state_dict()`` (numbers and lists; its learning-rate functions are not state)."""
    path.write_text(json.dumps(state, indent=2) + "\n")


def load_scheduler_state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def save_rng_state(path: Path) -> None:
    """Write the Python, NumPy, torch and CUDA generator states of this process."""
    from safetensors.torch import save_file

    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64))}
    if torch.cuda.is_available():
        tensors.update({f"cuda/{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    metadata = {
        "python": json.dumps([version, list(internal), gauss]),
        "numpy": json.dumps([kind, position, has_gauss, cached_gaussian]),
    }
    save_file(tensors, path, metadata=metadata)


def restore_rng_state(path: Path) -> None:
    """Set this process's generators to what :func:`save_rng_state` wrote."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    version, internal, gauss = json.loads(metadata["python"])
    random.setstate((version, tuple(internal), gauss))
    kind, position, has_gauss, cached_gaussian = json.loads(metadata["numpy"])
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda/{i}"] for i in range(sum(key.startswith("cuda/") for key in tensors))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def refuse_pickled(folder: Path) -> None:
    """Raise when ``folder`` is a checkpoint of an older version, whose states are pickles."""
    if (folder / OPTIMIZER_NAME).exists():
        return
    pickled = sorted(path.name for pattern in PICKLED_NAMES for path in folder.glob(pattern))
    if pickled:
        raise ValueError(
            f"{folder} holds training state in pickle format ({', '.join(pickled)}), written by an older version. "
            f"Loading a pickle can run arbitrary code, so it is not resumed. Start the run again, or export its "
            f"weights (trainable.safetensors, no pickle) with: reasonembed-train export --checkpoint {folder} "
            f"--output FOLDER."
        )
