"""Procedural subjects: identity parameters, neutral 68-point landmarks and the rendered neutral face.

A subject is a small set of numbers (face shape, skin tone, feature geometry, accessories, a *resting AU vector*
that makes the neutral face mimic AUs). Everything here is deterministic given the subject's random generator.
The neutral face is drawn once per subject (antialiased by 4x supersampling) and later warped per frame by the
AU displacement fields of :mod:`auspread.data.synth.effects`.

Landmarks follow the iBUG-68 order: jaw 0–16, right brow 17–21 (image left), left brow 22–26, nose bridge 27–30,
nostrils 31–35, right eye 36–41, left eye 42–47, outer lips 48–59, inner lips 60–67. Coordinates are (x, y) pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

SUPERSAMPLE = 4


@dataclass
class Subject:
    """Identity of one synthetic person (all sizes relative to the frame side, colours in [0, 1])."""

    subject_id: str
    cx: float
    cy: float
    fw: float  # face half width
    fh: float  # face half height
    chin_power: float
    eye_y: float  # in face units v (negative = above centre)
    eye_dx: float
    eye_w: float
    eye_h: float
    brow_y: float
    brow_arch: float
    brow_thick: float
    nose_len: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_up: float
    lip_low: float
    skin: np.ndarray
    hair: np.ndarray
    lip: np.ndarray
    iris: np.ndarray
    background: np.ndarray
    glasses: bool
    beard: bool
    fringe: bool
    texture_seed: int
    resting: dict[int, float] = field(default_factory=dict)  # AU -> resting intensity (0–5 scale, may be < 0)
    gain: dict[int, float] = field(default_factory=dict)  # AU -> person-specific effect size multiplier

    def unit(self, size: int) -> float:
        """The face unit U in pixels (face half height); AU displacements are expressed in U."""
        return self.fh * size


def sample_subject(subject_id: str, rng: np.random.Generator, *, mimicry: float, accessories: float,
                   identity_variation: float, aus: tuple[int, ...]) -> Subject:
    """Draw a subject. ``mimicry`` scales the resting AU vector, ``identity_variation`` the spread of geometry,
    ``accessories`` the probability of glasses / beard / fringe."""
    iv = identity_variation

    def u(lo: float, hi: float) -> float:
        mid = 0.5 * (lo + hi)
        return float(mid + (rng.uniform(lo, hi) - mid) * iv)

    female = subject_id.startswith("F")
    tone = rng.uniform(0.25, 1.0)
    skin = np.array([0.45 + 0.45 * tone, 0.30 + 0.42 * tone, 0.22 + 0.40 * tone]) * rng.uniform(0.92, 1.05, 3)
    hair_dark = rng.uniform(0.05, 0.55)
    hair = np.array([hair_dark * 1.1, hair_dark * 0.85, hair_dark * 0.6])
    lip = np.clip(skin * np.array([0.95, 0.62, 0.62]) + np.array([0.05, 0.0, 0.02]), 0, 1)
    iris = np.array(rng.choice([[0.25, 0.15, 0.08], [0.12, 0.25, 0.35], [0.2, 0.3, 0.15], [0.1, 0.07, 0.05]]))
    bg = rng.uniform(0.25, 0.85) * np.ones(3) + rng.uniform(-0.08, 0.08, 3)
    resting: dict[int, float] = {}
    # person-specific neutral faces that mimic AUs (high/low brows, up/down corners, deep folds, narrow eyes)
    for au, (lo, hi) in {1: (-0.6, 1.6), 2: (-0.4, 1.2), 4: (-0.5, 1.4), 7: (-0.3, 1.6),
                         12: (-1.2, 1.4), 15: (-0.6, 1.0), 17: (-0.3, 1.2), 24: (-0.2, 1.0), 6: (-0.2, 1.0)}.items():
        if au in aus:
            resting[au] = float(rng.uniform(lo, hi) * mimicry)
    gain = {a: float(np.clip(np.exp(rng.normal(0.0, 0.18)), 0.7, 1.35)) for a in aus}
    cx, cy = 0.5 + rng.uniform(-0.02, 0.02), 0.50 + rng.uniform(-0.02, 0.02)
    fw, fh = u(0.26, 0.32) * (0.96 if female else 1.02), u(0.36, 0.41)
    chin_power = u(0.55, 1.0)
    eye_y, eye_dx, eye_w, eye_h = u(-0.26, -0.18), u(0.38, 0.46), u(0.16, 0.21), u(0.07, 0.1)
    brow_y = eye_y - eye_h - u(0.12, 0.2)  # brows a clear gap above the upper lids
    return Subject(
        subject_id=subject_id, cx=cx, cy=cy, fw=fw, fh=fh, chin_power=chin_power,
        eye_y=eye_y, eye_dx=eye_dx, eye_w=eye_w, eye_h=eye_h,
        brow_y=brow_y, brow_arch=u(0.02, 0.07), brow_thick=u(0.035, 0.06) * (0.85 if female else 1.1),
        nose_len=u(0.14, 0.24), nose_w=u(0.14, 0.2),
        mouth_y=u(0.46, 0.56), mouth_w=u(0.30, 0.40), lip_up=u(0.045, 0.075), lip_low=u(0.06, 0.095),
        skin=np.clip(skin, 0, 1), hair=hair, lip=lip, iris=iris, background=np.clip(bg, 0, 1),
        glasses=bool(rng.random() < 0.25 * accessories),
        beard=bool((not female) and rng.random() < 0.35 * accessories),
        fringe=bool(rng.random() < 0.25 * accessories),
        texture_seed=int(rng.integers(2**31)),
        resting=resting, gain=gain,
    )


def neutral_landmarks(s: Subject, size: int) -> np.ndarray:
    """The subject's 68 neutral landmarks, ``(68, 2)`` float64 pixels."""
    pts = np.zeros((68, 2))
    a = np.linspace(0.0, np.pi, 17)
    pts[0:17, 0] = -np.cos(a) * (1.0 - 0.05 * np.sin(a))
    pts[0:17, 1] = -0.22 + 1.22 * np.sin(a) ** s.chin_power
    # brows (outer -> inner for the right brow, inner -> outer for the left)
    t = np.linspace(0, 1, 5)
    bu = -0.80 + 0.62 * t
    bv = s.brow_y - s.brow_arch * np.sin(np.pi * (0.15 + 0.7 * t)) + 0.02 * t
    pts[17:22] = np.stack([bu, bv], 1)
    pts[22:27] = np.stack([-bu[::-1], bv[::-1]], 1)
    # nose
    pts[27:31, 0] = 0.0
    pts[27:31, 1] = np.linspace(s.eye_y + 0.02, s.eye_y + 0.02 + s.nose_len + 0.16, 4)
    nb = pts[30, 1] + 0.06
    pts[31:36, 0] = np.array([-1, -0.5, 0, 0.5, 1]) * s.nose_w
    pts[31:36, 1] = nb + np.array([-0.01, 0.015, 0.025, 0.015, -0.01])
    # eyes: 36 outer, 37 38 upper, 39 inner, 40 41 lower (right eye); mirrored for the left eye
    ew, eh = s.eye_w, s.eye_h
    right = [(-ew, 0.005), (-0.35 * ew, -eh), (0.35 * ew, -eh), (ew, 0.01), (0.35 * ew, 0.7 * eh), (-0.35 * ew, 0.7 * eh)]
    for k, (du, dv) in enumerate(right):
        pts[36 + k] = (-s.eye_dx + du, s.eye_y + dv)
    # left eye mirrored: 42 inner, 43 44 upper (inner -> outer), 45 outer, 46 47 lower (outer -> inner)
    le = pts[36:42].copy()
    le[:, 0] = -le[:, 0]
    pts[42:48] = le[[3, 2, 1, 0, 5, 4]]
    # mouth
    mw, my, lu, ll = s.mouth_w, s.mouth_y, s.lip_up, s.lip_low
    gap = 0.006
    outer_up = [(-mw, 0), (-0.6 * mw, -0.75 * lu), (-0.22 * mw, -lu), (0, -0.85 * lu), (0.22 * mw, -lu), (0.6 * mw, -0.75 * lu), (mw, 0)]
    outer_low = [(0.6 * mw, 0.8 * ll), (0.2 * mw, ll), (0, ll * 1.02), (-0.2 * mw, ll), (-0.6 * mw, 0.8 * ll)]
    for k, (du, dv) in enumerate(outer_up + outer_low):
        pts[48 + k] = (du, my + dv)
    inner = [(-0.85 * mw, 0), (-0.35 * mw, -gap), (0, -gap), (0.35 * mw, -gap), (0.85 * mw, 0),
             (0.35 * mw, gap), (0, gap), (-0.35 * mw, gap)]
    for k, (du, dv) in enumerate(inner):
        pts[60 + k] = (du, my + dv)
    out = np.empty_like(pts)
    out[:, 0] = (s.cx + pts[:, 0] * s.fw) * size
    out[:, 1] = (s.cy + pts[:, 1] * s.fh) * size
    return out


