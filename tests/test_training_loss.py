"""InfoNCE and Redapter against hand computations on fixed tensors; no gradient through the reasoning branch;
the distributed (gathered) loss equals the single-process loss on the whole batch."""

from __future__ import annotations

import math
import socket

import pytest
import torch

from reasonembed_rag.training.loss import (
    InfoNCELoss,
    RedapterLoss,
    gather_across_ranks,
    per_sample_info_nce,
    reasoning_intensity_weights,
)

# Two queries, groups of 2 (positive first): passages = [p0+, p0-, p1+, p1-].
Q = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
P = [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [3.0, 0.0, 1.0]]
# Reasoning queries: the first is (a multiple of) its positive, so its reasoning loss is small and RI is clamped at 5.
R = [[2.0, 2.0, 0.0], [1.0, 1.0, 1.0]]


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _hand_losses(queries: list[list[float]], passages: list[list[float]], group: int, tau: float) -> list[float]:
    """-log softmax(cos/tau)[positive] over ALL passages of the batch (own group + in-batch), one value per query."""
    losses = []
    for i, q in enumerate(queries):
        scores = [_cos(q, p) / tau for p in passages]
        top = max(scores)
        log_sum = top + math.log(sum(math.exp(s - top) for s in scores))
        losses.append(log_sum - scores[i * group])
    return losses


def _t(rows: list[list[float]], grad: bool = False) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32, requires_grad=grad)


@pytest.mark.parametrize("tau", [0.5, 0.02])
def test_infonce_equals_hand_computation(tau):
    expected = _hand_losses(Q, P, 2, tau)
    per_sample = per_sample_info_nce(_t(Q), _t(P), group_size=2, temperature=tau)
    torch.testing.assert_close(per_sample, torch.tensor(expected), rtol=1e-5, atol=1e-5)
    out = InfoNCELoss(temperature=tau)(_t(Q), _t(P), group_size=2)
    assert out.loss.item() == pytest.approx(sum(expected) / 2, rel=1e-5)
    assert out.weights is None and out.reasoning_intensity is None
    assert out.stats() == {"plain_loss": pytest.approx(sum(expected) / 2, rel=1e-5)}


def test_infonce_uses_in_batch_passages():
    """Changing ANOTHER query's negative changes this query's loss: every passage of the batch is a negative."""
    moved = [row[:] for row in P]
    moved[3] = [1.0, 0.0, 0.0]  # query 1's negative, made identical to query 0
    before = per_sample_info_nce(_t(Q), _t(P), group_size=2, temperature=0.5)
    after = per_sample_info_nce(_t(Q), _t(moved), group_size=2, temperature=0.5)
    assert after[0] > before[0] + 0.01


def test_redapter_equals_hand_computation_with_clamp_and_l1_normalisation():
    tau = 0.1
    losses = _hand_losses(Q, P, 2, tau)
    reasoning = _hand_losses(R, P, 2, tau)
    intensity = [loss / (r + 1e-6) for loss, r in zip(losses, reasoning, strict=True)]
    assert intensity[0] > 5 > intensity[1] > 0, "the fixture must exercise the upper clamp and a plain value"
    clamped = [min(max(value, 0.0), 5.0) for value in intensity]
    weights = [value / sum(clamped) for value in clamped]
    expected = sum(w * loss for w, loss in zip(weights, losses, strict=True))

    out = RedapterLoss(temperature=tau, warmup_steps=0)(_t(Q), _t(P), group_size=2, reasoning_queries=_t(R), step=0)
    assert out.loss.item() == pytest.approx(expected, rel=1e-4)
    torch.testing.assert_close(out.weights, torch.tensor(weights), rtol=1e-4, atol=1e-6)
    assert float(out.weights.sum()) == pytest.approx(1.0)
    stats = out.stats()
    assert stats["plain_loss"] == pytest.approx(sum(losses) / 2, rel=1e-5)
    assert stats["ri_min"] == pytest.approx(min(intensity), rel=1e-3)
    assert stats["ri_max"] == pytest.approx(max(intensity), rel=1e-3)
    assert stats["ri_mean"] == pytest.approx(sum(intensity) / 2, rel=1e-3)
    assert stats["ri_median"] == pytest.approx(min(intensity), rel=1e-3)  # torch.median: lower middle value


def test_weights_clamp_at_zero_and_five_then_normalise():
    losses = torch.tensor([-1.0, 1.0, 30.0, 2.0])  # a negative ratio can only come from outside; it clamps to 0
    reasoning = torch.tensor([1.0, 1.0, 1.0, 1.0])
    intensity, weights = reasoning_intensity_weights(losses, reasoning)
    torch.testing.assert_close(intensity, losses / (1.0 + 1e-6))
    clamped = torch.tensor([0.0, 1.0, 5.0, 2.0])
    torch.testing.assert_close(weights, clamped / 8.0)


def test_all_zero_losses_give_uniform_weights_not_nan():
    intensity, weights = reasoning_intensity_weights(torch.zeros(4), torch.ones(4))
    torch.testing.assert_close(weights, torch.full((4,), 0.25))
    assert not torch.isnan(intensity).any()


