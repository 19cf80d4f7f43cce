import math

import pytest
import torch

from auspread.losses.byol import byol_loss, byol_momentum


def test_byol_loss_hand_values():
    p = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0], [2.0, 0.0]])
    z = torch.tensor([[5.0, 0.0], [0.0, -1.0], [1.0, 0.0], [0.0, 7.0]])
    # cos = 1, -1, 1/sqrt(2), 0 → 2 - 2cos = 0, 4, 2 - sqrt(2), 2
    expected = (0 + 4 + (2 - math.sqrt(2)) + 2) / 4
    assert float(byol_loss(p, z)) == pytest.approx(expected, rel=1e-6)


def test_byol_loss_equals_squared_distance_of_normalised_vectors():
    torch.manual_seed(0)
    p, z = torch.randn(5, 7), torch.randn(5, 7)
    pn, zn = p / p.norm(dim=1, keepdim=True), z / z.norm(dim=1, keepdim=True)
    assert float(byol_loss(p, z)) == pytest.approx(float(((pn - zn) ** 2).sum(1).mean()), rel=1e-5)


def test_byol_loss_stops_gradient_into_target_and_checks_shapes():
    p = torch.randn(3, 4, requires_grad=True)
    z = torch.randn(3, 4, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None and z.grad is None
    with pytest.raises(ValueError, match="differ in shape"):
        byol_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_byol_momentum_cosine_from_base_to_one():
    assert byol_momentum(0, 100, 0.99) == pytest.approx(0.99)
    assert byol_momentum(50, 100, 0.99) == pytest.approx(0.995)
    assert byol_momentum(100, 100, 0.99) == pytest.approx(1.0)
    assert byol_momentum(25, 100, 0.9) == pytest.approx(1 - 0.1 * (math.cos(math.pi / 4) + 1) / 2)
    with pytest.raises(ValueError):
        byol_momentum(0, 10, 1.5)
