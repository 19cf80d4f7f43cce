"""The supervised baseline: unit behaviour on fake batches, and learning on the synthetic `tiny` preset."""

import json

import numpy as np
import pytest
import torch

from auspread.engine.config import load_config
from auspread.evaluation.metrics import au_scores
from auspread.methods.base import DatasetInfo, StepContext, get_method
from auspread.methods.supervised import Supervised, SupervisedOptions


def _info(u=3):
    return DatasetInfo("BP4D", tuple(range(1, u + 1)), torch.tensor([1.0, 2.0, 0.5])[:u], 2, 32, 25.0)


def _ctx():
    return StepContext(epoch=0, step=0, batch_in_epoch=0, steps_per_epoch=1, epochs=1, device=torch.device("cpu"))


def test_registered_with_frame_data_spec():
    assert get_method("supervised") is Supervised
    m = Supervised(SupervisedOptions(), _info())
    spec = m.data_spec()
    assert spec.clip_len == 1 and spec.sampling == "key_frames" and spec.unlabelled_ratio == 0


def test_loss_is_weighted_bce_on_known_labels_only():
    torch.manual_seed(0)
    m = Supervised(SupervisedOptions(), _info()).eval()
    x = torch.randn(4, 1, 3, 32, 32)
    y = torch.tensor([[[1, 0, -1]], [[0, -1, 1]], [[-1, -1, -1]], [[1, 1, 0]]], dtype=torch.float32)
    out = m.train_step({"frames": x, "labels": y}, _ctx())
    with torch.no_grad():
        z = m.logits(x[:, 0])
    known = y[:, 0] >= 0
    per = torch.nn.functional.binary_cross_entropy_with_logits(z, y[:, 0].clamp(min=0), reduction="none") * torch.tensor([1.0, 2.0, 0.5])
    assert out.loss.item() == pytest.approx((per[known].sum() / known.sum()).item(), rel=1e-5)
    # class_weights=False is the plain masked BCE
    m2 = Supervised(SupervisedOptions(class_weights=False), _info()).eval()
    m2.load_state_dict({**m.state_dict(), "class_weights": torch.ones(3)})
    plain = torch.nn.functional.binary_cross_entropy_with_logits(z, y[:, 0].clamp(min=0), reduction="none")
    assert m2.train_step({"frames": x, "labels": y}, _ctx()).loss.item() == pytest.approx(plain[known].mean().item(), rel=1e-5)


def test_predict_video_covers_every_frame_in_order():
    m = Supervised(SupervisedOptions(), _info()).eval()
    x = torch.randn(7, 3, 32, 32)
    p = m.predict_video(iter([x[:3], x[3:6], x[6:]]), 7)
    assert p.shape == (7, 3) and torch.allclose(p, m.predict_frames(x), atol=1e-5)
    assert ((p >= 0) & (p <= 1)).all()


def test_freeze_bn_keeps_batchnorm_in_eval_mode():
    m = Supervised(SupervisedOptions(freeze_bn=True), _info()).train()
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert bns and all(not b.training for b in bns) and m.head.training


def test_pretrained_file_is_loaded_and_missing_file_is_clear(tmp_path):
    from torchvision.models import resnet18

    from auspread.errors import ConfigError

    torch.manual_seed(1)
    ref = resnet18()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    m = Supervised(SupervisedOptions(), _info(), pretrained=str(tmp_path / "r18.pth"))
    assert torch.equal(m.backbone.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    with pytest.raises(ConfigError, match="not found"):
        Supervised(SupervisedOptions(), _info(), pretrained=str(tmp_path / "missing.pth"))


@pytest.mark.slow
def test_learns_on_tiny_synthetic(tmp_path):
    """Loss falls, and F1 on the training subjects (every frame, true labels) beats both trivial predictors on
    the same frames (all negative: F1 0; all positive: 2r/(1+r) per AU). The tiny preset has 4 training
    subjects: too few to expect generalisation to new subjects, so this test is about learning, not transfer."""
    from auspread.engine.run import evaluate_run, run_training

    cfg = load_config(None, ["method.name=supervised", "method.class_weights=false", "data.synth_preset=tiny",
                             "data.image_size=48", "data.val_fraction=0", "data.augment.rotation=10", "optim.epochs=6",
                             "optim.batch_size=16", "optim.optimizer=adamw", "optim.lr=0.002", "optim.weight_decay=0.0", "threads=1",
                             f"out_dir={tmp_path}"])
    s = run_training(cfg, progress=False)
    assert s.selected_on == "last" and s.best_epoch == 6
    losses = [h["loss"] for h in s.history]
    assert losses[-1] < 0.8 * losses[0], losses
    r = evaluate_run(s.run_dir, split="train", progress=False)
    y = np.load(r.out_dir / "train_predictions.npz")["labels"]
    trivial_pos = au_scores(np.ones(y.shape), y, r.scores.aus).mean_f1
    trivial_neg = au_scores(np.zeros(y.shape), y, r.scores.aus).mean_f1
    assert trivial_neg == 0.0
    assert r.scores.mean_f1 > trivial_pos + 0.05, (r.scores.mean_f1, trivial_pos)
    assert json.loads((s.run_dir / "results" / "summary.json").read_text())["test_f1"] == pytest.approx(s.test_f1)
