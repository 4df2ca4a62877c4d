"""Robustness suite: query perturbations and corpus poisoning for any retriever (``reasonembed-rag robustness``).

* :mod:`.perturb` - misspelling, word-order shuffle, synonym swap, word and stopword removal at a word-change rate;
* :mod:`.wordnet` - the synonym source: Princeton WordNet 3.0 database files shipped in a pip package;
* :mod:`.paraphrase` - LLM paraphrases through any OpenAI-compatible endpoint;
* :mod:`.poison` - query-copy and HotFlip passages, their targets, a scratch collection copy, ASR@k;
* :mod:`.settings` - :class:`RobustnessSettings` (what to run) and :data:`QUICK` (the demo's budget);
* :mod:`.variants` - each task's clean queries and their perturbed variants, shared by every model;
* :mod:`.evaluation` - scoring the variants and the poisoned corpora through the ``bright`` paths;
* :mod:`.runner` - :func:`run_robustness`: the whole study, as a JSON payload;
* :mod:`.report` - :func:`markdown_section` and :func:`plot` of a payload.

The sub-command is :mod:`reasonembed_rag.cli.robustness`.

Nothing here changes a user's collection: poisoned passages only ever go into a scratch copy.
"""

from __future__ import annotations

from .perturb import FAMILIES, Perturbed, Perturber, check_families, check_rate
from .poison import ATTACKS, HotFlip, HotFlipSettings, assign_targets, attack_success_rate, query_copy_passages
from .report import markdown_section, plot
from .runner import run_robustness
from .settings import QUICK, RobustnessSettings

__all__ = [
    "ATTACKS",
    "FAMILIES",
    "QUICK",
    "HotFlip",
    "HotFlipSettings",
    "Perturbed",
    "Perturber",
    "RobustnessSettings",
    "assign_targets",
    "attack_success_rate",
    "check_families",
    "check_rate",
    "markdown_section",
    "plot",
    "query_copy_passages",
    "run_robustness",
]
