"""AU effects: local geometry (displacement fields) and appearance (shading / wrinkle maps) in FACS regions.

Each AU is a sum of anisotropic Gaussian *bumps* ``(centre, σx, σy, v)`` anchored on the subject's neutral
landmarks, and an additive shading map drawn in neutral-face coordinates. Both are defined at intensity 5 and
scale linearly with ``w = intensity / 5`` (times the subject's gain). A frame with AU weights ``w`` is

    out(x) = (neutral + Σ_a w_a · shade_a)(x − B(x)),   B(x) = Σ_a w_a · Σ_k g_k(x) v_k,

i.e. the content at source point ``s`` appears at ``x = s + B(x)``; landmarks move by solving that fixed point
(:func:`displace_points`), so they stay consistent with the pixels. Effect sizes (in face units U = face half
height, ≈ 0.38 of the frame) range from subtle (AU2, AU7, AU14, AU23, AU24: 2–4 px at 128 px) to large (AU12,
AU25, AU26), and the confusable pairs (1/2, 6/7, 15/17, 23/24) act on overlapping regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from auspread.data.synth.face import MaskPainter, NeutralFace, Subject, smooth_curve

#: every AU the generator animates (AU45 = blink, an unlabelled distractor)
GENERATED_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26, 45)
#: AUs whose effect is meant to be subtle / large (tested: subtle ones change fewer pixels)
SUBTLE_AUS: tuple[int, ...] = (2, 7, 14, 23, 24)
LARGE_AUS: tuple[int, ...] = (12, 25, 26)

#: landmarks whose bounding box (plus a margin in U, see :func:`au_region_box`) is the AU's FACS region
AU_REGION_LANDMARKS: dict[int, tuple[list[int], float]] = {
    1: (list(range(17, 27)), 0.30), 2: (list(range(17, 27)), 0.30), 4: (list(range(17, 27)) + [27], 0.25),
    5: (list(range(36, 48)) + list(range(17, 27)), 0.12), 6: (list(range(36, 48)) + [1, 15, 31, 35], 0.18),
    7: (list(range(36, 48)), 0.15), 9: (list(range(27, 36)) + [21, 22, 50, 52], 0.15),
    10: (list(range(31, 36)) + list(range(48, 55)), 0.2), 12: (list(range(31, 36)) + list(range(48, 68)) + [3, 13], 0.22),
    14: (list(range(48, 68)), 0.18), 15: (list(range(48, 68)), 0.2), 17: (list(range(48, 68)) + [6, 7, 8, 9, 10], 0.15),
    20: (list(range(48, 68)), 0.22), 23: (list(range(48, 68)), 0.12), 24: (list(range(48, 68)), 0.15),
    25: (list(range(48, 68)), 0.15), 26: (list(range(48, 68)) + list(range(4, 13)), 0.15), 45: (list(range(36, 48)), 0.15),
}


def au_region_box(au: int, landmarks: np.ndarray, unit: float) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` pixel box of the AU's FACS region on a face with the given landmarks."""
    idx, margin = AU_REGION_LANDMARKS[au]
    p = landmarks[idx]
    m = margin * unit
    return float(p[:, 0].min() - m), float(p[:, 1].min() - m), float(p[:, 0].max() + m), float(p[:, 1].max() + m)


