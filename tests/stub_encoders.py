"""Cheap stand-ins for tests of store logic that does not depend on what the vectors mean.

:class:`HashEncoder` follows the encoder contract the store relies on (name, dimension, query format, the encode
methods) with deterministic vectors derived from each text's hash, so thousands of documents cost nothing to embed.
:class:`CountingEncoder` wraps a real encoder and records every call, to check what the adapters and the store ask of
it. Tests that check retrieval quality or framework wiring use the real MiniLM model instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


class HashEncoder:
    """Deterministic unit vectors from text hashes; records the size of every encode call."""

    def __init__(self, name: str = "hash-encoder", dimension: int = 8, query_format: str = "{query}") -> None:
        self.name = name
        self.dimension = dimension
        self.query_format = query_format
        self.document_calls: list[int] = []

    def resolve_instruction(self, task: str | None = None, instruction: str | None = None) -> str | None:
        if task is not None and instruction is not None:
            raise ValueError("Pass either task=... or instruction=..., not both.")
        return instruction if instruction is not None else (None if task is None else f"task {task}")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).standard_normal(self.dimension))
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dimension)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool | None = None) -> np.ndarray:
        self.document_calls.append(len(texts))
        return self.embed(texts)

    def encode_queries(
        self,
        texts: Sequence[str],
        *,
        task: str | None = None,
        instruction: str | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        self.resolve_instruction(task, instruction)
        return self.embed(texts)


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
