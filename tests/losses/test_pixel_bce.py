import math

import pytest
import torch

from auspread.losses.pixel_bce import pixel_bce


def test_pixel_bce_hand_value():
    # two pixels: p = sigmoid(0) = 0.5 with y = 1, p = sigmoid(ln 3) = 0.75 with y = 0
    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 2)
    target = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    expected = (-math.log(0.5) - math.log(0.25)) / 2
    assert float(pixel_bce(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_pixel_bce_soft_targets_minimised_at_target():
    target = torch.full((1, 2, 3, 3), 0.3)
    at = pixel_bce(torch.logit(target), target)
    off = pixel_bce(torch.logit(target) + 0.5, target)
    assert at < off


def test_pixel_bce_shape_mismatch():
    with pytest.raises(ValueError, match="differ in shape"):
        pixel_bce(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))