def _bumps(au: int, L: np.ndarray, U: float, s: Subject) -> list[tuple]:
    """Bumps ``(cx, cy, sx, sy, vx, vy)`` in pixels for AU ``au`` at intensity 5."""
    B: list[tuple] = []

    def add(p, sx, sy, vx, vy):
        B.append((float(p[0]), float(p[1]), sx * U, sy * U, vx * U, vy * U))

    eye_h = s.eye_h * 1.7  # eye opening in U
    # brow-to-upper-lid distance (U): brow bumps sit above the brow and fall off before the lid, so the skin in
    # between stretches smoothly instead of dragging the lid line along
    d_be = float(np.mean(L[[37, 38, 43, 44], 1]) - np.mean(L[17:27, 1])) / U
    b_off, b_sy, b_amp = -0.3 * d_be, 0.55 * d_be, min(1.0, 3.5 * d_be)
    upper_mid = [(L[37] + L[38]) / 2, (L[43] + L[44]) / 2]
    lower_mid = [(L[40] + L[41]) / 2, (L[46] + L[47]) / 2]
    # bump widths are chosen so that no single AU folds the image over (|∇B| < 1; tested)
    if au == 1:  # inner brows up (oblique 'sad' brow), medial forehead
        for i, k in ((21, 1.0), (22, 1.0), (20, 0.7), (23, 0.7), (19, 0.35), (24, 0.35)):
            add(L[i] + [0, b_off * U], 0.10, b_sy, 0.0, -0.11 * k * b_amp)
    elif au == 2:  # outer brows up
        for i, k in ((17, 1.0), (26, 1.0), (18, 0.7), (25, 0.7)):
            add(L[i] + [0, b_off * U], 0.08, b_sy, 0.0, -0.05 * k * b_amp)
    elif au == 4:  # brows down and together
        for i, k in ((21, 1.0), (22, 1.0), (20, 0.8), (23, 0.8), (19, 0.45), (24, 0.45)):
            sgn = 1.0 if i <= 21 else -1.0
            add(L[i] + [0, b_off * U], 0.10, b_sy, 0.06 * sgn * k, 0.085 * k * b_amp)
    elif au == 5:  # upper lids up: more sclera
        sy = min(0.07, 0.5 * d_be)
        for up in upper_mid:
            add(up + [0, -0.3 * sy * U], 0.11, sy, 0.0, -(0.35 * eye_h + 0.02) * min(1.0, sy / 0.07))
    elif au == 6:  # cheeks up, lower lids pushed up, outer eye narrowed
        for i in (36, 45):
            sgn = 1.0 if i == 36 else -1.0
            add(L[i] + [-0.05 * U * sgn, 0.28 * U], 0.16, 0.13, 0.02 * sgn, -0.09)
        for lo in lower_mid:
            add(lo + [0, 0.05 * U], 0.11, 0.08, 0.0, -0.45 * eye_h)
    elif au == 7:  # lower lids up and in (no cheek motion)
        for lo in lower_mid:
            add(lo + [0, 0.04 * U], 0.10, 0.07, 0.0, -0.5 * eye_h)
        for up in upper_mid:
            add(up + [0, -0.03 * U], 0.10, 0.06, 0.0, 0.15 * eye_h)
    elif au == 9:  # nose wrinkled: wings and nose sides up, inner brows slightly down, upper lip slightly up
        for i in (31, 35):
            add(L[i], 0.08, 0.09, 0.0, -0.09)
        add(L[29], 0.08, 0.08, 0.0, -0.05)
        for i in (21, 22):
            add(L[i], 0.07, 0.06, 0.0, 0.035)
        add(L[51] + [0, -0.03 * U], 0.12, 0.04, 0.0, -0.03)
    elif au == 10:  # upper lip raised (centre), lower lip stays: mouth opens slightly in the middle
        add(L[51] + [0, -0.04 * U], 0.16, 0.08, 0.0, -0.085)
    elif au == 12:  # lip corners up and out
        for i in (48, 54):
            sgn = -1.0 if i == 48 else 1.0
            add(L[i] + [sgn * 0.05 * U, -0.04 * U], 0.17, 0.16, 0.07 * sgn, -0.14)
        for i in (1, 15):
            add((L[i] + L[48 if i == 1 else 54]) / 2, 0.18, 0.14, 0.0, -0.04)
    elif au == 14:  # corners tightened inward + dimples
        for i in (48, 54):
            sgn = 1.0 if i == 48 else -1.0
            add(L[i], 0.06, 0.06, 0.035 * sgn, -0.01)
    elif au == 15:  # corners pulled down
        for i in (48, 54):
            add(L[i] + [0, 0.02 * U], 0.10, 0.10, 0.0, 0.1)
    elif au == 17:  # chin boss and lower lip pushed up
        chin = (L[57] + L[8]) / 2
        add(chin, 0.20, 0.14, 0.0, -0.08)
        add(L[57] + [0, 0.02 * U], 0.14, 0.07, 0.0, -0.035)
    elif au == 20:  # corners stretched sideways (slightly down)
        for i in (48, 54):
            sgn = -1.0 if i == 48 else 1.0
            add(L[i], 0.13, 0.08, 0.11 * sgn, 0.02)
    elif au == 23:  # lips tightened: red parts thinner, mouth a little narrower
        add(L[51] + [0, -0.01 * U], 0.16, 0.045, 0.0, 0.03)
        add(L[57] + [0, 0.01 * U], 0.16, 0.045, 0.0, -0.03)
        for i in (48, 54):
            add(L[i], 0.05, 0.05, 0.02 * (1 if i == 48 else -1), 0.0)
    elif au == 24:  # lips pressed together: thinner at the centre, skin bulges above/below
        add(L[51] + [0, -0.01 * U], 0.12, 0.05, 0.0, 0.03)
        add(L[57] + [0, 0.01 * U], 0.12, 0.05, 0.0, -0.035)
    elif au == 25:  # lips part: lower lip down, upper lip slightly up
        add(L[57] + [0, 0.04 * U], 0.2, 0.11, 0.0, 0.1)
        add(L[51] + [0, -0.03 * U], 0.16, 0.07, 0.0, -0.025)
    elif au == 26:  # jaw drop: chin, jaw and lower lip move down
        add(L[8] + [0, -0.15 * U], 0.45, 0.35, 0.0, 0.2)
        add(L[57] + [0, 0.04 * U], 0.2, 0.11, 0.0, 0.07)
    elif au == 45:  # blink: upper lids down onto the lower lids
        # the closure itself is the lid-skin shading; the warp only lowers the lid a little (and not the brow)
        sy = min(0.08, 0.45 * d_be)
        for up in upper_mid:
            add(up, 0.11, sy, 0.0, 0.35 * eye_h * min(1.0, sy / 0.06))
    else:
        raise KeyError(f"AU{au} is not animated by the synthetic generator")
    return B


