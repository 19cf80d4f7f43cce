"""Clip-consistent augmentation: one draw per clip, landmarks follow the pixels, test transform, strong view."""


import numpy as np
import pytest
import torch

from auspread.data.transforms import (FLIP_5, FLIP_66, FLIP_68, IMAGENET_MEAN, IMAGENET_STD, ClipTransform,
                                      StrongClipTransform, flip_permutation)
from auspread.engine.config import AugmentConfig

ID = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def noise_clip(n=3, s=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, s, s, 3), dtype=np.uint8)


def centroid(img):
    g = img.mean(0)
    ys, xs = torch.meshgrid(torch.arange(g.shape[0]).float(), torch.arange(g.shape[1]).float(), indexing="ij")
    return float((g * xs).sum() / g.sum()), float((g * ys).sum() / g.sum())


def dot_clip(s, x, y, n=2):
    img = np.zeros((n, s, s, 3), np.uint8)
    img[:, y - 1:y + 2, x - 1:x + 2] = 255
    lm = np.zeros((n, 68, 2), np.float32)
    lm[:, 36] = [x, y]
    return img, lm


def test_flip_permutations_are_mirror_involutions():
    for perm, p in ((FLIP_68, 68), (FLIP_66, 66), (FLIP_5, 5)):
        assert sorted(perm) == list(range(p))
        assert all(perm[perm[i]] == i for i in range(p))
    assert FLIP_68[36] == 45 and FLIP_68[0] == 16 and FLIP_68[8] == 8 and FLIP_68[48] == 54 and FLIP_68[33] == 33
    # 66 points = iBUG-68 without 60 and 64: 0..59 unchanged, 60..65 = iBUG 61, 62, 63, 65, 66, 67
    assert FLIP_66[:60] == FLIP_68[:60]
    assert FLIP_66[60:] == [62, 61, 60, 65, 64, 63]
    with pytest.raises(ValueError):
        flip_permutation(7)


@pytest.mark.parametrize("crop", [True, False])
def test_landmarks_follow_pixels(crop):
    s, h = 64, 48
    img, lm = dot_clip(s, 40, 20)
    t = ClipTransform(h, AugmentConfig(rotation=45, color_jitter=0, crop=crop), train=True, **ID)
    flips = set()
    for seed in range(8):
        x, out = t(img, lm, np.random.default_rng(seed))
        p = t.draw(np.random.default_rng(seed), s)
        flips.add(p["flip"])
        idx = 45 if p["flip"] else 36  # on a flip the point's index is mirrored (left eye ↔ right eye)
        cx, cy = centroid(x[0])
        assert out[0, idx, 0].item() == pytest.approx(cx, abs=0.35)
        assert out[0, idx, 1].item() == pytest.approx(cy, abs=0.35)
        assert torch.equal(x[0], x[1])  # identical frames stay identical
        assert torch.equal(out[0], out[1])
    assert flips == {True, False}


def test_rotation_direction_counter_clockwise():
    s = 33
    t = ClipTransform(s, AugmentConfig(rotation=90, color_jitter=0, crop=True), train=True, **ID)
    img, lm = dot_clip(s, 26, 16, n=1)  # right of the centre (16, 16)
    p = {"angle": 90.0, "ox": 0, "oy": 0, "flip": False, "b": 1, "c": 1, "s": 1}
    x = t._geometry(torch.from_numpy(img).permute(0, 3, 1, 2)[None].float() / 255, [p])[0]
    cx, cy = centroid(x[0])
    assert (cx, cy) == pytest.approx((16, 6), abs=0.05)  # moved up on screen
    assert t._landmarks(torch.from_numpy(lm), p, s)[0, 36].tolist() == pytest.approx([16, 6], abs=1e-4)


def test_one_draw_per_clip_for_distinct_frames():
    clip = noise_clip(3)
    t = ClipTransform(32, AugmentConfig(), train=True)
    whole, _ = t(clip, rng=np.random.default_rng(7))
    for i in range(3):
        single, _ = t(clip[i:i + 1], rng=np.random.default_rng(7))
        torch.testing.assert_close(whole[i], single[0])
    again, _ = t(clip, rng=np.random.default_rng(7))
    assert torch.equal(whole, again)
    other, _ = t(clip, rng=np.random.default_rng(8))
    assert not torch.equal(whole, other)


def test_draw_ranges():
    a = AugmentConfig(rotation=10, color_jitter=0.2)
    t = ClipTransform(32, a, train=True)
    draws = [t.draw(np.random.default_rng(i), 40) for i in range(300)]
    assert all(abs(d["angle"]) <= 10 for d in draws) and max(abs(d["angle"]) for d in draws) > 8
    for k in "bcs":
        v = [d[k] for d in draws]
        assert min(v) >= 0.8 and max(v) <= 1.2 and max(v) - min(v) > 0.3
    assert {d["ox"] for d in draws} == set(range(9))
    with pytest.raises(ValueError):
        t.draw(np.random.default_rng(0), 20)  # cannot crop 32 out of 20


def test_no_augmentation_is_exact_crop():
    clip = noise_clip(2, s=40)
    t = ClipTransform(32, AugmentConfig(rotation=0, flip=False, color_jitter=0, crop=True), train=True, **ID)
    x, _ = t(clip, rng=np.random.default_rng(0))
    p = t.draw(np.random.default_rng(0), 40)
    ref = torch.from_numpy(clip[:, p["oy"]:p["oy"] + 32, p["ox"]:p["ox"] + 32]).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(x, ref)


