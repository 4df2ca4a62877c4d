"""MTEBEncoder: a :class:`~reasonembed_rag.ReasonEmbedEncoder` behind mteb 2.x's encoder protocol.

``mteb.evaluate`` calls ``encode(inputs, task_metadata=..., hf_split=..., hf_subset=..., prompt_type=...)`` with a
DataLoader of batches (``batch["text"]``; a document's title is already joined to its text). Queries get our
per-task instruction (:mod:`reasonembed_rag.instructions`) in the model's query format; documents never do:

* mteb's BRIGHT tasks (``BrightBiologyRetrieval``, ``BrightEarthScienceLongRetrieval``, the multi-domain
  ``BrightRetrieval`` / ``BrightLongRetrieval`` whose subset names the domain, ...) use BRIGHT's instruction for that
  domain, long-document variant included;
* a task named like one of ours (``champ_concepts``) uses ours;
* any other task uses the instruction mteb's task metadata carries (its ``prompt``), if any.

Needs the ``mteb`` extra: ``pip install 'reasonembed-rag[mteb]'``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType

from ..instructions import BRIGHT_LONG_INSTRUCTIONS, BRIGHT_TASKS, EXTRA_INSTRUCTIONS, get_instruction, normalize_task

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from torch.utils.data import DataLoader

    from reasonembed_rag.encoder import ReasonEmbedEncoder

__all__ = ["MTEBEncoder", "task_instruction"]

_BRIGHT_BY_COMPACT = {task.replace("_", ""): task for task in BRIGHT_TASKS}
"""``theoremqatheorems`` -> ``theoremqa_theorems``: mteb's CamelCase names lowered, without separators."""


def task_instruction(task_name: str, hf_subset: str = "default", extra: Mapping[str, str] | None = None) -> str | None:
    """Our query instruction for an mteb task (None: we have none for it).

    Example:
        >>> task_instruction("BrightTheoremQATheoremsRetrieval")
        'Given a Math problem, retrieve relevant theorems that help answer the problem.'
        >>> task_instruction("BrightLongRetrieval", "biology")
        'Given a Biology post, retrieve relevant documents that help answer the post.'
    """
    match = re.fullmatch(r"Bright(.*?)(Long)?Retrieval", task_name)
    if match:
        domain = match.group(1).lower() or hf_subset.lower()
        task = _BRIGHT_BY_COMPACT.get(domain.replace("_", "").replace("-", ""))
        if task is not None:
            long = match.group(2) is not None and task in BRIGHT_LONG_INSTRUCTIONS
            return get_instruction(task, long=long)
    own = {normalize_task(name): text for name, text in {**EXTRA_INSTRUCTIONS, **(extra or {})}.items()}
    return own.get(normalize_task(task_name))


class MTEBEncoder(AbsEncoder):
    """ReasonEmbed for ``mteb.evaluate``.

    Example:
        ```python
        import mteb
        from reasonembed_rag.integrations.mteb import MTEBEncoder

        model = MTEBEncoder("reason-embed-qwen3-8b")
        tasks = mteb.get_tasks(tasks=["BrightBiologyRetrieval", "BrightTheoremQATheoremsRetrieval"])
        results = mteb.evaluate(model, tasks)
        ```
    """

    def __init__(
        self,
        model_name: str | ReasonEmbedEncoder = "minilm-l6",
        revision: str | None = None,
        *,
        device: str | None = None,
        instructions: Mapping[str, str] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Load (or wrap) the encoder.

        Args:
            model_name: A registry alias, Hub id, folder or ``.gguf`` file (loaded with
                :meth:`~reasonembed_rag.ReasonEmbedEncoder.from_pretrained`), or an encoder already loaded.
            revision: Recorded in mteb's results (the model is loaded as named; pin a revision in the folder).
            device: Torch device for loading.
            instructions: Task name -> query instruction, taking precedence over ours.
            batch_size: Texts per forward pass (default: the encoder's).
            kwargs: Passed to ``from_pretrained`` (``dtype``, ``max_length``, ``query_format``, ...).
        """
        if isinstance(model_name, str):
            from reasonembed_rag.encoder import ReasonEmbedEncoder

            self.model = ReasonEmbedEncoder.from_pretrained(model_name, device=device, **kwargs)
        else:
            if kwargs or device is not None:
                raise ValueError("device and loading options apply to a model name, not to an encoder already loaded.")
            self.model = model_name
        self.instructions = dict(instructions or {})
        self.batch_size = batch_size
        name = self.model.name if "/" in self.model.name else f"reasonembed-rag/{self.model.name}"
        self.mteb_model_meta = ModelMeta.create_empty(
            overwrites={
                "name": name,
                "revision": revision or "local",
                "max_tokens": self.model.max_length,
                "similarity_fn_name": ScoringFunction.COSINE,
                "use_instructions": True,
                "framework": ["PyTorch"],
            }
        )

    def instruction_for(self, task_metadata: TaskMetadata, hf_subset: str = "default") -> str | None:
        """The query instruction for a task: :attr:`instructions`, ours (:func:`task_instruction`), else mteb's."""
        own = task_instruction(task_metadata.name, hf_subset, self.instructions)
        if own is not None:
            return own
        mteb_prompt = self.get_instruction(task_metadata, PromptType.query)
        return mteb_prompt or None

    def encode(
        self,
        inputs: DataLoader[Any],
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed every batch of ``inputs``: queries with the task's instruction, documents and everything else
        (symmetric tasks, where mteb passes no prompt type) as plain text."""
        texts = [text for batch in inputs for text in batch["text"]]
        if prompt_type == PromptType.query:
            return self.model.encode_queries(
                texts, instruction=self.instruction_for(task_metadata, hf_subset), batch_size=self.batch_size
            )
        return self.model.encode(texts, batch_size=self.batch_size)
