"""ReMixer: synthesis of reasoning-intensive retrieval training data (docs/method.md, section 3).

Modules:

* :mod:`training.remixer.seeds` - seed documents and candidate corpora (BRIGHT-layout folder, JSONL, ``offline``).
* :mod:`training.remixer.prompts` / ``prompts.json`` - the prompts, as data, and their rendering.
* :mod:`training.remixer.parsing` - reading replies (scores, Yes/No, queries, reasoning) without ever raising.
* :mod:`training.remixer.mining` - candidate mining with BM25 or an encoder, the source document excluded.
* :mod:`training.remixer.annotator` - the in-process logit fast path of relevance annotation.
* :mod:`training.remixer.records` - append-only JSONL keyed by content hashes (exact resume).
* :mod:`training.remixer.settings` - :class:`SynthesisSettings`, how a run behaves.
* :mod:`training.remixer.stages` - one module per stage, and the :class:`SyntheticQuery` they pass along.
* :mod:`training.remixer.pipeline` - :class:`ReMixer`: runs the stages over each task, writes the summary.
* :mod:`training.remixer.cli` - ``reasonembed-train synthesize``.

Importing this package loads no model and no LLM client.
"""

from __future__ import annotations

from .pipeline import ReMixer, SynthesisAborted, SynthesisSettings
from .prompts import PromptBook
from .seeds import TaskSource, load_sources

__all__ = ["PromptBook", "ReMixer", "SynthesisAborted", "SynthesisSettings", "TaskSource", "load_sources"]