def test_colour_jitter_applied_once_per_clip():
    clip = np.full((2, 32, 32, 3), 100, np.uint8)
    clip[:, :16] = 50
    t = ClipTransform(32, AugmentConfig(rotation=0, flip=False, color_jitter=0.4, crop=True), train=True, **ID)
    x, _ = t(clip, rng=np.random.default_rng(1))
    p = t.draw(np.random.default_rng(1), 32)
    # brightness then contrast (about the grey mean) then saturation (grey image: no effect)
    v = np.array([50, 100]) / 255 * p["b"]
    m = v.mean()
    expect = np.clip((v - m) * p["c"] + m, 0, 1)
    assert x[0, 0, 0, 0].item() == pytest.approx(expect[0], abs=1e-5)
    assert x[0, 0, 31, 0].item() == pytest.approx(expect[1], abs=1e-5)
    assert torch.equal(x[0], x[1])


def test_test_transform_is_normalised_resize():
    clip = noise_clip(2, s=40)
    t = ClipTransform(32, train=False)
    x, lm = t(clip, np.array([[[0.0, 0.0], [39.5, 19.5]]] * 2, np.float32))
    import torchvision.transforms.v2.functional as F

    ref = F.resize(torch.from_numpy(clip).permute(0, 3, 1, 2), [32, 32], antialias=True).float() / 255
    ref = (ref - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, ref)
    assert lm[0, 1].tolist() == pytest.approx([31.5, 15.5])  # right edge → right edge; (x+½)·H/S − ½
    x2, _ = ClipTransform(40, train=False)(clip)
    assert x2.shape == (2, 3, 40, 40)


def test_strong_view():
    clip = noise_clip(1, s=40)
    clip = np.concatenate([clip, clip])
    t = StrongClipTransform(32, AugmentConfig())
    weak = ClipTransform(32, AugmentConfig(), train=True)
    seen_diff = 0
    for seed in range(6):
        x, none = t(clip, rng=np.random.default_rng(seed))
        assert none is None and x.shape == (2, 3, 32, 32)
        assert torch.equal(x[0], x[1])
        again, _ = t(clip, rng=np.random.default_rng(seed))
        assert torch.equal(x, again)
        w, _ = weak(clip, rng=np.random.default_rng(seed))
        seen_diff += not torch.allclose(w, x)
    assert seen_diff >= 4
    for op in StrongClipTransform.OPS:  # every op runs on a clip and keeps the range
        y = t._op(torch.rand(2, 3, 16, 16), op, 0.8)
        assert y.shape == (2, 3, 16, 16) and 0 <= y.min() and y.max() <= 1


@pytest.mark.parametrize("rotation", [0.0, 30.0])
def test_batch_apply_equals_clip_by_clip(rotation):
    clips = np.stack([noise_clip(3, s=40, seed=i) for i in range(4)])
    lm = np.random.default_rng(0).uniform(0, 40, size=(4, 3, 68, 2)).astype(np.float32)
    for train in (True, False):
        t = ClipTransform(32, AugmentConfig(rotation=rotation), train=train)
        xb, lb = t.apply(clips, lm, np.random.default_rng(5))
        rng = np.random.default_rng(5)
        for i in range(4):
            xi, li = t(clips[i], lm[i], rng)
            torch.testing.assert_close(xb[i], xi)
            torch.testing.assert_close(lb[i], li)


def test_vectorised_colour_matches_torchvision():
    import torchvision.transforms.v2.functional as F

    x = torch.rand(2, 3, 3, 16, 16)
    t = ClipTransform(16, AugmentConfig(color_jitter=0.4), train=True)
    ps = [{"b": 1.3, "c": 0.7, "s": 1.2}, {"b": 0.8, "c": 1.35, "s": 0.65}]
    got = t._colour(x.clone(), ps)
    for i, p in enumerate(ps):
        ref = F.adjust_saturation(F.adjust_contrast(F.adjust_brightness(x[i], p["b"]), p["c"]), p["s"])
        torch.testing.assert_close(got[i], ref, atol=2e-6, rtol=0)


@pytest.mark.parametrize("crop", [True, False])
def test_train_and_test_face_scale(crop):
    """The default random crop (H out of the S = 8/7·H store frame) shows faces at the store's scale in training and
    at H/S of it in testing (resize); `augment.crop: false` resizes in training too, so both see one scale."""
    s, h = 37, 32
    img, lm = dot_clip(s, 10, 18)
    lm[:, 45] = [28, 18]  # a second point 18 px to the right
    plain = dict(rotation=0, flip=False, color_jitter=0, crop=crop)
    _, lm_train = ClipTransform(h, AugmentConfig(**plain), train=True, **ID)(img, lm, np.random.default_rng(0))
    _, lm_test = ClipTransform(h, AugmentConfig(**plain), train=False, **ID)(img, lm, np.random.default_rng(0))
    span = lambda p: float(p[0, 45, 0] - p[0, 36, 0])  # noqa: E731
    assert span(lm_test) == pytest.approx(18 * h / s, abs=1e-4)
    assert span(lm_train) == pytest.approx(18.0 if crop else 18 * h / s, abs=1e-4)
