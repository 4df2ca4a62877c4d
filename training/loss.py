"""Contrastive losses: InfoNCE and Redapter (RI-InfoNCE), exactly as ReasonEmbed computes them.

Both score a query against every passage of the batch: its own group (positive first, then hard negatives), the
other queries' groups (in-batch negatives), and, when ``torch.distributed`` is initialised, the passages of every
other rank. Similarity is cosine divided by the temperature (0.02), and ``L_i`` is the cross-entropy of query ``i``
against its positive (reduction none).

Redapter, per step (docs/method.md, section 4):

1. ``L_i`` for the queries; ``L_i^r`` the same loss for the reasoning-expanded queries against the detached
   passages, without gradient.
2. Reasoning intensity ``RI_i = L_i / (L_i^r + 1e-6)``, detached.
3. ``w_i = clamp(RI_i, 0, 5)``, L1-normalised over the (global) batch.
4. ``loss = sum_i w_i * L_i``; during the first ``warmup_steps`` optimiser steps, the plain mean (InfoNCE).

A query whose plain form is much harder than its reasoning-expanded form needs reasoning and is up-weighted.

Under ``torch.distributed`` every rank computes the loss of the GLOBAL batch, with gradient flowing only into its
own rows; summing the ranks' gradients (all-reduce SUM) gives the gradient of the global loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_TEMPERATURE = 0.02
DEFAULT_WARMUP_STEPS = 100
RI_EPSILON = 1e-6
RI_CLAMP = (0.0, 5.0)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def gather_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows in rank order; this rank's rows keep their autograd graph.

    Without an initialised process group (or with one rank) the tensor is returned as is. All ranks must pass
    tensors of the same shape.
    """
    if not _distributed() or torch.distributed.get_world_size() == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, tensor.detach().contiguous())
    gathered[torch.distributed.get_rank()] = tensor
    return torch.cat(gathered, dim=0)


