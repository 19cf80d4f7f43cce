import pytest
import torch

from auspread.losses.discrete_feedback import (discrete_feedback, feedback_enabled, gradient_feedback,
                                               loss_change_feedback)


def test_discrete_rule_values():
    assert discrete_feedback(torch.tensor(3.2)) == 1.0
    assert discrete_feedback(1e-9) == 1.0
    assert discrete_feedback(torch.tensor(-0.5)) == -0.1
    assert discrete_feedback(0.0) == -0.1  # h(z) = -0.1 for z <= 0
    assert discrete_feedback(torch.tensor(3.2), enabled=False) == 0.0
    assert discrete_feedback(-4.0, enabled=False) == 0.0


def test_sigma_disables_about_five_percent():
    g = torch.Generator().manual_seed(0)
    draws = [feedback_enabled(g) for _ in range(20000)]
    off = 1 - sum(draws) / len(draws)
    assert 0.04 < off < 0.06
    g = torch.Generator().manual_seed(0)
    assert all(feedback_enabled(g, 0.0) for _ in range(100))
    assert not any(feedback_enabled(g, 1.0) for _ in range(100))
    with pytest.raises(ValueError):
        feedback_enabled(g, 1.5)


def test_gradient_feedback_is_a_dot_product():
    gl = [torch.tensor([1.0, 2.0]), None, torch.tensor([[3.0]])]
    gu = [torch.tensor([0.5, -1.0]), torch.tensor([9.0]), torch.tensor([[2.0]])]
    assert float(gradient_feedback(gl, gu)) == pytest.approx(0.5 - 2.0 + 6.0)


def test_loss_change_sign():
    assert float(loss_change_feedback(torch.tensor(1.0), torch.tensor(0.7))) == pytest.approx(0.3)
    assert float(loss_change_feedback(torch.tensor(0.7), torch.tensor(1.0))) < 0
