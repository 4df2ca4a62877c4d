"""What every framework adapter needs from the core: one loaded encoder per model, shared process-wide.

Frameworks construct embedding objects freely (LangChain's standard tests build one per test, Chroma rebuilds its
embedding function every time it reads a collection's configuration). Loading a model each time would cost seconds
to minutes, so adapters built from a model name share one :class:`~reasonembed_rag.ReasonEmbedEncoder` per name.
Nothing here imports a framework.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reasonembed_rag.encoder import ReasonEmbedEncoder

_ENCODERS: dict[str, ReasonEmbedEncoder] = {}
_LOCK = threading.Lock()


def shared_encoder(model: str) -> ReasonEmbedEncoder:
    """The encoder for ``model``, loaded on first use and shared by every adapter in this process.

    Args:
        model: Registry alias (``minilm-l6``), Hugging Face Hub id, or local model folder.

    Returns:
        The loaded encoder; later calls with the same ``model`` return the same object.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a registry alias, Hub id or folder path, got {model!r}.")
    with _LOCK:
        encoder = _ENCODERS.get(model)
        if encoder is None:
            from reasonembed_rag.encoder import ReasonEmbedEncoder

            encoder = ReasonEmbedEncoder.from_pretrained(model)
            _ENCODERS[model] = encoder
        return encoder


def share_encoder(encoder: ReasonEmbedEncoder) -> None:
    """Make an already loaded encoder the one that adapters built from its name will use."""
    with _LOCK:
        _ENCODERS.setdefault(encoder.name, encoder)