def per_sample_info_nce(
    queries: torch.Tensor,
    passages: torch.Tensor,
    *,
    group_size: int,
    temperature: float = DEFAULT_TEMPERATURE,
    false_negatives: Sequence[tuple[int, int]] = (),
) -> torch.Tensor:
    """InfoNCE per query with in-batch negatives: ``CE(cos(q_i, p_j) / tau, target = i * group_size)``.

    Args:
        queries: ``(n, d)`` query vectors.
        passages: ``(n * group_size, d)`` passage vectors, per query its positive first, then its negatives.
        group_size: Passages per query.
        temperature: ``tau``.
        false_negatives: ``(i, j)`` pairs left out of query ``i``'s softmax (passage ``j`` is another of its
            positives, so not a negative). A query's own target can't be left out.

    Returns:
        ``(n,)`` float32 losses (reduction none).
    """
    if queries.ndim != 2 or passages.ndim != 2 or queries.shape[1] != passages.shape[1]:
        raise ValueError(
            f"Expected (n, d) queries and (m, d) passages, got {tuple(queries.shape)} and {tuple(passages.shape)}."
        )
    if passages.shape[0] != queries.shape[0] * group_size:
        raise ValueError(
            f"{queries.shape[0]} queries with groups of {group_size} need {queries.shape[0] * group_size} passages, "
            f"got {passages.shape[0]}."
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    q = F.normalize(queries.float(), p=2, dim=-1)
    p = F.normalize(passages.float(), p=2, dim=-1)
    scores = q @ p.T / temperature
    targets = torch.arange(q.shape[0], device=q.device) * group_size
    if false_negatives:
        rows, columns = zip(*false_negatives, strict=True)
        if any(column == row * group_size for row, column in false_negatives):
            raise ValueError("false_negatives must not contain a query's own target passage.")
        mask = torch.zeros_like(scores, dtype=torch.bool)
        mask[list(rows), list(columns)] = True
        scores = scores.masked_fill(mask, float("-inf"))
    return F.cross_entropy(scores, targets, reduction="none")


def reasoning_intensity_weights(
    losses: torch.Tensor,
    reasoning_losses: torch.Tensor,
    *,
    clamp_min: float = RI_CLAMP[0],
    clamp_max: float = RI_CLAMP[1],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Redapter's weights from per-sample losses (no gradient).

    ``RI_i = L_i / (L_i^r + 1e-6)``; ``w_i = clamp(RI_i, clamp_min, clamp_max) / sum_j clamp(RI_j, ...)``.

    Returns:
        ``(RI, w)``. When every clamped value is 0 (only possible when every ``L_i`` is 0, where the loss is 0
        whatever the weights) the weights are uniform instead of 0/0.
    """
    with torch.no_grad():
        intensity = losses.detach() / (reasoning_losses.detach() + RI_EPSILON)
        clamped = intensity.clamp(clamp_min, clamp_max)
        total = clamped.sum()
        weights = clamped / total if total > 0 else torch.full_like(clamped, 1.0 / clamped.numel())
    return intensity, weights


@dataclass
class LossOutput:
    """The loss to back-propagate and what to log about it."""

    loss: torch.Tensor
    """Scalar with gradient."""
    per_sample: torch.Tensor
    """``L_i`` of every query of the (global) batch, detached."""
    weights: torch.Tensor | None = None
    """Redapter's normalised weights ``w_i`` (None for InfoNCE and during warm-up)."""
    reasoning_intensity: torch.Tensor | None = None
    """``RI_i`` (None for InfoNCE and during warm-up)."""

    def stats(self) -> dict[str, float]:
        """``plain_loss`` (the mean ``L_i``) and, when Redapter weighted the step, min/max/mean/median of RI.

        The median is ``torch.median``'s: the lower of the two middle values for an even count.
        """
        stats = {"plain_loss": float(self.per_sample.mean())}
        if self.reasoning_intensity is not None:
            ri = self.reasoning_intensity.float().cpu()
            stats.update(
                ri_min=float(ri.min()), ri_max=float(ri.max()), ri_mean=float(ri.mean()), ri_median=float(ri.median())
            )
        return stats


class InfoNCELoss:
    """Plain InfoNCE (the "basic" ReasonEmbed models): the mean of ``L_i``.

    Example:
        >>> loss_fn = InfoNCELoss(temperature=0.02)
        >>> out = loss_fn(torch.randn(2, 8), torch.randn(4, 8), group_size=2)
        >>> out.loss.shape
        torch.Size([])
    """

    name = "infonce"

    def __init__(self, temperature: float = DEFAULT_TEMPERATURE) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.temperature = temperature

    def needs_reasoning_queries(self, step: int) -> bool:
        """Whether the step needs reasoning-query vectors (never, for InfoNCE)."""
        return False

    def __call__(
        self,
        queries: torch.Tensor,
        passages: torch.Tensor,
        *,
        group_size: int,
        reasoning_queries: torch.Tensor | None = None,
        step: int = 0,
        false_negatives: Sequence[tuple[int, int]] = (),
    ) -> LossOutput:
        """Loss of this rank's batch (gathered with the other ranks' when distributed)."""
        per_sample = per_sample_info_nce(
            gather_across_ranks(queries),
            gather_across_ranks(passages),
            group_size=group_size,
            temperature=self.temperature,
            false_negatives=false_negatives,
        )
        return LossOutput(loss=per_sample.mean(), per_sample=per_sample.detach())


class RedapterLoss(InfoNCELoss):
    """Redapter: InfoNCE with each query weighted by its clamped, L1-normalised reasoning intensity.

    Args:
        temperature: ``tau`` of the cosine scores.
        warmup_steps: Optimiser steps (counted from 0) that use the plain mean before weighting starts.
        clamp_min: Lower clamp of ``RI`` before normalisation.
        clamp_max: Upper clamp of ``RI`` before normalisation.

    Example:
        >>> loss_fn = RedapterLoss(warmup_steps=0)
        >>> q, p, r = torch.randn(2, 8), torch.randn(4, 8), torch.randn(2, 8)
        >>> sorted(loss_fn(q, p, group_size=2, reasoning_queries=r, step=0).stats())
        ['plain_loss', 'ri_max', 'ri_mean', 'ri_median', 'ri_min']
    """

    name = "redapter"

    def __init__(
        self,
        temperature: float = DEFAULT_TEMPERATURE,
        warmup_steps: int = DEFAULT_WARMUP_STEPS,
        clamp_min: float = RI_CLAMP[0],
        clamp_max: float = RI_CLAMP[1],
    ) -> None:
        super().__init__(temperature)
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be 0 or more, got {warmup_steps}.")
        if not 0 <= clamp_min < clamp_max:
            raise ValueError(f"Need 0 <= clamp_min < clamp_max, got {clamp_min} and {clamp_max}.")
        self.warmup_steps = warmup_steps
        self.clamp_min = clamp_min
        self.clamp_max = clamp_max

    def needs_reasoning_queries(self, step: int) -> bool:
        """Reasoning-query vectors are needed once the warm-up is over."""
        return step >= self.warmup_steps

    def __call__(
        self,
        queries: torch.Tensor,
        passages: torch.Tensor,
        *,
        group_size: int,
        reasoning_queries: torch.Tensor | None = None,
        step: int = 0,
        false_negatives: Sequence[tuple[int, int]] = (),
    ) -> LossOutput:
        """Redapter loss at optimiser step ``step`` (plain mean while ``step < warmup_steps``).

        Raises:
            ValueError: past the warm-up without ``reasoning_queries``.
        """
        all_passages = gather_across_ranks(passages)
        per_sample = per_sample_info_nce(
            gather_across_ranks(queries),
            all_passages,
            group_size=group_size,
            temperature=self.temperature,
            false_negatives=false_negatives,
        )
        if not self.needs_reasoning_queries(step):
            return LossOutput(loss=per_sample.mean(), per_sample=per_sample.detach())
        if reasoning_queries is None:
            raise ValueError(f"Redapter needs reasoning-query vectors from step {self.warmup_steps} on (step {step}).")
        with torch.no_grad():
            reasoning_loss = per_sample_info_nce(
                gather_across_ranks(reasoning_queries.detach()),
                all_passages.detach(),
                group_size=group_size,
                temperature=self.temperature,
                false_negatives=false_negatives,
            )
            intensity, weights = reasoning_intensity_weights(
                per_sample, reasoning_loss, clamp_min=self.clamp_min, clamp_max=self.clamp_max
            )
        return LossOutput(
            loss=(weights * per_sample).sum(),
            per_sample=per_sample.detach(),
            weights=weights,
            reasoning_intensity=intensity,
        )


LOSSES: dict[str, type[InfoNCELoss]] = {"infonce": InfoNCELoss, "redapter": RedapterLoss}
"""Loss name (as ``--loss`` takes it) -> class."""
