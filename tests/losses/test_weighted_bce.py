import math

import pytest
import torch

from auspread.losses.weighted_bce import weighted_bce_with_logits


def test_hand_computed_value_masks_unknown_and_weights_per_au():
    z = torch.tensor([[0.0, 2.0], [-1.0, 0.0]], requires_grad=True)
    y = torch.tensor([[1.0, -1.0], [0.0, 1.0]])
    w = torch.tensor([2.0, 0.5])
    loss = weighted_bce_with_logits(z, y, w)
    expected = (2 * math.log(2) + 2 * math.log(1 + math.exp(-1)) + 0.5 * math.log(2)) / 3  # 3 known entries
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert z.grad[0, 1] == 0  # the unknown label contributes no gradient
    assert z.grad[0, 0] == pytest.approx(2 * (0.5 - 1) / 3)


def test_no_weights_equals_torch_bce_on_known_entries():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, generator=g)
    y = (torch.rand(6, 4, generator=g) < 0.5).float()
    ref = torch.nn.functional.binary_cross_entropy_with_logits(z, y)
    assert weighted_bce_with_logits(z, y).item() == pytest.approx(ref.item(), rel=1e-6)


def test_all_unknown_gives_zero_with_a_graph():
    z = torch.randn(2, 3, requires_grad=True)
    loss = weighted_bce_with_logits(z, torch.full((2, 3), -1.0), torch.ones(3))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(z.grad == 0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        weighted_bce_with_logits(torch.zeros(2, 3), torch.zeros(2, 4))
