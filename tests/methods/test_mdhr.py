"""MDHR as a method: options, data spec, losses on sparse labels, a short training run, whole-video prediction."""

import pytest
import torch
import torch.nn.functional as F

from auspread.aus import dataset_aus
from auspread.engine.config import build_config
from auspread.errors import ConfigError
from auspread.methods.base import DataSpec, DatasetInfo, StepContext, get_method
from auspread.methods.mdhr import MDHR, MDHROptions
from auspread.models.mdhr import encode_region_classes

REDUCED = dict(backbone="resnet18", width=32, mfd_channels=32)


def info(ds="BP4D", size=64):
    aus = dataset_aus(ds).aus
    return DatasetInfo(dataset=ds, aus=aus, class_weights=torch.ones(len(aus)), num_subjects=3, image_size=size, fps=25.0)


def make(ds="BP4D", **opts):
    torch.manual_seed(0)
    return MDHR(MDHROptions(**{**REDUCED, **opts}), info(ds))


def ctx(step=0):
    return StepContext(epoch=0, step=step, batch_in_epoch=step, steps_per_epoch=10, epochs=1, device=torch.device("cpu"))


def fake_batch(B=2, n=8, U=12, size=64, seed=0, known=0.5):
    g = torch.Generator().manual_seed(seed)
    true = (torch.rand(B, n, U, generator=g) < 0.4).float()
    labels = torch.where(torch.rand(B, n, 1, generator=g) < known, true, torch.full_like(true, -1.0))
    frames = torch.randn(B, n, 3, size, size, generator=g) * 0.5
    frames = frames + true.mean(-1)[..., None, None, None]  # learnable signal
    return {
        "frames": frames,
        "labels": labels,
        "key_pos": torch.full((B,), -1, dtype=torch.long),
        "true_labels": true,
        "subject": torch.zeros(B, dtype=torch.long),
        "video": torch.arange(B),
        "frame": torch.arange(n).repeat(B, 1),
    }


def test_registered_with_typed_options_and_video_windows():
    assert get_method("mdhr") is MDHR
    cfg = build_config({"method": {"name": "mdhr", "backbone": "resnet18", "k": 3}})
    assert isinstance(cfg.method, MDHROptions) and cfg.method.k == 3 and cfg.method.lam == 0.01
    assert make().data_spec() == DataSpec(clip_len=16, sampling="video_windows")
    assert make(clip_len=8).data_spec().clip_len == 8
    # sparse labels: one window around each labelled key frame instead (docs/methods/mdhr.md, "Sparse labels")
    assert make(sampling="key_frames").data_spec() == DataSpec(clip_len=16, sampling="key_frames")
    with pytest.raises(ConfigError, match="method.sampling"):
        build_config({"method": {"name": "mdhr", "sampling": "all_frames"}})


@pytest.mark.parametrize(
    "bad",
    [{"aux": False}, {"mfd_scales": [0, 1]}, {"mfd_scales": []}, {"fusion": "max"}, {"k": 0}, {"backbone": "vgg"}],
)
def test_bad_options_are_config_errors(bad):
    with pytest.raises(ConfigError):
        build_config({"method": {"name": "mdhr", **bad}})


def test_loss_is_wa_plus_lambda_ce_and_ignores_unknown_frames():
    m = make()
    b = fake_batch(B=1, n=4)
    loss, logs = m.losses(b["frames"], b["labels"])
    assert loss.item() == pytest.approx(logs["wa"] + 0.01 * logs["aux_ce"], rel=1e-5)
    # hiding every label: no supervised signal at all, and backward still works
    m.zero_grad()
    loss0, logs0 = m.losses(b["frames"], -torch.ones_like(b["labels"]))
    assert loss0.item() == 0.0 and logs0["known"] == 0.0
    loss0.backward()


def test_region_ce_only_where_the_whole_region_is_known():
    m = make(ds="DISFA")
    b = fake_batch(B=1, n=3, U=8)
    y = torch.zeros(1, 3, 8)
    y[..., [0, 1, 2]] = -1  # the "up" region is fully unknown
    y[0, 0, 3] = -1  # "mid" unknown on frame 0 only
    out = m.net(b["frames"])
    t = encode_region_classes(y, m.layout)
    assert t[0, :, 0].tolist() == [-1, -1, -1] and t[0, :, 1].tolist() == [-1, 0, 0] and t[0, :, 2].tolist() == [0, 0, 0]
    _, logs = m.losses(b["frames"], y)
    with torch.no_grad():
        mid = F.cross_entropy(out.aux_logits[1][0, 1:], torch.zeros(2, dtype=torch.long))
        down = F.cross_entropy(out.aux_logits[2][0], torch.zeros(3, dtype=torch.long))
    assert logs["aux_ce"] == pytest.approx(((mid + down) / 2).item(), rel=1e-4)


