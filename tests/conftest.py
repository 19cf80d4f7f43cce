"""Suite-wide test settings."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models and a shared 2-core machine: one torch thread per test process avoids oversubscription
    (measured: MTCNN ~6x and training steps up to 20x slower with 2 threads under parallel load)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def _fake_torch_home(tmp_path_factory):
    """A torch home whose hub cache holds a stand-in for torchvision's MobileNetV2 ImageNet file (random weights
    under the real file name), so that configs with ``pretrained=imagenet`` (the README main job) train offline."""
    import torch
    from torchvision.models import mobilenet_v2

    home = tmp_path_factory.mktemp("torch-home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(mobilenet_v2().state_dict(), home / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth")
    return home


@pytest.fixture(autouse=True)
def _no_network_for_weights(monkeypatch, _fake_torch_home):
    """Tests never fetch weights: the torch cache is the stand-in above (also for subprocesses, through TORCH_HOME),
    and torchvision's URL and the package index refuse."""
    from auspread.models import backbones

    def offline(*args, **kwargs):
        raise OSError("tests do not fetch weights")

    monkeypatch.setenv("TORCH_HOME", str(_fake_torch_home))
    monkeypatch.setattr(backbones, "download_weights", offline)
    monkeypatch.setattr(backbones, "pip_download", offline)
