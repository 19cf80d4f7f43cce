import pytest
import torch

from auspread.engine.config import load_config
from auspread.losses.masked_pseudo_label import hard_pseudo_labels, masked_pseudo_label_bce
from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.methods import get_method
from auspread.methods.pseudo_label import PseudoLabelOptions

from .fakes import batch, ctx, info


def make(**kw):
    torch.manual_seed(0)
    return get_method("pseudo-label")(PseudoLabelOptions(**kw), info()).train()


def test_ramped_weight_usb_default_and_lee():
    m = make()
    assert m.unlabelled_weight(ctx(0.0)) == 0.0
    assert m.unlabelled_weight(ctx(2.0)) == pytest.approx(0.5)  # 20% of 10 epochs, ramp ends at 40%
    assert m.unlabelled_weight(ctx(5.0)) == 1.0
    lee = make(lambda_u=3.0, ramp_start=0.1, ramp_end=0.6, confidence=0.5)
    assert lee.unlabelled_weight(ctx(0.5)) == 0.0
    assert lee.unlabelled_weight(ctx(3.5)) == pytest.approx(1.5)
    assert lee.unlabelled_weight(ctx(8.0)) == pytest.approx(3.0)


def test_options_validate():
    with pytest.raises(Exception):
        PseudoLabelOptions(ramp_start=0.5, ramp_end=0.2)
    cfg = load_config(overrides=["method.name=pseudo-label", "method.confidence=0.9"])
    assert cfg.method.confidence == 0.9 and cfg.method.name == "pseudo-label"


def test_data_spec_asks_for_unlabelled_frames():
    spec = make(unlabelled_ratio=2).data_spec()
    assert spec.unlabelled_ratio == 2 and spec.clip_len == 1 and not spec.strong_view


def test_loss_is_supervised_plus_weighted_pseudo_label_term():
    g = torch.Generator().manual_seed(1)
    b = batch(g, 4, mu=2)
    m = make(confidence=0.6, freeze_bn=True)  # per-sample network: the parts can be recomputed separately
    with torch.no_grad():
        m.head.bias.copy_(torch.tensor([3.0, -3.0, 0.0]))  # confident on AU1 (on) and AU2 (off)
    x_l, y_l = b["frames"][:, 0], b["labels"][:, 0]
    x_u = b["unlabelled"]["frames"][:, 0]
    with torch.no_grad():
        sup = weighted_bce_with_logits(m.logits(x_l), y_l, m.class_weights)
        z_u = m.logits(x_u)
        t, mask = hard_pseudo_labels(torch.sigmoid(z_u), 0.6)
        unsup = masked_pseudo_label_bce(z_u, t, mask)
    assert unsup > 0
    out0 = m.train_step(b, ctx(0.0))
    assert out0.loss.item() == pytest.approx(sup.item(), rel=1e-5)
    assert "loss_u" not in out0.logs  # weight 0: the unlabelled pass is skipped
    out = m.train_step(b, ctx(2.0))
    assert out.loss.item() == pytest.approx(sup.item() + 0.5 * unsup.item(), rel=1e-5)
    assert 0 <= out.logs["mask_ratio"] <= 1 and "pl_acc" in out.logs


def test_unlabelled_pass_leaves_bn_running_stats_alone():
    g = torch.Generator().manual_seed(2)
    b = batch(g, 4, mu=2)
    m = make()
    ref = make()
    m.train_step(b, ctx(5.0))
    ref.logits(b["frames"][:, 0])  # the labelled pass only
    bn, bn_ref = m.backbone.stem[1], ref.backbone.stem[1]
    assert torch.allclose(bn.running_mean, bn_ref.running_mean, atol=1e-6)
