"""Tests of the recommendation losses on hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from graphrec.nn.losses import bce_loss, bpr_loss, l2_regularization


def test_bpr_loss_hand_value():
    loss = bpr_loss(torch.tensor([2.0]), torch.tensor([0.0]))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)))  # 0.126928


def test_bpr_loss_averages_over_batch_and_negatives():
    pos = torch.tensor([1.0, 0.0])
    neg = torch.tensor([[1.0, 3.0], [0.0, 0.0]])  # differences 0, -2, 0, 0
    expected = (3 * math.log(2) + math.log(1 + math.exp(2))) / 4
    assert bpr_loss(pos, neg).item() == pytest.approx(expected)


def test_bpr_loss_is_stable_and_has_gradient():
    pos = torch.tensor([100.0, -100.0], requires_grad=True)
    loss = bpr_loss(pos, torch.zeros(2))
    assert loss.item() == pytest.approx(50.0)
    loss.backward()
    assert torch.isfinite(pos.grad).all()
    assert pos.grad.tolist() == pytest.approx([0.0, -0.5])


def test_bpr_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"neg_scores has shape \(3,\); expected \[B\] or \[B, N\] with B = 2"):
        bpr_loss(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"pos_scores has shape \(2, 1\); expected \[B\]"):
        bpr_loss(torch.zeros(2, 1), torch.zeros(2))


def test_bce_loss_hand_values():
    assert bce_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(2 * math.log(2))
    # softplus(-2) for the positive; mean of softplus(0), softplus(1) for its two negatives.
    value = bce_loss(torch.tensor([2.0]), torch.tensor([[0.0, 1.0]])).item()
    assert value == pytest.approx(math.log(1 + math.exp(-2)) + (math.log(2) + math.log(1 + math.e)) / 2)


def test_bce_loss_is_stable_for_large_logits():
    assert bce_loss(torch.tensor([1000.0]), torch.tensor([-1000.0])).item() == pytest.approx(0.0)
    assert bce_loss(torch.tensor([-1000.0]), torch.tensor([1000.0])).item() == pytest.approx(2000.0)


def test_l2_regularization_hand_value():
    users = torch.ones(2, 3)  # squared norm 6
    items = 2 * torch.ones(2, 3)  # squared norm 24
    assert l2_regularization(users, items).item() == pytest.approx(30 / (2 * 2))
    assert l2_regularization(users, items, batch_size=5).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="at least one tensor"):
        l2_regularization()
