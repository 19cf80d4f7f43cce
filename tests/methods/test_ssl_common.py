
import pytest
import torch
from torch import nn

from auspread.methods.ssl_common import frozen_bn_stats, linear_ramp, pseudo_label_logs


def test_linear_ramp_usb_and_lee():
    assert linear_ramp(0.0, 0.0, 0.4) == 0.0
    assert linear_ramp(0.2, 0.0, 0.4) == pytest.approx(0.5)
    assert linear_ramp(0.9, 0.0, 0.4) == 1.0
    # Lee 2013: T1 = 100, T2 = 600
    assert linear_ramp(50, 100, 600) == 0.0
    assert linear_ramp(350, 100, 600) == pytest.approx(0.5)
    assert linear_ramp(700, 100, 600) == 1.0
    assert linear_ramp(0.3, 0.3, 0.3) == 1.0
    with pytest.raises(ValueError):
        linear_ramp(0.1, 0.5, 0.2)


def test_frozen_bn_stats_uses_batch_stats_but_restores_running_stats():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3).train()
    bn(torch.randn(8, 3))
    before = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    x = torch.randn(16, 3) * 4 + 2
    with frozen_bn_stats(bn):
        y = bn(x)
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-5)  # normalised with the batch's statistics
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert torch.equal(bn.num_batches_tracked, before[2])


def test_pseudo_label_logs():
    t = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    truth = torch.tensor([[1.0, 1.0, 0.0, -1.0]])
    logs = pseudo_label_logs(t, m, truth)
    assert logs["mask_ratio"] == pytest.approx(0.75)
    assert logs["pl_acc"] == pytest.approx(0.5)  # kept and known: entries 0 (right) and 1 (wrong)
