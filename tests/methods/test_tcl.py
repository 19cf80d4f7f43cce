import pytest
import torch

from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.methods import get_method
from auspread.methods.tcl import TCLOptions

from .fakes import batch, ctx, info


def make(**kw):
    torch.manual_seed(0)
    kw.setdefault("clip_len", 4)
    return get_method("tcl")(TCLOptions(**kw), info()).train()


def test_options_and_data_spec():
    m = make(unlabelled_ratio=2)
    spec = m.data_spec()
    assert spec.clip_len == 4 and spec.unlabelled_ratio == 2 and not spec.strong_view
    with pytest.raises(Exception):
        TCLOptions(sup_until=0.5, finetune_from=0.2)


def test_stages_follow_training_progress():
    m = make(sup_until=0.1, finetune_from=0.8)
    assert m.stage(ctx(0.5)) == "supervised"  # 5 % of 10 epochs
    assert m.stage(ctx(1.0)) == "contrastive"
    assert m.stage(ctx(8.0)) == "self-training"


def test_supervised_stage_is_the_weighted_bce_of_the_clip():
    g = torch.Generator().manual_seed(1)
    b = batch(g, 2, n=4, mu=1)
    m = make()
    m.eval()  # deterministic BN to recompute the same logits
    with torch.no_grad():
        ref = weighted_bce_with_logits(m.net(b["frames"]), b["labels"], m.class_weights)
        out = m.train_step(b, ctx(0.0))
    assert out.loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert "loss_ic" not in out.logs and "loss_pl" not in out.logs


def test_contrastive_stage_adds_instance_and_group_losses_on_the_slow_pathway():
    g = torch.Generator().manual_seed(2)
    b = batch(g, 2, n=4, mu=2)
    m = make(gamma=9.0)
    out = m.train_step(b, ctx(5.0))
    assert out.logs["loss_ic"] > 0 and out.logs["loss_gc"] >= 0
    assert out.loss.item() == pytest.approx(out.logs["loss_sup"] + 9 * out.logs["loss_ic"] + out.logs["loss_gc"], rel=1e-4)
    out.loss.backward()
    assert m.net.head.weight.grad.abs().sum() > 0


def test_self_training_stage_uses_per_frame_pseudo_labels():
    g = torch.Generator().manual_seed(3)
    b = batch(g, 2, n=4, mu=2)
    m = make(pl_threshold=0.5)  # keep every entry
    out = m.train_step(b, ctx(9.5))
    assert out.logs["mask_ratio"] == 1.0 and out.logs["loss_pl"] > 0
    assert out.loss.item() == pytest.approx(out.logs["loss_sup"] + out.logs["loss_pl"], rel=1e-4)


@pytest.mark.parametrize("chunk", [3, 5, 64])
def test_predict_video_covers_every_frame_once_whatever_the_chunking(chunk):
    torch.manual_seed(4)
    m = make(clip_len=4, eval_windows=2).eval()
    frames = torch.randn(11, 3, 32, 32)
    chunks = [frames[i : i + chunk] for i in range(0, 11, chunk)]
    out = m.predict_video(iter(chunks), 11)
    assert out.shape == (11, 3)
    with torch.no_grad():
        expected = torch.cat([torch.sigmoid(m.net(frames[:8].view(2, 4, 3, 32, 32))).view(8, 3),
                              torch.sigmoid(m.net(frames[8:][None]))[0]])
    assert torch.allclose(out, expected, atol=1e-5)


def test_contrast_on_clip_embeddings():
    g = torch.Generator().manual_seed(5)
    b = batch(g, 2, n=4, mu=2)
    m = make(contrast_on="features")
    out = m.train_step(b, ctx(5.0))
    assert out.logs["loss_ic"] > 0
    out.loss.backward()
    assert m.net.backbone.layer4[0].conv1.conv.weight.grad.abs().sum() > 0
