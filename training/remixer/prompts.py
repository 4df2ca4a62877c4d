"""ReMixer prompts: loaded from data (``prompts.json`` beside this file, optionally overlaid by a user's file) and
rendered into chat messages.

The data holds the stage templates (domain cleaning, query generation, reasoning, annotation with analysis, direct
annotation), the sampling tables for the target query length and difficulty, the phrases that make a query depend
on its source, and per-task fields (domain, query and document types, generation instruction, relevance definition,
optional few-shot examples). This module renders; it neither calls an LLM nor parses replies.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonembed_rag.llm import Message

PROMPTS_FILE = Path(__file__).with_name("prompts.json")
STAGES = ("clean", "generate", "reasoning", "annotate_reasoned", "annotate_direct")
ANNOTATION_STYLES = ("reasoned", "direct")
_TASK_FIELDS = (
    "domain",
    "query_type",
    "document_type",
    "generation_instruction",
    "reasoning_instruction",
    "relevance",
)
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class PromptError(ValueError):
    """The prompt data is malformed; the message names the file, the entry and what to fix."""


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders from ``values``; braces around any other text are left alone.

    Example:
        >>> render("Solve {query} for {x}", {"query": "x^2 = 4"})
        'Solve x^2 = 4 for {x}'
    """
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), template)


