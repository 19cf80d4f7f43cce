"""5-point similarity alignment to a square face crop (256×256 by default).

ME-GraphAU and MDHR crop BP4D/DISFA faces to 256×256 after MTCNN detection and "alignment with the 5 landmarks"
(authors' answers in ME-GraphAU issues #2 and #4); **no alignment code or template was released**. We therefore
define the template ourselves and document it here:

* Start from the 5-point ArcFace template of insightface (``arcface_dst`` in ``insightface/utils/face_align.py``),
  defined for a 112×112 crop: left eye (38.2946, 51.6963), right eye (73.5318, 51.5014), nose (56.0252, 71.7366),
  left mouth corner (41.5493, 92.3655), right mouth corner (70.7299, 92.2041). That crop is tight (it cuts the top of
  the forehead and the chin), and AU detection needs the brows and forehead (AU1/2/4) and the chin (AU17).
* Add a margin: the 112 crop is mapped onto the central ``1 - 2·margin`` of the output, ``margin = 0.1`` by default,
  i.e. ``p_S = (p_112 / 112 · (1 - 2m) + m) · S``. At S = 256 the eyes land at y ≈ 120 and the inter-ocular distance
  is ≈ 64 px, the mouth corners at y ≈ 194: the whole face with brows and chin, little background.

The transform is the least-squares similarity (rotation, uniform scale, translation; no reflection) from the
5 detected points to the template, estimated with Umeyama's closed form (Umeyama 1991, Eq. 40–42). The crop is
sampled with bilinear interpolation (``torch.nn.functional.grid_sample``, batched, on the frames' device); pixels
outside the frame are black. Pixel centres are at integer coordinates (as in OpenCV).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
DEFAULT_MARGIN = 0.1
DEFAULT_SIZE = 256


def template(size: int = DEFAULT_SIZE, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The 5 template points ``(5, 2)`` (x, y) in pixels of a ``size × size`` crop."""
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    return (ARCFACE_112 / 112.0 * (1 - 2 * margin) + margin) * size


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``dst ≈ s·R·src + t`` (Umeyama 1991, Eq. 40–42), batched.

    ``src``, ``dst``: ``(..., N, 2)``. Returns ``(..., 2, 3)`` matrices ``[s·R | t]`` mapping src to dst.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s = src.mean(-2, keepdims=True)
    mu_d = dst.mean(-2, keepdims=True)
    sc, dc = src - mu_s, dst - mu_d
    n = src.shape[-2]
    cov = np.swapaxes(dc, -1, -2) @ sc / n  # Σ_xy (Eq. 38)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(cov.shape[:-2] + (2,))
    d[..., 1] = np.sign(np.linalg.det(u) * np.linalg.det(vt))  # S of Eq. 39: no reflection
    d[..., 1][d[..., 1] == 0] = 1
    r = (u * d[..., None, :]) @ vt  # Eq. 40
    var_s = (sc**2).sum(-1).mean(-1)  # σ_x² (Eq. 36)
    scale = (s * d).sum(-1) / np.maximum(var_s, 1e-12)  # Eq. 42
    t = mu_d[..., 0, :] - scale[..., None] * (r @ mu_s[..., 0, :, None])[..., 0]  # Eq. 41
    return np.concatenate([scale[..., None, None] * r, t[..., :, None]], axis=-1)


