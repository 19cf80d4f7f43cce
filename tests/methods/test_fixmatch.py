import pytest
import torch

from auspread.losses.masked_pseudo_label import hard_pseudo_labels, masked_pseudo_label_bce
from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.methods import get_method
from auspread.methods.fixmatch import FixMatchOptions

from .fakes import batch, ctx, info


def make(**kw):
    torch.manual_seed(0)
    m = get_method("fixmatch")(FixMatchOptions(**kw), info()).train()
    with torch.no_grad():
        m.head.bias.copy_(torch.tensor([3.0, -3.0, 0.0]))  # confident on AU1 (on) and AU2 (off), unsure on AU4
    return m


def test_data_spec_weak_and_strong_unlabelled_views():
    spec = make(unlabelled_ratio=2).data_spec()
    assert spec.strong_view and spec.unlabelled_ratio == 2 and spec.clip_len == 1


def test_reference_defaults():
    o = FixMatchOptions()
    assert (o.confidence, o.lambda_u, o.unlabelled_ratio, o.normalise) == (0.95, 1.0, 7.0, "all")


def test_loss_targets_come_from_weak_view_and_apply_to_strong_view():
    g = torch.Generator().manual_seed(1)
    b = batch(g, 4, mu=2, strong=True)
    m = make(confidence=0.9, freeze_bn=True)  # per-sample network so the parts can be recomputed one by one
    x_l, y_l = b["frames"][:, 0], b["labels"][:, 0]
    u_w, u_s = b["unlabelled"]["frames"][:, 0], b["unlabelled"]["strong"][:, 0]
    with torch.no_grad():
        sup = weighted_bce_with_logits(m.logits(x_l), y_l, m.class_weights)
        t, mask = hard_pseudo_labels(torch.sigmoid(m.logits(u_w)), 0.9)
        unsup = masked_pseudo_label_bce(m.logits(u_s), t, mask)
        swapped_t, swapped_m = hard_pseudo_labels(torch.sigmoid(m.logits(u_s)), 0.9)
        swapped = masked_pseudo_label_bce(m.logits(u_w), swapped_t, swapped_m)
    assert unsup > 0 and abs(unsup - swapped) > 1e-4  # the test can tell the views apart
    out = m.train_step(b, ctx(3.0))
    assert out.loss.item() == pytest.approx(sup.item() + unsup.item(), rel=1e-5)
    assert out.logs["mask_ratio"] == pytest.approx(mask.mean().item())
    out.loss.backward()
    assert m.head.weight.grad.abs().sum() > 0


def test_no_confident_entry_leaves_the_supervised_loss():
    g = torch.Generator().manual_seed(2)
    b = batch(g, 4, mu=1, strong=True)
    m = make(confidence=1.0, freeze_bn=True)
    with torch.no_grad():
        m.head.bias.zero_()
        sup = weighted_bce_with_logits(m.logits(b["frames"][:, 0]), b["labels"][:, 0], m.class_weights)
    out = m.train_step(b, ctx(1.0))
    assert out.logs["mask_ratio"] == 0.0
    assert out.loss.item() == pytest.approx(sup.item(), rel=1e-5)


def test_step_without_unlabelled_batch_is_supervised():
    g = torch.Generator().manual_seed(3)
    b = batch(g, 4)
    m = make()
    out = m.train_step(b, ctx(0.0))
    assert torch.isfinite(out.loss) and "loss_u" not in out.logs
