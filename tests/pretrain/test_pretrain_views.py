"""Face views and two-view batches of ``auspread pretrain`` (auspread.pretrain.views)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from auspread.pretrain.config import ViewAugment
from auspread.pretrain.views import FaceViews, PretrainBatches

NONE = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), rotation=0.0, flip=False, jitter_p=0.0, grey_p=0.0,
            blur_p=(0.0, 0.0), solarize_p=(0.0, 0.0))


def _frames(b=4, s=16, seed=0):
    return (np.random.default_rng(seed).random((b, s, s, 3)) * 255).astype(np.uint8)


def _unnorm(fv, x):
    return x * fv.std + fv.mean


def test_no_augmentation_is_the_normalised_frame():
    fv = FaceViews(16, ViewAugment(**NONE))
    u8 = _frames()
    x = fv(u8, np.random.default_rng(0))
    ref = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255
    assert x.shape == (4, 3, 16, 16)
    assert torch.allclose(_unnorm(fv, x), ref, atol=1e-5)


def test_flip_mirrors_and_solarize_inverts_bright_pixels():
    u8 = _frames(8)
    ref = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255
    fv = FaceViews(16, ViewAugment(**{**NONE, "flip": True}))
    x = _unnorm(fv, fv(u8, np.random.default_rng(1)))
    flipped = [bool(torch.allclose(x[i], ref[i].flip(-1), atol=1e-5)) for i in range(8)]
    same = [bool(torch.allclose(x[i], ref[i], atol=1e-5)) for i in range(8)]
    assert all(f or s for f, s in zip(flipped, same)) and any(flipped) and any(same)
    fv = FaceViews(16, ViewAugment(**{**NONE, "solarize_p": (0.0, 1.0)}))
    assert torch.allclose(_unnorm(fv, fv(u8, np.random.default_rng(0), view=0)), ref, atol=1e-5)  # view 1: p = 0
    sol = _unnorm(fv, fv(u8, np.random.default_rng(0), view=1))
    assert torch.allclose(sol, torch.where(ref >= 0.5, 1 - ref, ref), atol=1e-5)


def test_grey_and_blur():
    u8 = _frames()
    fv = FaceViews(16, ViewAugment(**{**NONE, "grey_p": 1.0}))
    x = _unnorm(fv, fv(u8, np.random.default_rng(0)))
    assert torch.allclose(x[:, 0], x[:, 1], atol=1e-5) and torch.allclose(x[:, 1], x[:, 2], atol=1e-5)
    fv = FaceViews(16, ViewAugment(**{**NONE, "blur_p": (1.0, 1.0), "blur_sigma": (20.0, 20.0)}))  # σ ≈ 1.4 px at 16 px
    x = _unnorm(fv, fv(u8, np.random.default_rng(0)))
    ref = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255
    assert x.std() < 0.6 * ref.std()  # white noise loses most of its variance
    assert abs(float(x.mean() - ref.mean())) < 0.02  # a normalised kernel keeps the mean


def test_views_are_a_pure_function_of_the_generator_and_default_recipe_runs():
    fv = FaceViews(24, ViewAugment())
    u8 = _frames(6, 28)
    a, b = fv(u8, np.random.default_rng(5), 0), fv(u8, np.random.default_rng(5), 0)
    assert torch.equal(a, b) and a.shape == (6, 3, 24, 24) and torch.isfinite(a).all()
    assert not torch.equal(a, fv(u8, np.random.default_rng(6), 0))


class _Store:
    """Frame v, t is filled with the value (7·v + t) mod 256."""

    def __init__(self, lengths, s=12):
        self.lengths, self.s = lengths, s

    def __len__(self):
        return len(self.lengths)

    def frames(self, v, pos):
        return np.stack([np.full((self.s, self.s, 3), (7 * v + int(t)) % 256, np.uint8) for t in pos])


def _batches(offset=2, rank=0, world=1, lengths=(5, 9, 3)):
    index = SimpleNamespace(videos=[list(range(t)) for t in lengths], root=None, dataset="X")
    return PretrainBatches(index, _Store(list(lengths)), 8, ViewAugment(**NONE), offset, batch_size=4, seed=3,
                           rank=rank, world_size=world)


def test_pairs_are_neighbouring_frames_of_one_video_and_batches_are_pure():
    bt = _batches(offset=2)
    assert len(bt) == 5  # 17 frames / 4
    seen = set()
    for step in range(len(bt)):
        b = bt.batch(step)
        assert b["frames"].shape == (4, 2, 3, 8, 8)
        f, v = b["frame"], b["video"]
        assert ((f[:, 1] - f[:, 0]).abs() <= 2).all()
        assert ((f >= 0) & (f < torch.tensor([5, 9, 3])[v][:, None])).all()
        seen |= {(int(a), int(t)) for a, t in zip(v, f[:, 0])}
        assert torch.equal(b["frames"], bt.batch(step)["frames"])  # (seed, epoch, step) decide a batch
    assert len(seen) == 17  # an epoch visits every frame
    same = _batches(offset=0).batch(0)["frame"]
    assert torch.equal(same[:, 0], same[:, 1])


def test_ranks_get_disjoint_slices():
    a, b = _batches(rank=0, world=2), _batches(rank=1, world=2)
    assert len(a) == len(b) == 3
    for step in range(2):
        ka = {(int(v), int(t)) for v, t in zip(a.batch(step)["video"], a.batch(step)["frame"][:, 0])}
        kb = {(int(v), int(t)) for v, t in zip(b.batch(step)["video"], b.batch(step)["frame"][:, 0])}
        assert not ka & kb


def _video_batches(m, rank=0, world=1, lengths=(20, 9, 0, 30), batch=4):
    index = SimpleNamespace(videos=[list(range(t)) for t in lengths], root=None, dataset="X")
    return PretrainBatches(index, _Store(list(lengths)), 8, ViewAugment(**NONE), 0, batch_size=batch, seed=3,
                           rank=rank, world_size=world, frames_per_video=m)


def test_frames_per_video_groups_frames_spread_over_each_video():
    bt = _video_batches(4)
    lengths = torch.tensor([20, 9, 0, 30])
    for step in range(len(bt)):
        b = bt.batch(step)
        v, f = b["video"], b["frame"][:, 0]
        assert b["frames"].shape == (4, 2, 3, 8, 8) and len(set(v.tolist())) == 1  # one video, 4 of its frames
        n = int(lengths[v[0]])
        assert n > 0  # an empty video is never drawn
        k = torch.arange(4)  # one frame in each quarter of the video: floor(k n/4) <= t_k < (k+1) n/4
        assert ((f >= torch.floor(k * n / 4)) & (f < (k + 1) * n / 4)).all(), (n, f)
        assert torch.equal(b["frame"][:, 0], b["frame"][:, 1])  # temporal_offset 0: two views of one frame
        assert torch.equal(b["frames"], bt.batch(step)["frames"])  # pure in (seed, epoch, step)
    two = _video_batches(2, batch=4).batch(0)["video"]
    assert two[0] == two[1] and two[2] == two[3]
    with pytest.raises(ValueError, match="multiple of frames_per_video"):
        _video_batches(3)


def test_frames_per_video_ranks_take_different_videos_of_one_draw():
    a, b = _video_batches(2, rank=0, world=2, batch=2), _video_batches(2, rank=1, world=2, batch=2)
    one = _video_batches(2, rank=0, world=1, batch=4)
    for step in range(3):
        both = torch.cat([a.batch(step)["frame"], b.batch(step)["frame"]])
        vids = torch.cat([a.batch(step)["video"], b.batch(step)["video"]])
        # the two ranks' rows are the single-process batch of twice the size, split in two
        assert torch.equal(vids, one.batch(step)["video"]) and torch.equal(both, one.batch(step)["frame"])
