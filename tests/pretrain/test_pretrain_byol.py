"""The BYOL pretrainer (auspread.pretrain.byol): symmetric loss, EMA target, trunk export."""

import pytest
import torch

from auspread.losses.byol import byol_loss, byol_momentum
from auspread.methods.base import StepContext, method_names
from auspread.models.backbones import build_torchvision
from auspread.pretrain.byol import BYOLPretrainer
from auspread.pretrain.config import PretrainRecipe


def _ctx(step, epochs=2, spe=5):
    return StepContext(epoch=step // spe, step=step, batch_in_epoch=step % spe, steps_per_epoch=spe, epochs=epochs,
                       device=torch.device("cpu"))


def _model(arch="resnet18"):
    torch.manual_seed(0)
    return BYOLPretrainer(PretrainRecipe(arch=arch, proj_hidden=32, proj_dim=16, momentum=0.9))


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_loss_is_the_symmetric_byol_loss_and_only_the_online_side_learns():
    m = _model()
    x = torch.randn(4, 2, 3, 32, 32)
    out = m.train_step({"frames": x}, _ctx(0))
    both = torch.cat([x[:, 0], x[:, 1]])
    with torch.no_grad():  # train-mode BatchNorm: the same batch gives the same outputs
        p, z = m.predictor(m.online(both)), m.target(both)
    expected = byol_loss(p[:4], z[4:]) + byol_loss(p[4:], z[:4])
    assert float(out.loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    out.loss.backward()
    assert all(q.grad is None for q in m.target.parameters())
    assert all(q.grad is not None for q in m.online.parameters()) and all(q.grad is not None for q in m.predictor.parameters())
    assert out.logs["tau"] == pytest.approx(0.9) and 0 < out.logs["z_std"] < 1
    assert "pretrain-byol" not in method_names()  # not a detector: not in the registry (is_detector = False)
    assert BYOLPretrainer.is_detector is False


def test_target_follows_the_online_weights_by_ema_one_step_late():
    m = _model()
    assert all(torch.equal(a, b) for a, b in zip(_params(m.online), _params(m.target)))
    t0 = _params(m.target)
    with torch.no_grad():
        for q in m.online.parameters():
            q.add_(1.0)
    x = torch.randn(4, 2, 3, 32, 32)
    m.train_step({"frames": x}, _ctx(0))  # step 0: nothing to apply yet
    assert all(torch.equal(a, b) for a, b in zip(t0, _params(m.target)))
    m.train_step({"frames": x}, _ctx(1))  # step 1 applies step 0's update, τ_0 = τ_base
    tau = byol_momentum(0, 10, 0.9)
    for a, b in zip(t0, _params(m.target)):
        assert torch.allclose(b, tau * a + (1 - tau) * (a + 1.0), atol=1e-6)


def test_efficientnet_trunk_trains_and_exports_torchvision_names():
    m = _model("efficientnet_b0")
    out = m.train_step({"frames": torch.randn(2, 2, 3, 32, 32)}, _ctx(0))
    assert torch.isfinite(out.loss)
    tv = build_torchvision("efficientnet_b0")
    missing, unexpected = tv.load_state_dict(m.trunk_state(), strict=False)
    assert not unexpected and all(k.startswith("classifier.") for k in missing)


def test_simclr_loss_is_nt_xent_of_the_two_views_and_the_trunk_learns():
    from auspread.losses.instance_contrastive import nt_xent
    from auspread.pretrain.simclr import SimCLRPretrainer, build_pretrainer

    torch.manual_seed(0)
    rec = PretrainRecipe(objective="simclr", proj_hidden=32, proj_dim=16, temperature=0.3)
    m = build_pretrainer(rec)
    assert isinstance(m, SimCLRPretrainer) and isinstance(build_pretrainer(PretrainRecipe(objective="byol")), BYOLPretrainer)
    x = torch.randn(6, 2, 3, 32, 32)
    m.eval()  # BatchNorm with running statistics: the forward below is the same function
    out = m.train_step({"frames": x}, _ctx(0))
    z = m.online(torch.cat([x[:, 0], x[:, 1]]))
    assert torch.allclose(out.loss, nt_xent(z[:6], z[6:], 0.3), atol=1e-6)
    assert 0.0 <= out.logs["pair_top1"] <= 1.0 and out.logs["z_std"] > 0
    m.train()
    before = _params(m.trunk())
    m.train_step({"frames": x}, _ctx(0)).loss.backward()
    torch.optim.SGD(m.parameters(), lr=0.1).step()
    assert any(not torch.equal(a, b) for a, b in zip(before, m.trunk().parameters()))
    state = m.trunk_state()
    build_torchvision("resnet18").load_state_dict({**state, **{k: v for k, v in
                                                  build_torchvision("resnet18").state_dict().items() if k.startswith("fc.")}})
