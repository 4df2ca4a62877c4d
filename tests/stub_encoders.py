"""Cheap stand-ins for tests of store logic that does not depend on what the vectors mean.

:class:`TinyEncoder` is a real tiny random model from a config, under any name, dimension and query format, so
thousands of documents cost little to embed.
:class:`CountingEncoder` wraps a real encoder and records every call, to check what the adapters and the store ask of
it. Tests that check retrieval quality or framework wiring use the real MiniLM model instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .tiny_models import build_tiny_decoder


class TinyEncoder:
    """A real tiny random decoder (built from a config, see :mod:`tests.tiny_models`) under any name, dimension and
    query format, so store rules (model identity, chunking, duplicates) are tested on real vectors at no cost.
    ``folder`` loads another tiny model folder (say, one trained again) instead of the shared one of that dimension.
    Records the size of every document encode call."""

    _folders: dict[int, Path] = {}

    def __init__(
        self,
        name: str = "tiny-encoder",
        dimension: int = 8,
        query_format: str = "{query}",
        *,
        folder: Path | None = None,
        quantize: str | None = None,
    ) -> None:
        from reasonembed_rag import ReasonEmbedEncoder

        if folder is None:
            if dimension not in self._folders:
                built = Path(tempfile.mkdtemp(prefix=f"tiny-encoder-{dimension}-"))
                self._folders[dimension] = build_tiny_decoder(built, "qwen3", hidden_size=dimension)
            folder = self._folders[dimension]
        self._encoder = ReasonEmbedEncoder.from_pretrained(
            str(folder), query_format=query_format, device="cpu", quantize=quantize
        )
        self.quantize = quantize
        self.source = str(folder)
        """The model folder, whose files the store fingerprints."""
        self.name = name
        self.dimension = dimension
        self.query_format = query_format
        self.document_calls: list[int] = []

    def resolve_instruction(self, task: str | None = None, instruction: str | None = None) -> str | None:
        return self._encoder.resolve_instruction(task, instruction)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool | None = None) -> np.ndarray:
        self.document_calls.append(len(texts))
        return self._encoder.encode_documents(texts, show_progress=False)

    def encode_queries(
        self,
        texts: Sequence[str],
        *,
        task: str | None = None,
        instruction: str | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        return self._encoder.encode_queries(texts, task=task, instruction=instruction, show_progress=False)


class CountingEncoder:
    """Forwards to a real encoder and records ``(method, number of texts, keyword arguments)`` for each call."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self.calls: list[tuple[str, int, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        self.calls.append(("documents", len(texts), kwargs))
        return self._encoder.encode_documents(texts, **kwargs)

    def encode_queries(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        self.calls.append(("queries", len(texts), kwargs))
        return self._encoder.encode_queries(texts, **kwargs)


class PrecomputedEncoder(CountingEncoder):
    """A real encoder whose document vectors for known texts were computed once, so tests need not embed twice."""

    def __init__(self, encoder: Any, texts: Sequence[str], vectors: np.ndarray) -> None:
        super().__init__(encoder)
        self._known = dict(zip(texts, vectors, strict=True))

    def encode_documents(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        self.calls.append(("documents", len(texts), kwargs))
        if all(text in self._known for text in texts):
            return np.stack([self._known[text] for text in texts]).astype(np.float32)
        return self._encoder.encode_documents(texts, **kwargs)