def alignment_matrices(landmarks: np.ndarray, size: int = DEFAULT_SIZE, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """``(B, 5, 2)`` frame landmarks → ``(B, 2, 3)`` matrices mapping frame pixels to crop pixels."""
    return umeyama(landmarks, np.broadcast_to(template(size, margin), np.shape(landmarks)))


def centre_square_matrix(height: int, width: int, size: int = DEFAULT_SIZE) -> np.ndarray:
    """``(2, 3)`` matrix mapping the frame's central square onto the crop (the fallback when no face was ever found)."""
    side = min(height, width)
    s = size / side
    return np.array([[s, 0, -s * (width - side) / 2], [0, s, -s * (height - side) / 2]], np.float64)


def invert(m: np.ndarray) -> np.ndarray:
    """Invert ``(..., 2, 3)`` affine matrices."""
    a = m[..., :2]
    ainv = np.linalg.inv(a)
    return np.concatenate([ainv, -(ainv @ m[..., 2:])], axis=-1)


def transform_points(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply ``(…, 2, 3)`` matrices to ``(…, P, 2)`` points."""
    return points @ np.swapaxes(m[..., :2], -1, -2) + m[..., None, :, 2]


def matrix_scale(m: np.ndarray) -> np.ndarray:
    """The similarity's scale factor ``s`` (crop pixels per frame pixel) of ``(..., 2, 3)`` matrices."""
    return np.sqrt(np.abs(np.linalg.det(np.asarray(m)[..., :2])))


def warp(frames: torch.Tensor | np.ndarray, matrices: np.ndarray, size: int = DEFAULT_SIZE,
         antialias: bool = True) -> np.ndarray:
    """Warp ``(B, H, W, 3)`` uint8 frames with ``(B, 2, 3)`` frame→crop matrices into ``(B, size, size, 3)`` uint8.

    With ``antialias`` and a strong reduction (largest scale in the batch below 0.7), the frames are first resized
    with an antialiased filter to 1.4× the needed resolution (the matrices are adjusted), so bilinear sampling does
    not alias.
    """
    t = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.require(frames, np.uint8, ["C", "W"]))
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected (B, H, W, 3) frames, got {tuple(t.shape)}")
    matrices = np.asarray(matrices, np.float64)
    b, h, w, _ = t.shape
    f = float(matrix_scale(matrices).max()) * 1.4 if b else 1.0
    if antialias and f < 1.0:
        nh, nw = max(1, round(h * f)), max(1, round(w * f))
        x = F.interpolate(t.permute(0, 3, 1, 2).float(), size=(nh, nw), mode="bilinear", antialias=True,
                          align_corners=False)
        t = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        # frame pixel p maps to resized pixel (p + 1/2)·(n'/n) − 1/2: fold that into the matrices
        sx, sy = nw / w, nh / h
        down = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        matrices = matrices @ np.linalg.inv(down)
        b, h, w, _ = t.shape
    elif b:
        t, matrices = _source_window(t, matrices, size)
        b, h, w, _ = t.shape
    # crop pixel -> frame pixel (the inverse matrices), composed with the pixel <-> normalised coordinates of
    # align_corners=False (pixel i's centre is at (2i + 1)/n - 1) on both sides, in float64: affine_grid then
    # builds the sampling grid (a third of the time of building it by hand)
    inv = np.concatenate([invert(np.asarray(matrices, np.float64)), np.tile([[[0.0, 0.0, 1.0]]], (b, 1, 1))], 1)
    out_px = np.array([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]])
    in_norm = np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]])
    theta = torch.as_tensor((in_norm @ inv @ out_px)[:, :2], dtype=torch.float32, device=t.device)
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    img = t.permute(0, 3, 1, 2).float()
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _source_window(t: torch.Tensor, matrices: np.ndarray, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """The part of the frames the crops sample from (their corners' bounding box over the batch, 2 px margin,
    clipped to the frame) and the matrices for it, so that only those pixels are converted and sampled: a 210 px
    face in a 640x360 frame is a third of it (``auspread predict``'s alignment, issue 21). Samples inside the
    frame read the same pixels as before; samples outside it stay zero."""
    _, h, w, _ = t.shape
    e = size - 0.5  # crop pixel centres span [0, size - 1]; their footprint [-0.5, size - 0.5]
    corners = np.array([[-0.5, -0.5], [e, -0.5], [-0.5, e], [e, e]])
    pts = transform_points(invert(matrices), np.broadcast_to(corners, (len(matrices), 4, 2)))
    if not np.isfinite(pts).all():
        return t, matrices
    x0, y0 = (max(0, int(np.floor(pts[..., k].min())) - 2) for k in (0, 1))
    x1, y1 = min(w, int(np.ceil(pts[..., 0].max())) + 3), min(h, int(np.ceil(pts[..., 1].max())) + 3)
    if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) > 0.8 * w * h:
        return t, matrices  # nothing to gain (or the crops lie outside the frame: keep the zeros path as it is)
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])  # window pixel -> frame pixel
    return t[:, y0:y1, x0:x1], np.asarray(matrices, np.float64) @ shift


def warp_many(frames: Sequence[np.ndarray], matrices: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Like :func:`warp` for frames whose sizes may differ (batched per size)."""
    out = np.zeros((len(frames), size, size, 3), np.uint8)
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(frames):
        groups.setdefault(tuple(f.shape), []).append(i)
    for idx in groups.values():
        out[idx] = warp(np.stack([frames[i] for i in idx]), matrices[idx], size)
    return out
