import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auspread.faces.align import (ARCFACE_112, _source_window, alignment_matrices, centre_square_matrix, invert,
                                  matrix_scale, template, transform_points, umeyama, warp)


def _similarity(s, theta, tx, ty):
    c, si = np.cos(theta), np.sin(theta)
    return np.array([[s * c, -s * si, tx], [s * si, s * c, ty]])


def test_template_scaling_by_hand():
    t = template(256, 0.1)
    # left eye: (38.2946 / 112 * 0.8 + 0.1) * 256
    assert t[0, 0] == pytest.approx((38.2946 / 112 * 0.8 + 0.1) * 256)
    assert t[0, 1] == pytest.approx((51.6963 / 112 * 0.8 + 0.1) * 256)
    np.testing.assert_allclose(template(112, 0.0), ARCFACE_112)
    with pytest.raises(ValueError):
        template(256, 0.5)


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    m = _similarity(1.7, 0.3, 12.0, -4.0)
    dst = transform_points(m, src)
    np.testing.assert_allclose(umeyama(src, dst), m, atol=1e-9)


def test_umeyama_batched_and_never_reflects():
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mirrored = src * np.array([-1.0, 1.0])  # best fit with a reflection would be exact
    m = umeyama(np.stack([src, src]), np.stack([src, mirrored]))
    assert m.shape == (2, 2, 3)
    np.testing.assert_allclose(m[0], [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert np.linalg.det(m[1][:, :2]) > 0  # a rotation, not a mirror


def test_alignment_matrix_maps_landmarks_onto_template():
    m_true = _similarity(0.5, -0.2, 30, 50)
    frame_pts = transform_points(invert(m_true), template(256))  # landmarks in a frame
    m = alignment_matrices(frame_pts[None])[0]
    np.testing.assert_allclose(transform_points(m, frame_pts), template(256), atol=1e-6)
    assert matrix_scale(m) == pytest.approx(0.5)


def test_invert_roundtrip():
    m = _similarity(2.0, 1.0, 3, 4)
    pts = np.array([[1.0, 2.0], [10.0, -3.0]])
    np.testing.assert_allclose(transform_points(invert(m), transform_points(m, pts)), pts, atol=1e-9)


def test_centre_square_matrix():
    m = centre_square_matrix(100, 200, 50)
    np.testing.assert_allclose(transform_points(m, np.array([[50.0, 0.0], [150.0, 100.0]])), [[0, 0], [50, 50]])


def test_warp_moves_a_bright_pixel_where_the_matrix_says():
    frame = np.zeros((1, 60, 80, 3), np.uint8)
    frame[0, 20, 30] = 255  # (x=30, y=20)
    m = np.array([[[1.0, 0, -10], [0, 1.0, 5]]])  # pure translation
    out = warp(frame, m, 32, antialias=False)
    assert out.shape == (1, 32, 32, 3) and out.dtype == np.uint8
    ys, xs = np.nonzero(out[0, :, :, 0])
    assert (xs.tolist(), ys.tolist()) == ([20], [25])
    assert out[0, 25, 20, 0] == 255


def test_warp_identity_and_black_outside():
    rng = np.random.default_rng(1)
    f = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    ident = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (2, 1, 1))
    np.testing.assert_array_equal(warp(f, ident, 16), f)
    shifted = warp(f, np.tile(np.array([[1.0, 0, 8], [0, 1.0, 0]]), (2, 1, 1)), 16)
    assert (shifted[:, :, :8] == 0).all()


def test_warp_antialias_on_strong_reduction():
    # a 1-pixel checkerboard reduced 4x: plain bilinear sampling aliases, antialiasing gives uniform grey
    yy, xx = np.mgrid[:256, :256]
    board = (((xx + yy) % 2) * 255).astype(np.uint8)
    f = np.repeat(board[None, :, :, None], 3, -1)
    m = np.array([[[0.25, 0, 0], [0, 0.25, 0]]])
    smooth = warp(f, m, 64, antialias=True)[0, 4:-4, 4:-4, 0].astype(float)
    assert abs(smooth.mean() - 127.5) < 10 and smooth.std() < 10
    assert warp(torch.from_numpy(f), m, 64).shape == (1, 64, 64, 3)


def _reference_warp(frames: np.ndarray, matrices: np.ndarray, size: int) -> np.ndarray:
    """The warp by hand in float64 over the whole frame: crop pixel (x, y) samples frame point inv(M)(x, y)."""
    b, h, w, _ = frames.shape
    inv = torch.as_tensor(invert(matrices), dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    grid = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3)
    src = grid @ inv.transpose(1, 2)
    src = (2 * src + 1) / torch.tensor([w, h], dtype=torch.float64) - 1
    img = torch.from_numpy(frames).permute(0, 3, 1, 2).double()
    out = F.grid_sample(img, src.reshape(b, size, size, 2), mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("m", [
    [[0.9, 0.05, -200.0], [-0.05, 0.9, -50.0]],   # a face inside a 640x360 frame: only its window is sampled
    [[0.8, 0.0, 80.0], [0.0, 0.8, -30.0]],        # the crop runs off the frame's left edge: zeros there
    [[1.3, 0.1, -100.0], [-0.1, 1.3, 40.0]],      # enlarging
])
def test_warp_matches_a_float64_reference_and_samples_only_the_face_window(m):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 360, 640, 3), dtype=np.uint8)
    mats = np.tile(np.asarray(m), (3, 1, 1))
    out = warp(frames, mats, 96)
    ref = _reference_warp(frames, mats, 96)
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.1  # float32 coordinates: an occasional rounding tie flips by 1
    window, shifted = _source_window(torch.from_numpy(frames), mats, 96)  # what warp sampled from
    assert window.shape[1] * window.shape[2] < 0.8 * 360 * 640  # the face's window, not the frame
    assert np.isfinite(shifted).all()
