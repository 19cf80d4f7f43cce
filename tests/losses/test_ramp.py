"""KS Eq. 8: Gaussian ramp-up exp(-5 (1 - t)^2), reaching 1 after the warm-up epochs."""

import math

import pytest

from auspread.losses.ramp import gaussian_rampup


def test_start_mid_end():
    assert gaussian_rampup(0.0, 5.0) == pytest.approx(math.exp(-5.0))  # 0.0067
    assert gaussian_rampup(2.5, 5.0) == pytest.approx(math.exp(-1.25))  # 0.2865
    assert gaussian_rampup(5.0, 5.0) == pytest.approx(1.0)
    assert gaussian_rampup(37.0, 5.0) == 1.0


def test_monotone_and_no_rampup():
    values = [gaussian_rampup(e / 4, 5.0) for e in range(0, 25)]
    assert values == sorted(values)
    assert gaussian_rampup(0.0, 0.0) == 1.0
    with pytest.raises(ValueError):
        gaussian_rampup(1.0, -1.0)
