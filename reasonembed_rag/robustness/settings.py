"""What a robustness run measures: :class:`RobustnessSettings`, and :data:`QUICK`, the demo's bounded budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .perturb import DEFAULT_RATE, FAMILIES, check_families, check_rate
from .poison import (
    ATTACKS,
    DEFAULT_SIZES,
    HotFlipSettings,
    check_attacks,
    check_sizes,
)

DEFAULT_SEEDS = 5
QUICK: dict[str, Any] = {
    "seeds": 2,
    "max_queries": 60,
    "poison_sizes": (10,),
    "hotflip": HotFlipSettings(steps=5, candidates=8, tokens=32),
}
"""A bounded budget for the demo: 2 seeds, 60 queries per task, N = 10 passages, 5 HotFlip steps per passage."""


@dataclass
class RobustnessSettings:
    """What to run; validated on creation (bad values raise ValueError naming the value and the fix)."""

    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    rate: float = DEFAULT_RATE
    seeds: int = DEFAULT_SEEDS
    poison_sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SIZES))
    attacks: list[str] = field(default_factory=lambda: list(ATTACKS))
    hotflip: HotFlipSettings = field(default_factory=HotFlipSettings)
    max_words: int = 200
    """Word budget of a query-copy passage."""
    max_queries: int | None = None
    """Evaluate a seeded sample of at most this many queries per task (None: all)."""

    def __post_init__(self) -> None:
        self.families = check_families(self.families)
        self.rate = check_rate(self.rate)
        self.attacks = check_attacks(self.attacks)
        self.poison_sizes = check_sizes(self.poison_sizes) if self.poison_sizes else []
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be a positive integer (the number of seeds, e.g. 5), got {self.seeds!r}.")
        if self.max_queries is not None and self.max_queries < 1:
            raise ValueError(f"max_queries must be a positive integer or None, got {self.max_queries!r}.")
        if self.max_words < 1:
            raise ValueError(f"max_words must be a positive integer, got {self.max_words!r}.")
