"""Fast frame rendering: weighted sum of precomputed AU maps + one bilinear warp (numpy), then the head-pose
affine (PIL), illumination, noise, blur and occlusion. Works on chunks of frames at once.

Coordinates: a landmark ``(x, y)`` is in pixel-index units (the centre of pixel ``(i, j)`` is ``(j, i)``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from auspread.data.synth.effects import SubjectAssets, displace_points
from auspread.data.synth.nuisance import NuisanceTrack


#: AUs whose shading *replaces* colour in the same place (mouth interior, teeth): their shading weights are
#: scaled so that they sum to at most 1, otherwise co-occurring AU10/25/26 would overshoot the target colour
MOUTH_GROUP = (10, 25, 26)


def _shade_weights(assets: SubjectAssets, w: np.ndarray) -> np.ndarray:
    idx = [assets.aus.index(a) for a in MOUTH_GROUP if a in assets.aus]
    if len(idx) < 2:
        return w
    ws = w.copy()
    tot = np.clip(ws[:, idx], 0, None).sum(1)
    scale = np.where(tot > 1.0, 1.0 / np.maximum(tot, 1e-6), 1.0).astype(np.float32)
    ws[:, idx] *= scale[:, None]
    return ws


def warp_expression(assets: SubjectAssets, weights: np.ndarray) -> np.ndarray:
    """Canonical (un-posed) frames for AU weights ``(C, A)`` → ``(C, S, S, 3)`` float32 in [0, 1]."""
    S = assets.size
    C = weights.shape[0]
    w = weights.astype(np.float32)
    ws = _shade_weights(assets, w)
    act = np.flatnonzero(np.abs(w).max(0) > 0)  # only AUs active somewhere in this chunk
    src = assets.neutral.reshape(1, -1) + ws[:, act] @ assets.shade[act] if act.size else np.repeat(
        assets.neutral.reshape(1, -1), C, 0)
    src = src.reshape(C * S * S, 3)
    out = src.reshape(C, S * S, 3).copy()
    roi = assets.roi
    if roi.size and act.size:
        D = (w[:, act] @ assets.fields[act].reshape(act.size, -1)).reshape(C, 2, -1)  # (C, 2, N)
        px = (roi % S).astype(np.float32)
        py = (roi // S).astype(np.float32)
        sx = np.clip(px[None] - D[:, 0], 0, S - 1.001)
        sy = np.clip(py[None] - D[:, 1], 0, S - 1.001)
        x0 = sx.astype(np.int32)
        y0 = sy.astype(np.int32)
        fx = (sx - x0)[..., None]
        fy = (sy - y0)[..., None]
        base = (np.arange(C, dtype=np.int32) * (S * S))[:, None] + y0 * S + x0

        def g(i):
            return np.take(src, i, axis=0)

        top = g(base)
        top += fx * (g(base + 1) - top)
        bot = g(base + S)
        bot += fx * (g(base + S + 1) - bot)
        top += fy * (bot - top)
        out[:, roi] = top
    return out.reshape(C, S, S, 3)


def pil_affine_data(A: np.ndarray, b: np.ndarray) -> tuple[float, ...]:
    """PIL ``AFFINE`` coefficients (output → input, continuous coordinates with pixel centres at +0.5) for the
    forward map ``p = A q + b`` in pixel-index coordinates."""
    Ai = np.linalg.inv(A)
    c = 0.5 - Ai @ (b + 0.5)
    return (float(Ai[0, 0]), float(Ai[0, 1]), float(c[0]), float(Ai[1, 0]), float(Ai[1, 1]), float(c[1]))


def render_frames(assets: SubjectAssets, weights: np.ndarray, nuis: NuisanceTrack, start: int,
                  noise_bank: np.ndarray | None, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Render frames ``start … start+C−1`` of a video: returns ``(C, S, S, 3) uint8`` and landmarks ``(C, 68, 2)``."""
    S = assets.size
    C = weights.shape[0]
    canon = warp_expression(assets, weights)
    lm = displace_points(assets, weights)
    A, b = nuis.affine(S)
    A, b = A[start:start + C], b[start:start + C]
    lm = np.einsum("tij,tpj->tpi", A, lm) + b[:, None, :]
    canon8 = (np.clip(canon, 0, 1) * 255 + 0.5).astype(np.uint8)
    # edge-pad so that rotating / shifting the head pulls in more background and neck, not a blank corner
    m = max(2, S // 8)
    padded = np.pad(canon8, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge")
    fill = tuple(int(round(float(c) * 255)) for c in background)
    posed = np.empty_like(canon8)
    for i in range(C):
        a0, a1, c0, a3, a4, c1 = pil_affine_data(A[i], b[i])
        im = Image.fromarray(padded[i]).transform((S, S), Image.AFFINE, (a0, a1, c0 + m, a3, a4, c1 + m),
                                                  resample=Image.BILINEAR, fillcolor=fill)
        posed[i] = np.asarray(im)
    sl = slice(start, start + C)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    gx = ((xx - S / 2) / S)[None]
    gy = ((yy - S / 2) / S)[None]
    light = (nuis.brightness[sl, None, None] + nuis.light_gx[sl, None, None] * gx + nuis.light_gy[sl, None, None] * gy)
    f = posed.astype(np.float32) * light[..., None].astype(np.float32)
    if noise_bank is not None and nuis.noise_sigma > 0:
        k = (np.arange(start, start + C) * 7) % len(noise_bank)
        f += noise_bank[k] * nuis.noise_sigma
    frames = np.clip(f + 0.5, 0, 255).astype(np.uint8)
    for i in range(C):
        t = start + i
        blur, occ = nuis.blur[t], nuis.occluder[t]
        if blur <= 0 and occ[0] <= 0:
            continue
        im = Image.fromarray(frames[i])
        if occ[0] > 0:
            d = ImageDraw.Draw(im)
            cx, cy, rx, ry = occ[1:]
            d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=nuis.occluder_color)
        if blur > 0:
            im = im.filter(ImageFilter.GaussianBlur(float(blur)))
        frames[i] = np.asarray(im)
    return frames, lm.astype(np.float32)
