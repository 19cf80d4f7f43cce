"""AU effects are local (FACS regions), graded (subtle < large) and the landmarks follow the pixels."""

import dataclasses

import numpy as np
import pytest

from auspread.data.synth import GENERATED_AUS, resolve_config
from auspread.data.synth.effects import LARGE_AUS, SUBTLE_AUS, au_region_box, displace_points
from auspread.data.synth.generator import make_subject, pick_subjects, subject_assets
from auspread.data.synth.nuisance import no_nuisance, sample_nuisance
from auspread.data.synth.render import render_frames, warp_expression

S = 64


@pytest.fixture(scope="module")
def assets():
    cfg = resolve_config("tiny", "bp4d", seed=0)
    return [subject_assets(cfg, make_subject(cfg, sid), size=S)[0] for sid in pick_subjects("bp4d", 3)]


@pytest.fixture(scope="module")
def big_assets():
    cfg = resolve_config("tiny", "bp4d", seed=0)
    return subject_assets(cfg, make_subject(cfg, "F007"), size=128)[0]


def _each_au_at_5(a):
    w = np.zeros((len(GENERATED_AUS) + 1, len(GENERATED_AUS)), np.float32)
    for j in range(len(GENERATED_AUS)):
        w[j + 1, j] = 1.0  # intensity 5
    im = warp_expression(a, w)
    return {au: np.abs(im[j + 1] - im[0]).sum(-1) for j, au in enumerate(GENERATED_AUS)}


def test_each_au_changes_pixels_mostly_inside_its_region(assets):
    yy, xx = np.mgrid[0:S, 0:S]
    for a in assets:
        for au, d in _each_au_at_5(a).items():
            assert d.sum() > 1.0, f"AU{au} changes nothing"
            x0, y0, x1, y1 = au_region_box(au, a.landmarks, a.unit)
            inside = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
            frac = d[inside].sum() / d.sum()
            assert frac >= 0.8, f"AU{au}: only {frac:.2f} of the change inside its region"
            assert inside.mean() < 0.35  # the region is a local part of the frame, not everything


def test_regions_separate_upper_and_lower_face(assets):
    a = assets[0]
    d = _each_au_at_5(a)
    brow_box = au_region_box(1, a.landmarks, a.unit)
    mouth_box = au_region_box(25, a.landmarks, a.unit)
    assert brow_box[3] < mouth_box[1]
    y_split = int((brow_box[3] + mouth_box[1]) / 2)
    assert d[1][y_split:].sum() < 0.05 * d[1].sum()  # AU1 does not touch the mouth
    assert d[25][:y_split].sum() < 0.05 * d[25].sum()  # AU25 does not touch the brows


def test_subtle_aus_change_less_than_large_ones(assets):
    for a in assets:
        d = _each_au_at_5(a)
        subtle = max(d[au].sum() for au in SUBTLE_AUS)
        large = min(d[au].sum() for au in LARGE_AUS)
        assert subtle < large, (subtle, large)


def test_intensity_is_graded(assets):
    a = assets[1]
    j = GENERATED_AUS.index(12)
    w = np.zeros((4, len(GENERATED_AUS)), np.float32)
    w[:, j] = [0, 0.2, 0.6, 1.0]
    im = warp_expression(a, w)
    mass = [np.abs(im[k] - im[0]).sum() for k in range(1, 4)]
    assert mass[0] < mass[1] < mass[2]


def test_landmarks_move_with_aus(assets):
    a = assets[0]
    w = np.zeros((4, len(GENERATED_AUS)), np.float32)
    w[1, GENERATED_AUS.index(12)] = 1
    w[2, GENERATED_AUS.index(26)] = 1
    w[3, GENERATED_AUS.index(1)] = 1
    lm = displace_points(a, w)
    np.testing.assert_allclose(lm[0], a.landmarks)
    assert lm[1, 48, 1] < lm[0, 48, 1] - 1 and lm[1, 48, 0] < lm[0, 48, 0]  # corners up and out
    assert lm[1, 54, 1] < lm[0, 54, 1] - 1 and lm[1, 54, 0] > lm[0, 54, 0]
    assert lm[2, 8, 1] > lm[0, 8, 1] + 1 and lm[2, 57, 1] > lm[0, 57, 1] + 1  # jaw drop
    assert lm[3, 21, 1] < lm[0, 21, 1] - 1 and abs(lm[3, 57, 1] - lm[0, 57, 1]) < 0.05  # inner brow only


