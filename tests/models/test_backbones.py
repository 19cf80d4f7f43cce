"""Backbone weights from a local file: torchvision state dicts and auspread checkpoints (warm starts)."""

import pytest
import torch

from auspread.errors import ConfigError
from auspread.methods.base import DatasetInfo
from auspread.methods.ks import KnowledgeSpreader, KSOptions
from auspread.methods.supervised import Supervised, SupervisedOptions
from auspread.models.backbones import build_torchvision


def _info() -> DatasetInfo:
    return DatasetInfo(dataset="test", aus=(1, 2, 4), class_weights=torch.ones(3), num_subjects=2, image_size=32, fps=25.0)


def test_a_supervised_runs_checkpoint_warm_starts_both_ks_backbones(tmp_path):
    torch.manual_seed(0)
    sup = Supervised(SupervisedOptions(), _info())
    with torch.no_grad():
        for p in sup.parameters():
            p.add_(torch.randn_like(p))  # anything but the default initialisation
    ckpt = tmp_path / "best.pt"
    torch.save({"model": sup.state_dict(), "config": {"method": {"name": "supervised"}}}, ckpt)

    tv = build_torchvision("resnet18", str(ckpt))
    assert torch.equal(tv.conv1.weight, sup.backbone.stem[0].weight)
    assert torch.equal(tv.bn1.running_var, sup.backbone.stem[1].running_var)
    assert torch.equal(tv.layer4[1].conv2.weight, sup.backbone.layer4[1].conv2.weight)

    ks = KnowledgeSpreader(KSOptions(clip_len=3, width=16, heads=4, depth=1), _info(), pretrained=str(ckpt))
    for trunk in (ks.net.backbone_a, ks.net.backbone_b):
        assert torch.equal(trunk.layer3[0].conv1.weight, sup.backbone.layer3[0].conv1.weight)


def test_a_checkpoint_without_a_resnet_is_a_config_error(tmp_path):
    ckpt = tmp_path / "other.pt"
    torch.save({"model": {"head.weight": torch.zeros(2, 2)}, "config": {}}, ckpt)
    with pytest.raises(ConfigError, match="no ResNet trunk"):
        build_torchvision("resnet18", str(ckpt))
