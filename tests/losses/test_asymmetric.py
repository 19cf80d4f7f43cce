"""Weighted asymmetric loss (MDHR Eq. 10) and the auxiliary region CE (Eq. 11), against hand-computed values."""

import math

import pytest
import torch

from auspread.losses.asymmetric import weighted_asymmetric_loss
from auspread.losses.region_ce import region_cross_entropy


def test_hand_computed_value_with_a_masked_label():
    p = torch.tensor([[0.8, 0.3, 0.6]])
    y = torch.tensor([[1.0, 0.0, -1.0]])  # the third label is unknown
    w = torch.tensor([2.0, 1.0, 3.0])
    # known entries only: positive -w·log p ; negative -w·p·log(1-p) ; mean over the 2 known entries
    expected = (-2.0 * math.log(0.8) + -1.0 * 0.3 * math.log(0.7)) / 2
    got = weighted_asymmetric_loss(p, y, w)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.2766446, rel=1e-6)


def test_negative_weight_p_carries_no_gradient_and_masked_entries_none():
    p = torch.tensor([[0.3, 0.9]], requires_grad=True)
    y = torch.tensor([[0.0, -1.0]])
    weighted_asymmetric_loss(p, y).backward()
    # d/dp [ -sg(p)·log(1-p) ] = p / (1-p) = 0.3/0.7 ; with the gradient through p it would add -log(0.7)
    assert p.grad[0, 0].item() == pytest.approx(0.3 / 0.7, rel=1e-6)
    assert p.grad[0, 0].item() != pytest.approx(0.3 / 0.7 - math.log(0.7), rel=1e-3)
    assert p.grad[0, 1].item() == 0.0


def test_all_known_equals_official_mean_over_samples_and_aus():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(5, 4, generator=g)
    y = (torch.rand(5, 4, generator=g) > 0.5).float()
    w = torch.tensor([0.5, 1.0, 1.5, 1.0])
    eps = 1e-8
    official = -(w * (y * torch.log(p.clamp(min=eps)) + (1 - y) * p * torch.log((1 - p).clamp(min=eps)))).mean(-1).mean()
    assert weighted_asymmetric_loss(p, y, w).item() == pytest.approx(official.item(), rel=1e-6)


def test_nothing_known_gives_zero_and_backward_works():
    p = torch.full((2, 3), 0.5, requires_grad=True)
    loss = weighted_asymmetric_loss(p, -torch.ones(2, 3))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(p.grad == 0)


def test_eps_floor_keeps_loss_finite():
    loss = weighted_asymmetric_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]]))
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx((-math.log(1e-8) + -1.0 * math.log(1e-8)) / 2, rel=1e-5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        weighted_asymmetric_loss(torch.rand(2, 3), torch.zeros(2, 4))


def test_region_ce_masks_unknown_targets_and_averages_over_regions():
    z1 = torch.tensor([[0.0, 0.0], [2.0, 0.0]], requires_grad=True)
    t1 = torch.tensor([1, -1])  # second frame: a member label unknown → skipped
    z2 = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    t2 = torch.tensor([0, 3])
    z3 = torch.tensor([[5.0, 0.0]], requires_grad=True)
    t3 = torch.tensor([-1])  # region with nothing known: left out of the mean
    ce2 = (-math.log(math.e / (math.e + 3)) + -math.log(1 / 4)) / 2
    expected = (math.log(2.0) + ce2) / 2
    loss = region_cross_entropy([z1, z2, z3], [t1, t2, t3])
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert torch.all(z1.grad[1] == 0) and torch.all(z3.grad == 0)


def test_region_ce_nothing_known_is_zero():
    z = torch.zeros(3, 4, requires_grad=True)
    loss = region_cross_entropy([z], [torch.full((3,), -1)])
    assert loss.item() == 0.0
    loss.backward()
