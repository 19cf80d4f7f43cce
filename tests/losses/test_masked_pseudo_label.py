import math

import pytest
import torch

from auspread.losses.masked_pseudo_label import hard_pseudo_labels, masked_pseudo_label_bce


def test_hard_labels_and_mask_from_probabilities():
    p = torch.tensor([[0.97, 0.5, 0.03, 0.8, 0.2]])
    y, m = hard_pseudo_labels(p, 0.95)
    assert y.tolist() == [[1, 1, 0, 1, 0]]
    assert m.tolist() == [[1, 0, 1, 0, 0]]
    # separate negative threshold: p <= 1 - 0.75 = 0.25 is kept as a negative
    y, m = hard_pseudo_labels(p, 0.95, 0.75)
    assert m.tolist() == [[1, 0, 1, 0, 1]]
    # tau = 0.5 keeps everything (Lee 2013: no threshold)
    assert hard_pseudo_labels(p, 0.5)[1].sum() == p.numel()


def test_threshold_outside_range_is_refused():
    with pytest.raises(ValueError, match="tau_pos"):
        hard_pseudo_labels(torch.rand(2, 3), 0.4)


def test_masked_bce_hand_computed():
    z = torch.tensor([[0.0, 2.0]])
    y = torch.tensor([[1.0, 0.0]])
    both = (math.log(2) + math.log(1 + math.e**2)) / 2
    assert masked_pseudo_label_bce(z, y, torch.ones(1, 2)).item() == pytest.approx(both, rel=1e-6)
    first = torch.tensor([[1.0, 0.0]])
    assert masked_pseudo_label_bce(z, y, first, "all").item() == pytest.approx(math.log(2) / 2, rel=1e-6)
    assert masked_pseudo_label_bce(z, y, first, "masked").item() == pytest.approx(math.log(2), rel=1e-6)
    assert masked_pseudo_label_bce(z, y, torch.zeros(1, 2), "masked").item() == 0.0


def test_gradient_flows_to_logits_only():
    z = torch.zeros(2, 3, requires_grad=True)
    y = torch.ones(2, 3, requires_grad=True)
    masked_pseudo_label_bce(z, y, torch.ones(2, 3)).backward()
    # d/dz BCE(1, z) = sigmoid(z) - 1 = -0.5, divided by 6 entries
    assert torch.allclose(z.grad, torch.full((2, 3), -0.5 / 6))
    assert y.grad is None
