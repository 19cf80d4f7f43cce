"""data.augment_on=device: loader workers hand over uint8 frames and their draws; the training process augments
them on its device. On the same device the batches equal the loader path's exactly (every view, every key)."""

import numpy as np
import pytest
import torch

from auspread.data.index import ImageFiles, VideoIndex, VideoRecord
from auspread.data.labels import sparsify
from auspread.data.sampling import TrainBatches
from auspread.data.transforms import ClipTransform, StrongClipTransform
from auspread.engine.config import AugmentConfig, DataConfig
from auspread.methods.base import DataSpec

STORE, IMAGE = 40, 32


class NoiseStore:
    """Random uint8 frames, a pure function of (video, frame)."""

    size = STORE

    def __init__(self, lengths):
        self.lengths = lengths

    def __len__(self):
        return len(self.lengths)

    def num_frames(self, v):
        return self.lengths[v]

    def source_size(self, v):
        return (2 * STORE, 2 * STORE)

    def frames(self, v, pos):
        return np.stack([np.random.default_rng([v, int(p)]).integers(0, 256, (STORE, STORE, 3), dtype=np.uint8)
                         for p in pos])


def make(lengths, augment_on, spec, workers=0):
    rng = np.random.default_rng(0)
    vids = [VideoRecord(f"S{i}/T{i}", f"S{i}", f"T{i}", np.arange(t), rng.integers(0, 2, (t, 3)).astype(np.int8),
                        ImageFiles(tuple(f"/x/{i}/{j}.png" for j in range(t))),
                        landmarks=rng.uniform(0, 2 * STORE, (t, 68, 2)).astype(np.float32))
            for i, t in enumerate(lengths)]
    idx = VideoIndex("test", (1, 2, 3), vids, fps=25.0)
    cfg = DataConfig(image_size=IMAGE, store_size=STORE, augment=AugmentConfig(), augment_on=augment_on,
                     num_workers=workers)
    sp = sparsify(idx, 2, seed=1)
    return TrainBatches(idx, sp.key_frames, NoiseStore(lengths), spec, cfg, 3, seed=0)


def assert_same(a: dict, b: dict):
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], dict):
            assert_same(a[k], b[k])
        else:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("workers", [0, 1])
def test_device_path_equals_loader_path_on_cpu(workers):
    spec = DataSpec(clip_len=3, strong_view=True, landmarks=True, unlabelled_ratio=1.0)
    loader, device = make([14, 11, 9], "loader", spec), make([14, 11, 9], "device", spec, workers)
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        device.set_epoch(epoch)
        n = 0
        for x, y in zip(loader, device):
            assert_same(x, y)
            assert y["frames"].dtype == torch.float32 and "augment" not in y and "strong_plan" not in y
            n += 1
        assert n == len(loader) > 1


def test_loader_hands_over_uint8_and_draws():
    spec = DataSpec(clip_len=2, strong_view=True)
    tb = make([12, 10], "device", spec)
    raw = next(iter(tb.loader()))
    assert raw["frames"].dtype == torch.uint8 and raw["frames"].shape == (3, 2, STORE, STORE, 3)
    assert raw["augment"].shape == (3, 7) and raw["strong_plan"].shape == (3, 7 + 2 * 2 + 3)
    assert "strong" not in raw  # computed on the device from the same uint8 frames
    # 4 bytes per float crop value against 1 per stored value: what crosses to the device
    assert raw["frames"].numel() * 1 < 3 * 2 * 3 * IMAGE * IMAGE * 4


def test_draws_round_trip_through_a_tensor():
    t = ClipTransform(IMAGE)
    rng = np.random.default_rng(3)
    ps = [t.draw(rng, STORE) for _ in range(5)]
    assert t.draws_from_tensor(t.draws_to_tensor(ps)) == ps


def test_strong_plan_replays_the_same_views():
    s = StrongClipTransform(IMAGE)
    u8 = np.random.default_rng(1).integers(0, 256, (4, 2, STORE, STORE, 3), dtype=np.uint8)
    direct, _ = s.apply(u8, None, np.random.default_rng(7))
    plan = s.draw_plan(np.random.default_rng(7), 4, STORE)
    assert torch.equal(s.apply_plan(torch.from_numpy(u8).permute(0, 1, 4, 2, 3), plan), direct)
