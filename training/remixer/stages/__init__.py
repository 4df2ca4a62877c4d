"""The ReMixer stages, one module each; :class:`training.remixer.pipeline.ReMixer` runs them chunk by chunk.

* :mod:`.clean` - stage 0, domain cleaning (optional).
* :mod:`.generate` - stage 1, conditioned query generation.
* :mod:`.mine` - stage 2, candidate mining with the source document excluded.
* :mod:`.annotate` - stage 3, relevance annotation (LLM replies or logits).
* :mod:`.label` - stage 4, labels and training rows, with :mod:`.reasoning` for the reasoning queries.
* :mod:`.context` - what they share: the run, one task's files and bars, :class:`.context.SyntheticQuery`.
"""

from __future__ import annotations