@pytest.mark.parametrize("k,au", [(48, 12), (57, 26), (21, 1), (37, 5)])
def test_landmark_follows_the_rendered_pixel_under_pose(big_assets, k, au):
    """Draw a blob at neutral landmark k, render with the AU and a strong head pose: the blob's centroid is where
    the returned landmark says (to < 0.6 px at 128 px; a blob's centroid is slightly biased where the field bends)."""
    a = big_assets
    S = a.size
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    x, y = a.landmarks[k]
    blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.2**2))
    dot = dataclasses.replace(a, neutral=np.repeat(blob[..., None], 3, -1).astype(np.float32),
                              shade=np.zeros_like(a.shade))
    nuis = sample_nuisance(np.random.default_rng(1), 4, 25.0, S, strength=2.5)
    clean = no_nuisance(4)
    nuis = dataclasses.replace(nuis, light_gx=clean.light_gx, light_gy=clean.light_gy, brightness=clean.brightness,
                               noise_sigma=0.0, blur=clean.blur, occluder=clean.occluder)
    assert np.abs(nuis.roll).max() > 3 or np.abs(nuis.tx).max() > 2
    w = np.zeros((4, len(GENERATED_AUS)), np.float32)
    w[:, GENERATED_AUS.index(au)] = [0.0, 0.5, 1.0, 1.0]
    frames, lm = render_frames(dot, w, nuis, 0, None, np.zeros(3))
    for t in range(4):
        img = frames[t, ..., 0].astype(np.float64)
        img[img < 20] = 0
        cx, cy = (img * xx).sum() / img.sum(), (img * yy).sum() / img.sum()
        assert abs(cx - lm[t, k, 0]) < 0.6 and abs(cy - lm[t, k, 1]) < 0.6, (t, cx, cy, lm[t, k])


def test_subjects_differ_and_neutral_faces_mimic_aus():
    cfg = resolve_config("tiny", "bp4d", seed=0)
    subs = [make_subject(cfg, sid) for sid in pick_subjects("bp4d", 12)]
    rest12 = [s.resting[12] for s in subs]
    assert min(rest12) < -0.5 and max(rest12) > 0.5  # down- and up-turned resting mouth corners
    assert len({round(s.fw, 4) for s in subs}) == len(subs)
    flat = resolve_config("tiny", "bp4d", seed=0, mimicry=0.0)
    assert all(v == 0 for v in make_subject(flat, "F001").resting.values())


def test_displacement_sizes_in_face_units(assets):
    """Subtle AUs move pixels by a few pixels at 128 px (< 0.1 U, U = face half height ≈ 49 px), large ones more."""
    for a in assets:
        peak = np.abs(a.fields).max(axis=(1, 2)) / a.unit  # (A,) in U at intensity 5
        for au in SUBTLE_AUS:
            assert peak[GENERATED_AUS.index(au)] < 0.1, (au, peak[GENERATED_AUS.index(au)])
        for au in (12, 26):
            assert peak[GENERATED_AUS.index(au)] > 0.12, (au, peak[GENERATED_AUS.index(au)])


def test_no_single_au_folds_the_image_over():
    """The backward map x -> x - B(x) stays one-to-one (Jacobian determinant > 0) for every AU at intensity 5, on
    more subjects than the other tests (person gains included)."""
    cfg = resolve_config("tiny", "bp4d", seed=0)
    for sid in pick_subjects("bp4d", 8):
        a = subject_assets(cfg, make_subject(cfg, sid), size=S)[0]
        for j, au in enumerate(GENERATED_AUS):
            B = np.zeros((2, S * S), np.float32)
            B[:, a.roi] = a.fields[j]
            bx, by = B[0].reshape(S, S), B[1].reshape(S, S)
            det = (1 - np.gradient(bx, axis=1)) * (1 - np.gradient(by, axis=0)) - np.gradient(bx, axis=0) * np.gradient(by, axis=1)
            assert det.min() > 0.05, (sid, au, det.min())