def _text(value: Any, where: str) -> str:
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    if isinstance(value, str):
        return value
    raise PromptError(f"{where}: expected a string or a list of lines, got {type(value).__name__}.")


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overlay`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _weights(table: Any, where: str) -> dict[str, float]:
    if not isinstance(table, Mapping) or not table:
        raise PromptError(f"{where}: expected a non-empty object of choice -> weight.")
    weights = {}
    for choice, weight in table.items():
        if not isinstance(weight, int | float) or weight <= 0:
            raise PromptError(f"{where}: weight of {choice!r} must be a positive number, got {weight!r}.")
        weights[str(choice)] = float(weight)
    return weights


@dataclass(frozen=True)
class TaskPrompts:
    """Everything ReMixer says to the LLM for one task."""

    task: str
    """The task the prompts were asked for."""
    entry: str
    """The ``tasks`` entry that supplied them (``default`` when the task has none of its own)."""
    fields: dict[str, str]
    templates: dict[str, dict[str, str]]
    lengths: dict[str, float]
    difficulties: dict[str, float]
    forbidden_phrases: tuple[str, ...]
    examples: dict[str, list[dict[str, Any]]]

    def value(self, name: str) -> str:
        return self.fields[name]

    def _values(self, **extra: str) -> dict[str, str]:
        values = dict(self.fields)
        for name in ("query_type", "document_type"):
            values[f"{name}_title"] = values[name][:1].upper() + values[name][1:]
        values.update(extra)
        # Fields may mention other fields (e.g. an instruction naming {query_type}).
        return {name: render(text, values) if name in _TASK_FIELDS else text for name, text in values.items()}

    def _messages(self, stage: str, turns: list[tuple[dict[str, str], str | None]]) -> list[Message]:
        template = self.templates[stage]
        messages: list[Message] = []
        system = render(template.get("system", ""), self._values()).strip()
        if system:
            messages.append({"role": "system", "content": system})
        for values, answer in turns:
            messages.append({"role": "user", "content": render(template["user"], self._values(**values))})
            if answer is not None:
                messages.append({"role": "assistant", "content": answer})
        return messages

    def clean_messages(self, document: str) -> list[Message]:
        """Stage 0: does ``document`` belong to the task's domain (Yes/No)?"""
        return self._messages("clean", [({"document": document}, None)])

    def generation_messages(self, document: str, *, length: str, difficulty: str) -> list[Message]:
        """Stage 1: a new query for which ``document``'s ideas help an expert, at a target length and difficulty."""
        shots = [
            (
                {
                    "document": shot["document"],
                    "length": shot.get("length", length),
                    "difficulty": shot.get("difficulty", difficulty),
                },
                shot["query"],
            )
            for shot in self.examples.get("generate", [])
        ]
        return self._messages(
            "generate", [*shots, ({"document": document, "length": length, "difficulty": difficulty}, None)]
        )

    def reasoning_messages(self, query: str) -> list[Message]:
        """Reasoning stage: what knowledge is needed to answer ``query`` (not the answer itself)."""
        return self._messages("reasoning", [({"query": query}, None)])

    def annotation_messages(
        self, query: str, document: str, *, style: str, rng: random.Random | None = None, examples: bool = True
    ) -> list[Message]:
        """Stage 3: judge the relevance of ``document`` to ``query`` on 1-5, the score inside ``<score>`` tags.

        ``reasoned`` asks for a short analysis first (for capable models); ``direct`` asks for the score alone and
        shows the task's few-shot examples (for small local models).

        Args:
            query: The synthetic query.
            document: The candidate document.
            style: ``reasoned`` or ``direct``.
            rng: Shuffles the few-shot examples. Small models tend to repeat the score of the LAST example shown;
                a per-pair order spreads that bias evenly instead of pushing every pair to one score.
            examples: Show the few-shot examples (they teach the reply format; the logit path, which opens the reply
                with ``<score>`` itself, leaves them out).
        """
        if style not in ANNOTATION_STYLES:
            raise ValueError(f"Unknown annotation style {style!r}; choose one of {', '.join(ANNOTATION_STYLES)}.")
        stage = f"annotate_{style}"
        shots = [
            ({"query": shot["query"], "document": shot["document"]}, f"<score>{int(shot['score'])}</score>")
            for shot in (self.examples.get(stage, []) if examples else [])
        ]
        if rng is not None:
            rng.shuffle(shots)
        return self._messages(stage, [*shots, ({"query": query, "document": document}, None)])

    def generation_prefix_text(self) -> list[str]:
        """Fixed sentences of the generation prompt and the few-shot answers: a reply that repeats one is an echo."""
        template = render(self.templates["generate"]["user"], self._values(document="", length="", difficulty=""))
        sentences = [line.strip() for line in template.splitlines() if len(line.strip()) >= 30]
        return sentences + [str(shot["query"]).strip() for shot in self.examples.get("generate", [])]

    def sample_conditions(self, rng: random.Random) -> tuple[str, str]:
        """(target length, difficulty) drawn with the configured weights."""
        length = rng.choices(list(self.lengths), weights=list(self.lengths.values()))[0]
        difficulty = rng.choices(list(self.difficulties), weights=list(self.difficulties.values()))[0]
        return length, difficulty


class PromptBook:
    """All prompt data: the packaged ``prompts.json``, optionally overlaid by a user's JSON file of the same shape.

    Example:
        >>> book = PromptBook()
        >>> book.for_task("champ_concepts_train").entry
        'champ_concepts'
    """

    def __init__(self, overlay: str | Path | Mapping[str, Any] | None = None) -> None:
        """Load the packaged prompts, then deep-merge ``overlay`` (a JSON file path or an already parsed mapping)."""
        self.source = str(PROMPTS_FILE)
        data = self._read(PROMPTS_FILE)
        if overlay is not None:
            if isinstance(overlay, Mapping):
                data = _merge(data, overlay)
                self.source += " + overlay"
            else:
                data = _merge(data, self._read(Path(overlay)))
                self.source += f" + {overlay}"
        self.data = data
        self._check()

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        if not path.exists():
            raise PromptError(f"Prompt file {path} does not exist.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise PromptError(f"Prompt file {path} is not valid JSON: {error}.") from error
        if not isinstance(data, dict):
            raise PromptError(f"Prompt file {path}: expected a JSON object at the top.")
        return data

    def _check(self) -> None:
        templates = self.data.get("templates", {})
        for stage in STAGES:
            if stage not in templates or "user" not in templates[stage]:
                raise PromptError(f"{self.source}: templates.{stage}.user is missing.")
        default = self.data.get("tasks", {}).get("default")
        if not isinstance(default, dict):
            raise PromptError(f"{self.source}: tasks.default is missing.")
        for name in _TASK_FIELDS:
            if not isinstance(default.get(name), str):
                raise PromptError(f"{self.source}: tasks.default.{name} must be a string.")
        for task in self.data["tasks"]:
            self.for_task(task)

    def entry_for(self, task: str) -> str:
        """The ``tasks`` entry used for ``task``: exact name, then without ``_train``, then ``default``."""
        tasks = self.data["tasks"]
        name = task.strip().lower().replace("-", "_")
        for candidate in (task, name, name.removesuffix("_train")):
            if candidate in tasks:
                return candidate
        return "default"

    @property
    def tasks(self) -> list[str]:
        return [name for name in self.data["tasks"] if name != "default"]

    def for_task(self, task: str) -> TaskPrompts:
        """The prompts for ``task`` (its own entry over the default one)."""
        entry = self.entry_for(task)
        where = f"{self.source}: tasks.{entry}"
        merged = _merge(self.data["tasks"]["default"], self.data["tasks"][entry])
        fields = {name: _text(merged[name], f"{where}.{name}") for name in _TASK_FIELDS}
        templates = {
            stage: {
                part: _text(value, f"{self.source}: templates.{stage}.{part}")
                for part, value in self.data["templates"][stage].items()
            }
            for stage in STAGES
        }
        examples = merged.get("examples", {}) or {}
        for stage, shots in examples.items():
            needed = {
                "generate": ("document", "query"),
                "annotate_direct": ("query", "document", "score"),
                "annotate_reasoned": ("query", "document", "score"),
            }.get(stage)
            if needed is None or not isinstance(shots, list):
                raise PromptError(
                    f"{where}.examples.{stage}: unknown stage or not a list (stages: generate, "
                    "annotate_direct, annotate_reasoned)."
                )
            for number, shot in enumerate(shots):
                missing = [key for key in needed if key not in shot]
                if missing:
                    raise PromptError(f"{where}.examples.{stage}[{number}] lacks {', '.join(missing)}.")
        phrases = tuple(str(p).lower() for p in self.data.get("forbidden_phrases", []))
        return TaskPrompts(
            task=task,
            entry=entry,
            fields=fields,
            templates=templates,
            lengths=_weights(merged.get("lengths", self.data.get("lengths")), f"{where}.lengths"),
            difficulties=_weights(merged.get("difficulties", self.data.get("difficulties")), f"{where}.difficulties"),
            forbidden_phrases=phrases,
            examples=examples,
        )