# ------------------------------------------------------------------------------------------------ drawing helpers
class MaskPainter:
    """Antialiased masks: draw at ``SUPERSAMPLE``x on an 'L' image, return a float ``(S, S)`` alpha in [0, 1]."""

    def __init__(self, size: int):
        self.size = size
        self.k = SUPERSAMPLE

    def _new(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        im = Image.new("L", (self.size * self.k, self.size * self.k), 0)
        return im, ImageDraw.Draw(im)

    def _xy(self, pts: np.ndarray) -> list[tuple[float, float]]:
        # +0.5: landmark (x, y) is the centre of pixel (y, x); PIL draws in continuous coordinates
        return [((float(x) + 0.5) * self.k, (float(y) + 0.5) * self.k) for x, y in np.asarray(pts).reshape(-1, 2)]

    def _done(self, im: Image.Image, blur: float = 0.0) -> np.ndarray:
        a = np.asarray(im.resize((self.size, self.size), Image.BOX), dtype=np.float32) / 255.0
        return gaussian_filter(a, blur) if blur > 0 else a

    def polygon(self, pts: np.ndarray, blur: float = 0.0) -> np.ndarray:
        im, d = self._new()
        d.polygon(self._xy(pts), fill=255)
        return self._done(im, blur)

    def lines(self, polylines: list[np.ndarray], width: float, blur: float = 0.0) -> np.ndarray:
        im, d = self._new()
        w = max(1, int(round(width * self.k)))
        for pl in polylines:
            xy = self._xy(pl)
            d.line(xy, fill=255, width=w, joint="curve")
            r = w / 2
            for x, y in (xy[0], xy[-1]):
                d.ellipse([x - r, y - r, x + r, y + r], fill=255)
        return self._done(im, blur)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, blur: float = 0.0) -> np.ndarray:
        im, d = self._new()
        k = self.k
        cx, cy = cx + 0.5, cy + 0.5
        d.ellipse([(cx - rx) * k, (cy - ry) * k, (cx + rx) * k, (cy + ry) * k], fill=255)
        return self._done(im, blur)

    def ring(self, cx: float, cy: float, rx: float, ry: float, width: float) -> np.ndarray:
        im, d = self._new()
        k = self.k
        cx, cy = cx + 0.5, cy + 0.5
        d.ellipse([(cx - rx) * k, (cy - ry) * k, (cx + rx) * k, (cy + ry) * k], outline=255, width=max(1, int(width * k)))
        return self._done(im)


