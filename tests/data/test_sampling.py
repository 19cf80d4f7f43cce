"""Training batches: one label per key-frame clip, key-frame shifting, shards, unlabelled clips, chunks."""


import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from auspread.data.index import ImageFiles, VideoIndex, VideoRecord
from auspread.data.labels import sparsify
from auspread.data.sampling import TrainBatches, allowed_positions, assign_shifted, video_chunks
from auspread.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform
from auspread.engine.config import AugmentConfig, DataConfig
from auspread.errors import DataError
from auspread.methods.base import DataSpec

S = 32
PLAIN = DataConfig(image_size=S, store_size=S, augment=AugmentConfig(rotation=0, flip=False, color_jitter=0))


class PixelStore:
    """A frame store whose pixels encode (video, frame): R = video, G = t % 256, B = t // 256."""

    size = S

    def __init__(self, index):
        self.lengths = [len(v) for v in index.videos]

    def __len__(self):
        return len(self.lengths)

    def num_frames(self, v):
        return self.lengths[v]

    def source_size(self, v):
        return (2 * S, 2 * S)

    def frames(self, v, pos):
        pos = np.asarray(pos)
        out = np.zeros((len(pos), S, S, 3), np.uint8)
        out[..., 0] = v
        out[..., 1] = (pos % 256)[:, None, None]
        out[..., 2] = (pos // 256)[:, None, None]
        return out


def decode(frames):
    """(B, n, 3, H, W) normalised → (B, n) video ids and frame positions read back from the pixels."""
    x = frames[..., 0, 0] * torch.tensor(IMAGENET_STD) + torch.tensor(IMAGENET_MEAN)
    x = torch.round(x * 255).long()
    return x[..., 0], x[..., 1] + 256 * x[..., 2]


def make_index(lengths, num_aus=3, seed=0, unlabelled=(), landmarks=False):
    rng = np.random.default_rng(seed)
    vids = []
    for i, t in enumerate(lengths):
        lab = rng.integers(0, 2, size=(t, num_aus)).astype(np.int8)
        if i in unlabelled:
            lab[:] = -1
        lm = rng.uniform(0, 2 * S, size=(t, 68, 2)).astype(np.float32) if landmarks else None
        vids.append(VideoRecord(f"S{i // 2}/T{i}", f"S{i // 2}", f"T{i}", np.arange(t), lab,
                                ImageFiles(tuple(f"/x/{i}/{j}.png" for j in range(t))), landmarks=lm))
    return VideoIndex("test", tuple(range(1, num_aus + 1)), vids, fps=25.0)


def batches(idx, every=3, spec=DataSpec(clip_len=5), bs=4, seed=0, cfg=PLAIN, **kw):
    sp = sparsify(idx, every, seed=1)
    return sp, TrainBatches(idx, sp.key_frames, PixelStore(idx), spec, cfg, bs, seed, **kw)


def check_pixels(b):
    v, f = decode(b["frames"])
    assert torch.equal(v, b["video"][:, None].expand_as(v))
    assert torch.equal(f, b["frame"])


def test_key_frame_clips_one_label_each():
    idx = make_index([40, 23, 31])
    sp, tb = batches(idx, every=3)
    seen = []
    for b in tb:
        check_pixels(b)
        B, n, U = b["labels"].shape
        assert (B, n, U) == (4, 5, 3) and b["frames"].shape == (4, 5, 3, S, S)
        known = (b["labels"] >= 0).any(-1)
        assert torch.equal(known.sum(1), torch.ones(B, dtype=torch.long))  # exactly one label per clip
        assert torch.equal(known.float().argmax(1), b["key_pos"])
        for i in range(B):
            v, k = int(b["video"][i]), int(b["key_pos"][i])
            t = int(b["frame"][i, k])
            np.testing.assert_array_equal(b["labels"][i, k].numpy(), idx.videos[v].labels[t])
            np.testing.assert_array_equal(b["true_labels"][i].numpy(), idx.videos[v].labels[b["frame"][i].numpy()])
            assert torch.equal(b["frame"][i], b["frame"][i, 0] + torch.arange(5))  # inside the video, consecutive
            seen.append((v, t))
        assert b["subject"].tolist() == [v // 2 for v in b["video"].tolist()]
    keys = {tuple(k) for k in sp.key_frames.tolist()}
    assert set(seen) == keys and len(seen) == len(tb) * 4  # every key frame once (last step filled by repeats)
    assert len(tb) == -(-len(keys) // 4)


def test_key_frame_shift_balanced_and_inside():
    idx = make_index([12, 9, 30, 6, 17])
    sp, tb = batches(idx, every=2, spec=DataSpec(clip_len=5, key_frame_shift=True), bs=3)
    border = 0
    for epoch in range(3):
        tb.set_epoch(epoch)
        seen, steps_per_m = [], np.zeros(5, int)
        for b_i, b in enumerate(tb):
            check_pixels(b)
            assert (b["key_pos"] == b_i % 5).all()  # every clip of batch b has its key at m = b mod n
            assert ((b["frame"][:, 1:] - b["frame"][:, :-1]) == 1).all()  # windows inside the video
            steps_per_m[b_i % 5] += 1
            seen += [(int(b["video"][i]), int(b["frame"][i, b_i % 5])) for i in range(3)]
            border += int(((b["frame"][:, 0] == 0) | (b["frame"][:, -1] == torch.tensor(
                [len(idx.videos[v]) - 1 for v in b["video"].tolist()]))).sum())
        assert {tuple(k) for k in sp.key_frames.tolist()} == set(seen)
        assert steps_per_m.max() - steps_per_m.min() <= 1  # key positions balanced over the epoch
    assert border > 0  # border key frames were placed at batches whose m fits them


def test_random_key_position_without_shift():
    idx = make_index([12, 9, 30])
    _, tb = batches(idx, every=1, spec=DataSpec(clip_len=5), bs=8)
    pos = torch.cat([b["key_pos"] for b in tb])
    assert set(pos.tolist()) == set(range(5))
    for b in tb:
        assert ((b["frame"][:, 1:] - b["frame"][:, :-1]) == 1).all()


def test_assign_shifted_edf():
    rng = np.random.default_rng(0)
    lo = np.array([0, 0, 2, 0, 0, 0])
    hi = np.array([0, 1, 2, 2, 2, 2])
    m = assign_shifted(lo, hi, np.array([2, 2, 2]), rng)
    assert np.bincount(m, minlength=3).tolist() == [2, 2, 2]
    assert m[0] == 0 and m[1] <= 1 and m[2] == 2
    # impossible constraints fall back to any free position, counts still exact
    m = assign_shifted(np.array([0, 0, 0]), np.array([0, 0, 0]), np.array([1, 1, 1]), rng)
    assert sorted(m.tolist()) == [0, 1, 2]
    lo, hi = allowed_positions(np.array([0, 1, 9, 2]), np.array([10, 10, 10, 3]), 5)
    assert lo.tolist() == [0, 0, 4, 2] and hi.tolist() == [0, 1, 4, 4]


def test_all_frames_masks_hidden_labels():
    idx = make_index([10, 7], unlabelled=(1,))
    sp, tb = batches(idx, every=4, spec=DataSpec(clip_len=1, sampling="all_frames"), bs=5)
    key = {tuple(k) for k in sp.key_frames.tolist()}
    seen = []
    for b in tb:
        check_pixels(b)
        for i in range(len(b["video"])):
            v, t = int(b["video"][i]), int(b["frame"][i, 0])
            seen.append((v, t))
            true = idx.videos[v].labels[t]
            np.testing.assert_array_equal(b["true_labels"][i, 0].numpy(), true)
            if (v, t) in key:
                np.testing.assert_array_equal(b["labels"][i, 0].numpy(), true)
                assert b["key_pos"][i] == 0
            else:
                assert (b["labels"][i] == -1).all() and b["key_pos"][i] == -1
    assert set(seen) == {(v, t) for v in range(2) for t in range(len(idx.videos[v]))}


def test_video_windows():
    idx = make_index([20, 15, 3, 30], unlabelled=(3,))
    sp, tb = batches(idx, every=1, spec=DataSpec(clip_len=4, sampling="video_windows"), bs=2)
    assert len(tb) == 2  # videos 0, 1, 2 have labels; video 3 has none
    vids = []
    for b in tb:
        check_pixels(b)
        for i in range(2):
            v = int(b["video"][i])
            vids.append(v)
            f = b["frame"][i].numpy()
            if v == 2:  # 3 frames < n = 4: padded with the last frame, copies unlabelled
                assert f.tolist() == [0, 1, 2, 2] and (b["labels"][i, 3] == -1).all()
                assert (b["true_labels"][i, 3] == -1).all()
            else:
                assert (np.diff(f) == 1).all()
                np.testing.assert_array_equal(b["labels"][i].numpy(), idx.videos[v].labels[f])
            assert b["key_pos"][i] == 0
    assert sorted(vids[:3]) == [0, 1, 2]


def test_epochs_deterministic_and_reshuffled():
    idx = make_index([30, 30])
    _, a = batches(idx, every=2, seed=3)
    _, b = batches(idx, every=2, seed=3)
    a.set_epoch(1), b.set_epoch(1)
    for x, y in zip(a, b):
        for k in x:
            assert torch.equal(x[k], y[k])
    first1 = next(iter(a))["frame"]
    a.set_epoch(2)
    assert not torch.equal(next(iter(a))["frame"], first1)
    a.set_epoch(1)
    assert torch.equal(next(iter(a))["frame"], first1)


def test_shards_disjoint_equal_length():
    idx = make_index([25, 18, 11])
    spec = DataSpec(clip_len=3, key_frame_shift=True)
    sp, r0 = batches(idx, every=2, spec=spec, bs=2, rank=0, world_size=2)
    _, r1 = batches(idx, every=2, spec=spec, bs=2, rank=1, world_size=2)
    assert len(r0) == len(r1)
    total = len(sp.key_frames)
    for epoch in (0, 1):
        r0.set_epoch(epoch), r1.set_epoch(epoch)
        s0, s1 = [], []
        for b0, b1 in zip(r0, r1):
            assert torch.equal(b0["key_pos"], b1["key_pos"])  # same m on both ranks at the same step
            s0 += [(int(v), int(f[k])) for v, f, k in zip(b0["video"], b0["frame"], b0["key_pos"])]
            s1 += [(int(v), int(f[k])) for v, f, k in zip(b1["video"], b1["frame"], b1["key_pos"])]
        pad = len(r0) * 4 - total  # repeats that fill the last step
        assert len(set(s0) & set(s1)) <= pad
        assert set(s0) | set(s1) == {tuple(k) for k in sp.key_frames.tolist()}


def test_unlabelled_nested_batch():
    idx = make_index([30, 20, 25], unlabelled=(2,))
    spec = DataSpec(clip_len=5, key_frame_shift=True, unlabelled_ratio=1.5, unlabelled_from_epoch=1)
    sp, tb = batches(idx, every=4, spec=spec, bs=4)
    assert "unlabelled" not in next(iter(tb))  # before unlabelled_from_epoch nothing is decoded
    tb.set_epoch(1)
    key = {tuple(k) for k in sp.key_frames.tolist()}
    vids = set()
    for b_i, b in enumerate(tb):
        u = b["unlabelled"]
        check_pixels(u)
        assert u["frames"].shape == (6, 5, 3, S, S)
        assert (u["labels"] == -1).all() and (u["key_pos"] == -1).all()
        m = b_i % 5
        for i in range(6):
            v, t = int(u["video"][i]), int(u["frame"][i, m])
            vids.add(v)
            at_border = u["frame"][i, 0] == 0 or u["frame"][i, -1] == len(idx.videos[v]) - 1
            # the clip is drawn around a non-key frame, placed at the batch's m unless the window hit a border
            assert (v, t) not in key or at_border
            np.testing.assert_array_equal(u["true_labels"][i].numpy(), idx.videos[v].labels[u["frame"][i].numpy()])
    assert 2 in vids  # the fully unlabelled video feeds unlabelled clips


def test_unlabelled_pool_with_all_labels():
    idx = make_index([8, 8])
    _, tb = batches(idx, every=1, spec=DataSpec(clip_len=1, unlabelled_ratio=1.0), bs=2)
    u = next(iter(tb))["unlabelled"]
    assert u["frames"].shape[0] == 2 and (u["labels"] == -1).all()


def test_strong_view_and_landmarks():
    idx = make_index([12, 10], landmarks=True)
    spec = DataSpec(clip_len=2, strong_view=True, landmarks=True, unlabelled_ratio=1.0)
    _, tb = batches(idx, every=2, spec=spec, bs=3)
    b = next(iter(tb))
    assert b["strong"].shape == b["frames"].shape and b["landmarks"].shape == (3, 2, 68, 2)
    assert b["unlabelled"]["strong"].shape == b["unlabelled"]["frames"].shape
    # no augmentation and S = store size: landmarks are the source points scaled by S / source size
    v, f = int(b["video"][0]), b["frame"][0].numpy()
    src = idx.videos[v].landmarks[f]
    np.testing.assert_allclose(b["landmarks"][0].numpy(), (src + 0.5) * S / (2 * S) - 0.5, atol=1e-4)
    bad = make_index([12])
    with pytest.raises(DataError, match="landmarks"):
        batches(bad, spec=spec)


def test_dataloader_workers_same_batches():
    idx = make_index([20, 14])
    cfg = PLAIN.model_copy(update={"num_workers": 1, "augment": AugmentConfig()})
    spec = DataSpec(clip_len=3, strong_view=True)
    _, a = batches(idx, every=2, spec=spec, cfg=cfg)
    _, b = batches(idx, every=2, spec=spec, cfg=PLAIN.model_copy(update={"augment": AugmentConfig()}))
    for x, y in zip(a, b):
        for k in ("frames", "strong", "labels", "frame"):
            assert torch.equal(x[k], y[k])


def test_no_items_is_a_clear_error():
    idx = make_index([5], unlabelled=(0,))
    with pytest.raises(DataError, match="no training items"):
        batches(idx)


def test_video_chunks_cover_once():
    idx = make_index([11])
    store = PixelStore(idx)
    t = ClipTransform(S, train=False)
    chunks = list(video_chunks(store, 0, t, 4, "cpu"))
    assert [c.shape[0] for c in chunks] == [4, 4, 3]
    _, f = decode(torch.cat(chunks)[None])
    assert f[0].tolist() == list(range(11))
    with pytest.raises(ValueError):
        next(video_chunks(store, 0, ClipTransform(S, train=True), 4))





@settings(max_examples=12, deadline=None)
@given(lengths=st.lists(st.integers(1, 25), min_size=1, max_size=4), every=st.integers(1, 6),
       n=st.integers(1, 5), bs=st.integers(1, 5), shift=st.booleans(), seed=st.integers(0, 3))
def test_invariants_any_shape(lengths, every, n, bs, shift, seed):
    idx = make_index(lengths, seed=seed)
    sp, tb = batches(idx, every=every, spec=DataSpec(clip_len=n, key_frame_shift=shift), bs=bs, seed=seed)
    seen = set()
    for b_i, b in enumerate(tb):
        check_pixels(b)
        known = (b["labels"] >= 0).any(-1)
        assert (known.sum(1) == 1).all()
        for i in range(len(b["video"])):
            v, k = int(b["video"][i]), int(b["key_pos"][i])
            f = b["frame"][i].numpy()
            T = len(idx.videos[v])
            if T >= n:
                assert (np.diff(f) == 1).all() and f[0] >= 0 and f[-1] < T  # inside the video
            t = int(f[k])
            seen.add((v, t))
            if shift and k != b_i % n:  # only an item that cannot sit at m inside its video may miss it
                lo, hi = allowed_positions(np.array([t]), np.array([T]), n)
                assert not lo[0] <= b_i % n <= hi[0]
    assert seen == {tuple(x) for x in sp.key_frames.tolist()}
