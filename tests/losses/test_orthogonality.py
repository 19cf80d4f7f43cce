import math

import pytest
import torch

from auspread.losses.orthogonality import orthogonality_loss


def test_orthogonality_hand_value():
    v_au = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    v_p = torch.tensor([[1.0, 1.0], [5.0, 0.0], [-1.0, 0.0]])
    # |cos| = 1/sqrt(2), 0, 1 (clamped to 1 - eps)
    eps = 1e-3  # exact in float32 to ~1e-7 relative
    expected = -(math.log(1 - 1 / math.sqrt(2)) + math.log(1.0) + math.log(eps)) / 3
    assert float(orthogonality_loss(v_au, v_p, eps=eps)) == pytest.approx(expected, rel=1e-4)


def test_orthogonality_zero_for_orthogonal_and_sign_free():
    a = torch.tensor([[1.0, 2.0, 0.0]])
    b = torch.tensor([[-2.0, 1.0, 0.0]])
    assert float(orthogonality_loss(a, b)) == pytest.approx(0.0, abs=1e-7)
    c = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(orthogonality_loss(a, c)) == pytest.approx(float(orthogonality_loss(a, -c)))


def test_orthogonality_gradient_reduces_cosine():
    torch.manual_seed(0)
    v = torch.randn(4, 8, requires_grad=True)
    p = torch.randn(4, 8)
    opt = torch.optim.SGD([v], lr=0.1)
    first = float(orthogonality_loss(v, p).detach())
    for _ in range(20):
        opt.zero_grad()
        orthogonality_loss(v, p).backward()
        opt.step()
    assert float(orthogonality_loss(v, p).detach()) < 0.5 * first


def test_orthogonality_shape_check():
    with pytest.raises(ValueError, match="architecture"):
        orthogonality_loss(torch.zeros(2, 3), torch.zeros(2, 4))