def smooth_curve(pts: np.ndarray, n: int = 24) -> np.ndarray:
    """Catmull-Rom-like dense polyline through ``pts`` (for smooth brows, lids and lips)."""
    pts = np.asarray(pts, dtype=np.float64)
    if len(pts) < 3:
        return pts
    out = []
    p = np.vstack([pts[0], pts, pts[-1]])
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        for t in np.linspace(0, 1, n // (len(pts) - 1) + 2, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t3))
    out.append(pts[-1])
    return np.array(out)


def blend(img: np.ndarray, alpha: np.ndarray, color: np.ndarray | float) -> np.ndarray:
    a = alpha[..., None]
    return img * (1 - a) + a * np.asarray(color, dtype=np.float32)


def value_noise(size: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field in [-1, 1] with feature size ``scale`` pixels."""
    n = rng.standard_normal((size, size)).astype(np.float32)
    f = gaussian_filter(n, scale)
    return f / (np.abs(f).max() + 1e-6)


@dataclass
class NeutralFace:
    image: np.ndarray  # (S, S, 3) float32 in [0, 1]
    landmarks: np.ndarray  # (68, 2) float64
    skin_mask: np.ndarray  # (S, S) float32, face skin (for shading maps)
    eye_masks: np.ndarray  # (S, S) float32, both eye openings
    lid_color: np.ndarray  # (3,)


def render_neutral(s: Subject, size: int) -> NeutralFace:
    """Draw the subject's neutral face (no AU, no resting AU: those are added by the effect fields)."""
    L = neutral_landmarks(s, size)
    P = MaskPainter(size)
    rng = np.random.default_rng(s.texture_seed)
    U = s.unit(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.empty((size, size, 3), np.float32)
    img[:] = s.background
    img *= (1.0 + 0.12 * (yy / size - 0.5))[..., None]  # background gradient
    cx, cy = s.cx * size, s.cy * size
    # hair (behind the head), neck
    head = P.ellipse(cx, cy - 0.18 * U, s.fw * size * 1.12, s.fh * size * 0.95, blur=0.6)
    img = blend(img, head, s.hair)
    neck = np.array([[cx - 0.55 * s.fw * size, cy + 0.6 * U], [cx + 0.55 * s.fw * size, cy + 0.6 * U],
                     [cx + 0.7 * s.fw * size, size + 2], [cx - 0.7 * s.fw * size, size + 2]])
    img = blend(img, P.polygon(neck, blur=0.5), s.skin * 0.78)
    # face: jaw polygon closed by a forehead arc
    a = np.linspace(0, np.pi, 20)
    fore = np.stack([cx + np.cos(a) * (np.abs(L[16, 0] - L[0, 0]) / 2), L[0, 1] - np.sin(a) * (L[0, 1] - (cy - 0.98 * U))], 1)
    face_poly = np.vstack([smooth_curve(L[0:17], 48), fore])
    face = P.polygon(face_poly, blur=0.4)
    r = np.sqrt(((xx - cx) / (s.fw * size)) ** 2 + ((yy - cy - 0.1 * U) / (s.fh * size)) ** 2)
    shade = (1.0 - 0.22 * np.clip(r - 0.45, 0, 1) ** 1.5)[..., None]
    tex = 0.035 * value_noise(size, max(0.6, size / 90), rng)[..., None] + 0.02 * value_noise(size, size / 12, rng)[..., None]
    skin_img = s.skin * shade * (1 + tex)
    img = img * (1 - face[..., None]) + face[..., None] * skin_img
    # hair line / fringe
    if s.fringe:
        fr = np.vstack([[L[0, 0] - 2, cy - 1.05 * U], [L[16, 0] + 2, cy - 1.05 * U],
                        [L[16, 0] - 0.1 * U, (L[24, 1] + cy - 1.0 * U) / 2 + 0.05 * U],
                        [cx + 0.2 * U, L[24, 1] - 0.02 * U], [cx - 0.3 * U, L[19, 1] - 0.04 * U],
                        [L[0, 0] + 0.1 * U, (L[19, 1] + cy - 1.0 * U) / 2]])
        img = blend(img, P.polygon(fr, blur=0.8) * np.maximum(head, face) * 0.95, s.hair)
    # nose shading: sides, nostrils, bridge highlight
    side = [np.array([L[27] + [-0.07 * U, 0.05 * U], L[29] + [-0.09 * U, 0], L[31] + [-0.02 * U, -0.02 * U]]),
            np.array([L[27] + [0.07 * U, 0.05 * U], L[29] + [0.09 * U, 0], L[35] + [0.02 * U, -0.02 * U]])]
    img = blend(img, P.lines(side, 0.03 * U, blur=0.06 * U) * 0.35, s.skin * 0.55)
    img = blend(img, P.lines([L[27:31]], 0.05 * U, blur=0.05 * U) * 0.25, np.minimum(s.skin * 1.25, 1))
    wing = P.lines([smooth_curve(L[31:36], 16)], 0.035 * U, blur=0.02 * U)
    img = blend(img, wing * 0.45, s.skin * 0.5)
    for k in (32, 34):
        img = blend(img, P.ellipse(L[k, 0], L[k, 1] - 0.015 * U, 0.035 * U, 0.018 * U, blur=0.3) * 0.8, s.skin * 0.25)
    # mild nasolabial folds (depth varies per subject; deepened by AU10/12 shading and resting values)
    nl = [np.array([L[31] + [-0.05 * U, 0], L[48] + [-0.09 * U, -0.1 * U], L[48] + [-0.1 * U, 0.05 * U]]),
          np.array([L[35] + [0.05 * U, 0], L[54] + [0.09 * U, -0.1 * U], L[54] + [0.1 * U, 0.05 * U]])]
    img = blend(img, P.lines([smooth_curve(p, 12) for p in nl], 0.025 * U, blur=0.03 * U) * 0.18, s.skin * 0.6)
    # eyes: socket shadow, sclera, iris, lid lines, crease
    eye_masks = np.zeros((size, size), np.float32)
    for idx in (list(range(36, 42)), list(range(42, 48))):
        e = L[idx]
        ec = e.mean(0)
        img = blend(img, P.ellipse(ec[0], ec[1] - 0.04 * U, 0.28 * U, 0.14 * U, blur=0.08 * U) * 0.18, s.skin * 0.6)
        up = smooth_curve(e[[0, 1, 2, 3]], 16)
        low = smooth_curve(e[[3, 4, 5, 0]], 16)
        eye = P.polygon(np.vstack([up, low]))
        eye_masks = np.maximum(eye_masks, eye)
        img = blend(img, eye, np.array([0.93, 0.9, 0.86]))
        iris_r = 0.85 * (s.eye_h * s.fh * size)
        iris = P.ellipse(ec[0], ec[1] + 0.1 * iris_r, iris_r, iris_r) * eye
        img = blend(img, iris, s.iris)
        img = blend(img, P.ellipse(ec[0], ec[1] + 0.1 * iris_r, 0.45 * iris_r, 0.45 * iris_r) * eye, 0.05)
        img = blend(img, P.lines([up], 0.035 * U) * 0.9, s.hair * 0.3)
        img = blend(img, P.lines([low], 0.015 * U) * 0.5, s.skin * 0.55)
        crease = up + np.array([0, -0.07 * U])
        img = blend(img, P.lines([crease[2:-2]], 0.02 * U, blur=0.02 * U) * 0.35, s.skin * 0.55)
    # brows
    for idx in (list(range(17, 22)), list(range(22, 27))):
        b = smooth_curve(L[idx], 24)
        thick = s.brow_thick * s.fh * size
        t = np.linspace(0, 1, len(b))
        taper = (0.55 + 0.45 * np.sin(np.pi * np.clip(t if idx[0] == 17 else 1 - t, 0, 1) * 0.9 + 0.3))
        top = b - np.stack([np.zeros_like(t), thick * taper * 0.5], 1)
        bot = b + np.stack([np.zeros_like(t), thick * taper * 0.5], 1)
        img = blend(img, P.polygon(np.vstack([top, bot[::-1]]), blur=0.5) * 0.92, s.hair * 0.9)
    # lips
    up_outer = smooth_curve(L[48:55], 30)
    low_outer = smooth_curve(L[[54, 55, 56, 57, 58, 59, 48]], 30)
    up_inner = smooth_curve(L[[60, 61, 62, 63, 64]], 20)
    low_inner = smooth_curve(L[[64, 65, 66, 67, 60]], 20)
    mouth_in = P.polygon(np.vstack([up_inner, low_inner]))
    lips = np.clip(P.polygon(np.vstack([up_outer, low_outer]), blur=0.3), 0, 1)
    img = blend(img, lips, s.lip)
    img = blend(img, P.lines([up_outer[1:-1]], 0.012 * U, blur=0.3) * 0.25, s.lip * 1.15)  # vermilion border highlight
    img = blend(img, P.lines([L[[48, 60, 67, 66, 65, 64, 54]]], 0.02 * U, blur=0.2) * 0.85, s.lip * 0.3)
    img = blend(img, mouth_in, s.lip * 0.2)
    # philtrum and chin shading
    img = blend(img, P.lines([np.array([L[33] + [0, 0.03 * U], L[51] + [0, -0.03 * U]])], 0.05 * U, blur=0.04 * U) * 0.15, s.skin * 0.7)
    img = blend(img, P.ellipse(L[8, 0], L[57, 1] + 0.2 * U, 0.18 * U, 0.08 * U, blur=0.08 * U) * 0.12, np.minimum(s.skin * 1.2, 1))
    if s.beard:
        stub = np.clip(value_noise(size, 0.6, rng) * 0.5 + 0.45, 0, 1)
        jaw = np.vstack([smooth_curve(L[3:14], 30), L[[54]] + [0.05 * U, -0.06 * U], L[[33]] + [0, 0.05 * U], L[[48]] + [-0.05 * U, -0.06 * U]])
        bm = P.polygon(jaw, blur=0.05 * U) * (1 - lips) * stub
        img = blend(img, bm * 0.55, s.hair * 0.7)
    if s.glasses:
        gl = np.zeros((size, size), np.float32)
        for idx in (list(range(36, 42)), list(range(42, 48))):
            ec = L[idx].mean(0)
            gl = np.maximum(gl, P.ring(ec[0], ec[1] + 0.02 * U, 0.27 * U, 0.17 * U, max(0.4, 0.02 * U)))
        gl = np.maximum(gl, P.lines([np.array([L[39] + [0.1 * U, -0.05 * U], L[42] + [-0.1 * U, -0.05 * U]])], 0.02 * U))
        img = blend(img, gl * 0.9, np.array([0.08, 0.08, 0.1]))
    lid_color = s.skin * 0.92
    return NeutralFace(np.clip(img, 0, 1).astype(np.float32), L, face.astype(np.float32), eye_masks.astype(np.float32), lid_color)
