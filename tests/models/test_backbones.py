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


# --- ImageNet weights: from the torch cache, downloaded where online, refused otherwise -------------------------------
def _fake_imagenet_file(monkeypatch, tmp_path, name="resnet18", spec="imagenet"):
    """A torch hub folder in tmp_path holding a 'downloaded' weights file with recognisable (non-default) values."""
    from auspread.models import backbones as B

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    torch.manual_seed(5)
    state = B._BACKBONES[name][0](weights=None).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], 0.125)
    return B.imagenet_cache_file(name, spec), state


@pytest.mark.parametrize("spec", ["imagenet", "IMAGENET1K_V1", "DEFAULT"])
def test_imagenet_weights_are_loaded_from_the_torch_cache(monkeypatch, tmp_path, spec):
    from auspread.models import backbones as B

    path, state = _fake_imagenet_file(monkeypatch, tmp_path, spec=spec)
    assert path.parent == tmp_path / "hub" / "checkpoints" and path.name.startswith("resnet18-")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    monkeypatch.setattr(B, "download_weights", lambda url, dst: pytest.fail("must not download a cached file"))
    model = build_torchvision("resnet18", spec)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])


def test_imagenet_weights_are_downloaded_into_the_cache_where_online(monkeypatch, tmp_path):
    from auspread.models import backbones as B

    path, state = _fake_imagenet_file(monkeypatch, tmp_path)
    calls = []

    def fake_download(url, dst):
        calls.append((url, dst))
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, dst)

    monkeypatch.setattr(B, "download_weights", fake_download)
    model = build_torchvision("resnet18", "imagenet")
    assert len(calls) == 1 and calls[0][1] == path and calls[0][0].endswith(path.name)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])


def test_imagenet_refuses_with_a_clear_error_when_neither_cache_nor_network(monkeypatch, tmp_path):
    """Never random weights under an ImageNet label: the error names the file and where to put it."""
    from auspread.models import backbones as B

    path, _ = _fake_imagenet_file(monkeypatch, tmp_path)

    def offline(url, dst):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(B, "download_weights", offline)
    with pytest.raises(ConfigError) as e:
        KnowledgeSpreader(KSOptions(clip_len=3, width=16, heads=4, depth=1), _info(), pretrained="imagenet")
    msg = str(e.value)
    assert path.name in msg and str(path.parent) in msg and "random weights" in msg
    assert not path.exists()


def test_unknown_torchvision_weights_name_is_a_config_error():
    with pytest.raises(ConfigError, match="IMAGENET1K_V9"):
        build_torchvision("resnet18", "IMAGENET1K_V9")


def test_imagenet_spec_recognises_names_not_paths():
    from auspread.models.backbones import is_imagenet_spec

    assert all(is_imagenet_spec(s) for s in ("imagenet", "ImageNet", "IMAGENET1K_V1", "imagenet1k_v2", "DEFAULT"))
    assert not any(is_imagenet_spec(s) for s in (None, "", "runs/x/best.pt", "resnet18.pth"))
