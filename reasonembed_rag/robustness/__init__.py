"""Robustness suite: query perturbations and corpus poisoning for any retriever (``reasonembed-rag robustness``).

* :mod:`.perturb` - misspelling, word-order shuffle, synonym swap, word and stopword removal at a word-change rate;
* :mod:`.wordnet` - the synonym source: Princeton WordNet 3.0 database files shipped in a pip package;
* :mod:`.paraphrase` - LLM paraphrases through any OpenAI-compatible endpoint;
* :mod:`.poison` - query-copy and HotFlip passages, their targets, a scratch collection copy, ASR@k;
* :mod:`.runner` - :func:`run_robustness` (the JSON payload), :func:`markdown_section`, :func:`plot`.

The sub-command is :mod:`reasonembed_rag.cli.robustness`.

Nothing here changes a user's collection: poisoned passages only ever go into a scratch copy.
"""

from __future__ import annotations

from .perturb import FAMILIES, Perturbed, Perturber, check_families, check_rate
from .poison import ATTACKS, HotFlip, HotFlipSettings, assign_targets, attack_success_rate, query_copy_passages
from .runner import QUICK, RobustnessSettings, markdown_section, plot, run_robustness

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