def _shading(au: int, nf: NeutralFace, s: Subject, P: MaskPainter) -> np.ndarray | None:
    """Additive colour map (S, S, 3) at intensity 5, in neutral-face coordinates."""
    L, U, size = nf.landmarks, s.unit(P.size), P.size
    skin = s.skin.astype(np.float32)

    def dark(mask, amount, color=None):
        c = skin * 0.45 if color is None else np.asarray(color, np.float32)
        return (mask[..., None] * amount) * (c - skin)

    def light(mask, amount):
        return mask[..., None] * amount * (np.minimum(skin * 1.3, 1) - skin)

    if au == 1:  # medial forehead wrinkles
        lines = []
        for k in range(3):
            y = min(L[19, 1], L[24, 1]) - (0.12 + 0.07 * k) * U
            lines.append(np.array([[L[20, 0], y + 0.02 * U], [(L[21, 0] + L[22, 0]) / 2, y], [L[23, 0], y + 0.02 * U]]))
        return dark(P.lines([smooth_curve(l, 10) for l in lines], 0.018 * U, blur=0.02 * U), 0.45)
    if au == 2:  # lateral forehead wrinkles
        lines = []
        for k in range(2):
            y = L[18, 1] - (0.13 + 0.07 * k) * U
            lines += [np.array([[L[17, 0], y + 0.02 * U], [L[19, 0], y]]), np.array([[L[24, 0], y], [L[26, 0], y + 0.02 * U]])]
        return dark(P.lines(lines, 0.014 * U, blur=0.02 * U), 0.2)
    if au == 4:  # vertical furrows between the brows + shadowed inner brow
        mid = (L[21] + L[22]) / 2
        lines = [np.array([mid + [dx * U, -0.10 * U], mid + [dx * 0.7 * U, 0.06 * U]]) for dx in (-0.05, 0.05)]
        m = P.lines(lines, 0.022 * U, blur=0.02 * U)
        sh = P.ellipse(mid[0], mid[1] + 0.02 * U, 0.22 * U, 0.06 * U, blur=0.05 * U)
        return dark(m, 0.6) + dark(sh, 0.2)
    if au == 5:  # eyelid crease disappears, lids brighter
        m = np.zeros((size, size), np.float32)
        for i in (37, 43):
            c = (L[i] + L[i + 1]) / 2
            m = np.maximum(m, P.ellipse(c[0], c[1] - 0.06 * U, 0.16 * U, 0.04 * U, blur=0.02 * U))
        return light(m, 0.35)
    if au == 6:  # crow's feet, infraorbital furrow, raised cheek highlight
        lines = []
        for i, sgn in ((36, -1), (45, 1)):
            for ang in (-0.35, 0.0, 0.35):
                d = np.array([np.cos(ang) * sgn, np.sin(ang)])
                lines.append(np.array([L[i] + d * 0.06 * U, L[i] + d * 0.17 * U]))
        furrow = [smooth_curve(np.array([L[j] + [0, 0.08 * U] for j in idx]), 12) for idx in ((36, 41, 40, 39), (42, 47, 46, 45))]
        cheeks = np.maximum(*[P.ellipse(*(L[i] + [-0.02 * U * sgn, 0.3 * U]), 0.17 * U, 0.1 * U, blur=0.06 * U) for i, sgn in ((36, -1), (45, 1))])
        return dark(P.lines(lines, 0.018 * U, blur=0.015 * U), 0.55) + dark(P.lines(furrow, 0.02 * U, blur=0.03 * U), 0.35) + light(cheeks, 0.35)
    if au == 7:  # lower-lid bulge line
        lines = [smooth_curve(np.array([L[j] + [0, 0.035 * U] for j in idx]), 12) for idx in ((41, 40), (47, 46))]
        return dark(P.lines(lines, 0.015 * U, blur=0.01 * U), 0.3)
    if au == 9:  # horizontal wrinkles across the nose bridge
        lines = [np.array([L[28] + [-0.07 * U, dy * U], L[28] + [0.07 * U, dy * U]]) for dy in (-0.06, -0.01, 0.04)]
        nl = [np.array([L[31] + [-0.04 * U, -0.02 * U], L[31] + [-0.07 * U, 0.08 * U]]), np.array([L[35] + [0.04 * U, -0.02 * U], L[35] + [0.07 * U, 0.08 * U]])]
        return dark(P.lines([smooth_curve(np.array([l[0], (l[0] + l[1]) / 2 + [0, -0.015 * U], l[1]]), 8) for l in lines], 0.018 * U, blur=0.01 * U), 0.9) + dark(P.lines(nl, 0.02 * U, blur=0.02 * U), 0.35)
    if au in (10, 12):  # deepened nasolabial folds (+ for 12 a cheek highlight)
        k = 0.55 if au == 12 else 0.45
        nl = [np.array([L[31] + [-0.05 * U, -0.01 * U], L[48] + [-0.10 * U, -0.12 * U], L[48] + [-0.11 * U, 0.04 * U]]),
              np.array([L[35] + [0.05 * U, -0.01 * U], L[54] + [0.10 * U, -0.12 * U], L[54] + [0.11 * U, 0.04 * U]])]
        out = dark(P.lines([smooth_curve(p, 12) for p in nl], 0.03 * U, blur=0.03 * U), k)
        if au == 12:
            cheeks = np.maximum(*[P.ellipse(*(L[i] + [0, -0.12 * U]), 0.14 * U, 0.1 * U, blur=0.08 * U) for i in (48, 54)])
            out = out + light(cheeks, 0.15)
        else:  # raised upper lip uncovers a strip of teeth / dark mouth under its centre
            mw = (L[54, 0] - L[48, 0]) / 2
            c = (L[51] + L[62]) / 2
            gap = P.ellipse(c[0], c[1] + 0.012 * U, 0.5 * mw, 0.035 * U, blur=0.3)
            out = out + gap[..., None] * (np.array([0.82, 0.8, 0.74], np.float32) - nf.image) * 0.9
        return out
    if au == 14:  # dimples lateral to the corners
        m = np.maximum(*[P.lines([np.array([L[i] + [sgn * 0.05 * U, -0.05 * U], L[i] + [sgn * 0.065 * U, 0.02 * U], L[i] + [sgn * 0.045 * U, 0.06 * U]])], 0.025 * U, blur=0.015 * U)
                         for i, sgn in ((48, -1), (54, 1))])
        return dark(m, 0.6)
    if au == 15:  # shadows below the corners
        m = np.maximum(*[P.ellipse(*(L[i] + [0, 0.07 * U]), 0.06 * U, 0.04 * U, blur=0.03 * U) for i in (48, 54)])
        return dark(m, 0.35)
    if au == 17:  # chin 'orange peel' dimpling + mentolabial crease
        rng = np.random.default_rng(s.texture_seed + 17)
        chin = (L[57] + L[8]) / 2
        region = P.ellipse(chin[0], chin[1] + 0.02 * U, 0.18 * U, 0.1 * U, blur=0.04 * U)
        speck = gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), max(0.7, 0.02 * U))
        speck = np.clip(speck / (speck.std() + 1e-6), -2, 2) / 2  # dimples (dark) and bumps (light)
        crease = P.lines([np.array([L[58] + [0, 0.06 * U], L[57] + [0, 0.08 * U], L[56] + [0, 0.06 * U]])], 0.025 * U, blur=0.02 * U)
        boss = P.ellipse(chin[0], chin[1] + 0.04 * U, 0.12 * U, 0.06 * U, blur=0.04 * U)
        return dark(region * np.clip(speck, 0, 1), 0.4) + light(region * np.clip(-speck, 0, 1), 0.3) + dark(crease, 0.55) + light(boss, 0.25)
    if au == 20:  # shadow lateral to stretched corners
        m = np.maximum(*[P.ellipse(*(L[i] + [sgn * 0.08 * U, 0.02 * U]), 0.05 * U, 0.06 * U, blur=0.03 * U) for i, sgn in ((48, -1), (54, 1))])
        return dark(m, 0.3)
    if au in (23, 24):  # lips paler / narrower red; 24 also bulges above and below the lips
        lips = P.polygon(np.vstack([smooth_curve(L[48:55], 20), smooth_curve(L[[54, 55, 56, 57, 58, 59, 48]], 20)]))
        out = (lips[..., None] * (0.35 if au == 23 else 0.3)) * (skin * 0.95 - s.lip.astype(np.float32))
        if au == 24:
            b = P.lines([L[49:54] + [0, -0.045 * U]], 0.02 * U, blur=0.02 * U) + P.lines([L[55:60] + [0, 0.05 * U]], 0.02 * U, blur=0.02 * U)
            out = out + dark(b, 0.35)
        else:
            out = out + dark(P.lines([L[[48, 54]]], 0.012 * U, blur=0.01 * U), 0.25)
        return out
    if au in (25, 26):  # dark mouth interior with a strip of upper teeth
        mw = (L[54, 0] - L[48, 0]) / 2
        c = (L[62] + L[66]) / 2
        h = 0.06 * U if au == 25 else 0.08 * U
        inner = P.ellipse(c[0], c[1] + 0.2 * h, 0.78 * mw, h, blur=0.3)
        teeth = P.ellipse(c[0], c[1] - 0.45 * h, 0.5 * mw, 0.45 * h, blur=0.3) * inner
        base = nf.image
        target = np.array([0.16, 0.05, 0.06], np.float32)
        out = inner[..., None] * (target - base)
        out = out + teeth[..., None] * (np.array([0.85, 0.83, 0.78], np.float32) - target)
        return out
    if au == 45:  # lid skin over the eyes
        m = gaussian_filter(nf.eye_masks, 0.4)
        return m[..., None] * (nf.lid_color.astype(np.float32) - nf.image)
    return None