def test_short_cpu_training_loop_loss_falls():
    m = make(clip_len=4)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=5e-4)
    batch = fake_batch(B=2, n=4, size=32)  # 32 px → a 1×1 token grid: the smallest valid input, fast on CPU
    m.train()
    losses = []
    for step in range(10):
        out = m.train_step(batch, ctx(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def _manual_clips(m, frames, L):
    """Reference: pad the video to whole clips by repeating the last frame, run the full network per clip."""
    T = frames.shape[0]
    pad = (-T) % L
    x = torch.cat([frames, frames[-1:].expand(pad, *frames.shape[1:])])
    with torch.no_grad():
        return m.net(x.reshape(-1, L, *frames.shape[1:])).probs.reshape(-1, m.info.num_aus)[:T]


@pytest.mark.parametrize("chunk", [3, 5, 16])
def test_predict_video_nonoverlapping_clips_with_padding(chunk):
    m = make(clip_len=4).eval()
    frames = torch.randn(11, 3, 64, 64)
    chunks = [frames[i : i + chunk] for i in range(0, 11, chunk)]
    got = m.predict_video(iter(chunks), 11)
    assert got.shape == (11, 12)
    assert torch.allclose(got, _manual_clips(m, frames, 4), atol=1e-5)
    # padding: the last clip holds frames 8, 9, 10 and a copy of frame 10; its output is dropped
    assert torch.all((got >= 0) & (got <= 1))


def test_predict_frames_short_video():
    m = make(clip_len=4).eval()
    frames = torch.randn(2, 3, 64, 64)
    assert torch.allclose(m.predict_frames(frames), _manual_clips(m, frames, 4), atol=1e-5)


@pytest.mark.parametrize("name", ["synthetic", "bp4d", "disfa"])
def test_config_files_load(name):
    from pathlib import Path

    from auspread.engine.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / f"mdhr_{name}.yaml")
    assert cfg.method.name == "mdhr" and cfg.method.lam == 0.01 and cfg.method.k == 5
    assert (cfg.optim.optimizer, cfg.optim.weight_decay, cfg.optim.schedule) == ("adamw", 5e-4, "cosine")
    if name != "synthetic":  # the official recipe (reference B.9)
        assert (cfg.method.backbone, cfg.method.clip_len, cfg.optim.lr, cfg.optim.batch_size) == ("resnet50", 16, 1e-4, 8)
        assert (cfg.data.image_size, cfg.data.resolved_store_size, cfg.data.augment.rotation) == (224, 256, 0)


# --- end to end through the engine and the data pipeline -----------------------------------------------------------
@pytest.mark.slow
def test_trains_end_to_end_on_tiny_synthetic(tmp_path):
    """`auspread train method=mdhr` on the synthetic `tiny` preset: video windows from auspread.data.sampling, 50%
    labels, whole-video evaluation through predict_video. The 8 training videos make one batch, so every epoch is one
    step over all of them (fresh random windows): the supervised loss falls, both loss terms are logged."""
    import math

    from auspread.engine.config import load_config
    from auspread.engine.run import run_training

    cfg = load_config(None, [
        "method.name=mdhr", "method.backbone=resnet18", "method.width=16", "method.mfd_channels=16",
        "method.clip_len=4", "data.synth_preset=tiny", "data.image_size=32", "data.labels=50%", "data.val_fraction=0",
        "optim.epochs=10", "optim.batch_size=8", "optim.optimizer=adamw", "optim.lr=0.002", "optim.weight_decay=0.0005",
        "threads=1", f"out_dir={tmp_path}",
    ])
    s = run_training(cfg, progress=False)
    assert len(s.history) == 10 and all(math.isfinite(h["loss"]) for h in s.history)
    for key in ("wa", "aux_ce", "known"):
        assert key in s.history[-1], sorted(s.history[-1])
    assert 0.0 < s.history[-1]["known"] < 1.0  # 50% labels: some frames hidden
    wa = [h["wa"] for h in s.history]
    assert sum(wa[-3:]) / 3 < 0.85 * sum(wa[:3]) / 3, wa
    assert 0.0 <= s.test_f1 <= 1.0


def test_bf16_channels_last_training_step_and_prediction():
    """The configs train with bf16 autocast and channels-last: losses are float32 and finite, gradients flow, and
    predictions are float probabilities."""
    m = make(clip_len=3).to(memory_format=torch.channels_last)
    b = fake_batch(B=1, n=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = m.losses(b["frames"], b["labels"])
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert m.net.mfd.proj[0].weight.grad is not None and torch.isfinite(m.net.mfd.proj[0].weight.grad).all()
    m.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p = m.predict_video(iter([torch.randn(4, 3, 64, 64)]), 4)
    assert p.dtype == torch.float32 and p.shape == (4, 12) and torch.all((p >= 0) & (p <= 1))


def test_state_dict_round_trip_is_strict():
    """A checkpoint rebuilds the same model: derived buffers (band order, adjacency) are not saved, weights are."""
    a, b = make(), make()
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.01)
    b.load_state_dict(a.state_dict(), strict=True)
    frames = torch.randn(4, 3, 64, 64)
    a.eval(), b.eval()
    assert torch.equal(a.predict_frames(frames), b.predict_frames(frames))
    assert not any(k.endswith(("_inverse", ".base")) for k in a.state_dict())
