"""How a ReMixer run behaves: :class:`SynthesisSettings` (the ``reasonembed-train synthesize`` options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .mining import DEFAULT_MINER
from .prompts import ANNOTATION_STYLES

LOGIT_CALIBRATIONS = ("none", "query")


@dataclass
class SynthesisSettings:
    """How ReMixer runs (the LLM's own sampling settings live in :class:`reasonembed_rag.llm.LLMConfig`)."""

    output: Path
    """Folder for ``train/``, ``work/`` and ``summary.json``."""
    seed: int = 42
    """Seeds the sampled target length and difficulty of each query (per item, so a resume draws the same)."""
    queries_per_seed: int = 1
    clean_domain: bool = False
    """Run stage 0 (domain cleaning)."""
    miner: str = DEFAULT_MINER
    """``bm25`` or an encoder alias / model folder."""
    mine_depth: int = 1000
    """Documents retrieved per query before the source is dropped."""
    keep_candidates: int = 100
    """Candidates kept per query after the source is dropped (all of them are annotated)."""
    annotation_style: str = "reasoned"
    """``reasoned`` (analysis, then the score; for capable LLMs) or ``direct`` (score only, few-shot; small models)."""
    positive_threshold: int = 3
    """Scores at or above are positives; 1 up to this minus one are hard negatives."""
    chunk_size: int = 16
    """Seeds taken through all stages together before the next ones start (rows appear early; resume is exact)."""
    max_tokens: dict[str, int] = field(
        default_factory=lambda: {
            "clean": 8,
            "generate": 1024,
            "reasoning": 1024,
            "annotate_reasoned": 1024,
            "annotate_direct": 16,
        }
    )
    logit_calibration: str = "none"
    """For scores read from logits: ``none`` (the most likely digit) or ``query`` (calibrated against the query's
    other candidates; see :func:`training.remixer.stages.annotate.label_scores`)."""
    annotation_temperature: float | None = 0.0
    """Sampling temperature of annotation replies (0: greedy, reproducible; None: the LLM config's)."""
    document_characters: int = 6000
    """Documents longer than this are cut in annotation prompts (seeds are already bounded by ``max_chars``)."""
    round_trip_k: int = 0
    """Round-trip consistency filter (:mod:`training.remixer.stages.roundtrip`; 0: off): keep a query only when
    ``round_trip_retriever`` ranks its seed (or one of the seed's targets) in its top ``round_trip_k`` of the corpus
    and the annotator scores that document at least ``positive_threshold``."""
    round_trip_retriever: str = "bm25"
    """The independent retriever of the round-trip filter: ``bm25`` or an encoder alias / model folder (never the
    model being trained)."""
    max_consecutive_failures: int = 10
    show_progress: bool = True

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        if self.annotation_style not in ANNOTATION_STYLES:
            raise ValueError(
                f"annotation_style must be one of {', '.join(ANNOTATION_STYLES)}, got {self.annotation_style!r}."
            )
        if self.round_trip_k < 0:
            raise ValueError(f"round_trip_k must be 0 (off) or a positive rank, got {self.round_trip_k}.")
        if self.logit_calibration not in LOGIT_CALIBRATIONS:
            raise ValueError(
                f"logit_calibration must be one of {', '.join(LOGIT_CALIBRATIONS)}, got {self.logit_calibration!r}."
            )
        if not 2 <= self.positive_threshold <= 5:
            raise ValueError(f"positive_threshold must be 2-5, got {self.positive_threshold}.")
        for name in ("queries_per_seed", "mine_depth", "keep_candidates", "chunk_size", "max_consecutive_failures"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.keep_candidates > self.mine_depth:
            raise ValueError(f"keep_candidates ({self.keep_candidates}) cannot exceed mine_depth ({self.mine_depth}).")