@dataclass
class SubjectAssets:
    """Everything needed to render a subject quickly: neutral image, per-AU fields and shading, bumps."""

    size: int
    aus: tuple[int, ...]
    neutral: np.ndarray  # (S, S, 3) float32
    landmarks: np.ndarray  # (68, 2) neutral landmarks
    fields: np.ndarray  # (A, 2, N) float32 displacement (dx, dy) at ROI pixels for w = 1
    shade: np.ndarray  # (A, S*S*3) float32 additive colour for w = 1
    roi: np.ndarray  # (N,) flat pixel indices where any field is non-negligible
    bumps: np.ndarray  # (K, 6) all bumps; bump_au (K,) index into aus
    bump_au: np.ndarray
    unit: float


def _eval_bumps(bumps: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gaussian weights ``(K, ...)`` of each bump at points (x, y)."""
    dx = (x[None] - bumps[:, 0].reshape(-1, *([1] * x.ndim))) / bumps[:, 2].reshape(-1, *([1] * x.ndim))
    dy = (y[None] - bumps[:, 1].reshape(-1, *([1] * x.ndim))) / bumps[:, 3].reshape(-1, *([1] * x.ndim))
    return np.exp(-0.5 * (dx * dx + dy * dy))


def build_assets(s: Subject, nf: NeutralFace, size: int, aus: tuple[int, ...] = GENERATED_AUS) -> SubjectAssets:
    """Precompute the per-subject displacement fields and shading maps (once per subject)."""
    P = MaskPainter(size)
    U = s.unit(size)
    L = nf.landmarks
    all_bumps, owner = [], []
    shades = np.zeros((len(aus), size * size * 3), np.float32)
    for j, au in enumerate(aus):
        g = s.gain.get(au, 1.0)
        for b in _bumps(au, L, U, s):
            all_bumps.append((b[0], b[1], b[2], b[3], b[4] * g, b[5] * g))
            owner.append(j)
        sh = _shading(au, nf, s, P)
        if sh is not None:
            shades[j] = (sh * (g if au not in (25, 26, 45) else 1.0)).reshape(-1)
    bumps = np.asarray(all_bumps, np.float64)
    owner = np.asarray(owner, np.int64)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    w = _eval_bumps(bumps, xx.reshape(-1), yy.reshape(-1))  # (K, S*S)
    fields = np.zeros((len(aus), 2, size * size), np.float64)
    for k in range(len(bumps)):
        fields[owner[k], 0] += w[k] * bumps[k, 4]
        fields[owner[k], 1] += w[k] * bumps[k, 5]
    mag = np.abs(fields).max(axis=(0, 1))
    roi = np.flatnonzero(mag > 0.05)  # pixels moved by < 0.05 px are copied unwarped
    return SubjectAssets(size, tuple(aus), nf.image, L, np.ascontiguousarray(fields[:, :, roi], dtype=np.float32), shades, roi,
                         bumps, owner, U)


def displace_points(assets: SubjectAssets, weights: np.ndarray, points: np.ndarray | None = None, iters: int = 4) -> np.ndarray:
    """Landmarks after AU weights ``(T, A)``: solve ``x = L + B(x)`` by fixed-point iteration → ``(T, P, 2)``."""
    L = assets.landmarks if points is None else points
    T = weights.shape[0]
    x = np.broadcast_to(L, (T, *L.shape)).astype(np.float64).copy()
    kw = weights[:, assets.bump_au]  # (T, K)
    active = np.flatnonzero(np.abs(kw).max(0) > 0)
    bumps = assets.bumps[active]
    v = np.stack([kw[:, active] * bumps[None, :, 4], kw[:, active] * bumps[None, :, 5]], -1)  # (T, K, 2)
    for _ in range(iters):
        g = _eval_bumps(bumps, x[..., 0], x[..., 1])  # (K, T, P)
        x = L[None] + np.matmul(g.transpose(1, 2, 0), v)  # (T, P, 2)
    return x