def test_warmup_is_the_plain_mean_and_needs_no_reasoning_queries():
    loss_fn = RedapterLoss(temperature=0.5, warmup_steps=3)
    expected = sum(_hand_losses(Q, P, 2, 0.5)) / 2
    for step in range(3):
        assert not loss_fn.needs_reasoning_queries(step)
        out = loss_fn(_t(Q), _t(P), group_size=2, step=step)
        assert out.loss.item() == pytest.approx(expected, rel=1e-5)
        assert out.weights is None and "ri_mean" not in out.stats()
    assert loss_fn.needs_reasoning_queries(3)
    weighted = loss_fn(_t(Q), _t(P), group_size=2, reasoning_queries=_t(R), step=3)
    assert weighted.weights is not None and weighted.loss.item() != pytest.approx(expected, rel=1e-3)
    with pytest.raises(ValueError, match="reasoning-query vectors"):
        loss_fn(_t(Q), _t(P), group_size=2, step=3)


def test_no_gradient_flows_through_the_reasoning_branch():
    torch.manual_seed(0)
    q, p, r = torch.randn(3, 8), torch.randn(9, 8), torch.randn(3, 8)
    q1, p1, r1 = q.clone().requires_grad_(), p.clone().requires_grad_(), r.clone().requires_grad_()
    out = RedapterLoss(warmup_steps=0)(q1, p1, group_size=3, reasoning_queries=r1, step=0)
    out.loss.backward()
    assert r1.grad is None
    assert not out.weights.requires_grad and not out.reasoning_intensity.requires_grad

    # The same gradient as the weighted loss with the weights as constants: the reasoning branch only sets weights.
    q2, p2 = q.clone().requires_grad_(), p.clone().requires_grad_()
    (out.weights * per_sample_info_nce(q2, p2, group_size=3)).sum().backward()
    torch.testing.assert_close(q1.grad, q2.grad)
    torch.testing.assert_close(p1.grad, p2.grad)


def test_shape_and_setting_errors():
    with pytest.raises(ValueError, match="need 6 passages"):
        per_sample_info_nce(torch.randn(2, 4), torch.randn(5, 4), group_size=3)
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=0)
    with pytest.raises(ValueError, match="clamp"):
        RedapterLoss(clamp_min=5, clamp_max=1)


def test_gather_is_identity_without_distributed():
    tensor = torch.randn(2, 3)
    assert gather_across_ranks(tensor) is tensor


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _distributed_worker(rank: int, port: int, data: dict[str, torch.Tensor], results: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        rows, group = data["q"].shape[0] // 2, 3
        q = data["q"][rank * rows : (rank + 1) * rows].clone().requires_grad_()
        p = data["p"][rank * rows * group : (rank + 1) * rows * group].clone().requires_grad_()
        r = data["r"][rank * rows : (rank + 1) * rows]
        out = RedapterLoss(warmup_steps=0)(q, p, group_size=group, reasoning_queries=r, step=0)
        out.loss.backward()
        torch.save({"loss": out.loss.detach(), "q": q.grad, "p": p.grad, "w": out.weights}, f"{results}/{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_distributed_loss_gathers_other_ranks_and_matches_one_process(tmp_path):
    """Two gloo ranks with half the batch each: same loss, same per-row gradients, global weights."""
    torch.manual_seed(1)
    data = {"q": torch.randn(4, 8), "p": torch.randn(12, 8), "r": torch.randn(4, 8)}
    torch.multiprocessing.spawn(_distributed_worker, args=(_free_port(), data, str(tmp_path)), nprocs=2)

    q, p = data["q"].clone().requires_grad_(), data["p"].clone().requires_grad_()
    single = RedapterLoss(warmup_steps=0)(q, p, group_size=3, reasoning_queries=data["r"], step=0)
    single.loss.backward()
    for rank in range(2):
        result = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        assert result["loss"].item() == pytest.approx(single.loss.item(), rel=1e-5)
        torch.testing.assert_close(result["w"], single.weights)
        torch.testing.assert_close(result["q"], q.grad[rank * 2 : (rank + 1) * 2], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(result["p"], p.grad[rank * 6 : (rank + 1) * 6], rtol=1e-4, atol=1e-6)


def test_false_negatives_leave_the_softmax_and_nothing_else_changes():
    """A masked (query, passage) pair is dropped from that query's softmax only; the target can't be masked."""
    tau = 0.5
    masked = per_sample_info_nce(_t(Q), _t(P), group_size=2, temperature=tau, false_negatives=[(0, 2)])
    scores = [_cos(Q[0], p) / tau for k, p in enumerate(P) if k != 2]
    expected0 = math.log(sum(math.exp(s) for s in scores)) - _cos(Q[0], P[0]) / tau
    full = _hand_losses(Q, P, 2, tau)
    torch.testing.assert_close(masked, torch.tensor([expected0, full[1]]), rtol=1e-5, atol=1e-5)
    assert masked[0] < full[0]
    redapter = RedapterLoss(temperature=tau, warmup_steps=0)
    both = redapter(_t(Q), _t(P), group_size=2, reasoning_queries=_t(R), step=0, false_negatives=[(0, 2)])
    torch.testing.assert_close(both.per_sample, masked)
    with pytest.raises(ValueError, match="own target"):
        per_sample_info_nce(_t(Q), _t(P), group_size=2, temperature=tau, false_negatives=[(1, 2)])
