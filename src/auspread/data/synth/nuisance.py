"""Per-video nuisances: head roll, small yaw (horizontal scale + shear), scale, translation, illumination
gradients and flicker, sensor noise, compression quality, occasional motion blur and partial occlusion.

All tracks are smooth (sums of a few random sinusoids) and scaled by one ``strength`` knob (0 = none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class NuisanceTrack:
    roll: np.ndarray  # (T,) degrees
    yaw: np.ndarray  # (T,) in [-1, 1]-ish: horizontal compression + shear
    scale: np.ndarray  # (T,)
    tx: np.ndarray  # (T,) pixels
    ty: np.ndarray  # (T,)
    light_gx: np.ndarray  # (T,) multiplicative gradient across x
    light_gy: np.ndarray  # (T,)
    brightness: np.ndarray  # (T,)
    noise_sigma: float  # in 0–255 units
    blur: np.ndarray  # (T,) Gaussian radius in pixels (0 = sharp)
    occluder: np.ndarray  # (T, 5): visible flag, cx, cy, rx, ry (pixels)
    occluder_color: tuple[int, int, int]
    quality: int  # JPEG / video quality

    def affine(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame forward maps canonical → frame: ``p = A_t (q − c) + c + t_t``; returns ``A (T,2,2)``, ``b (T,2)``."""
        th = np.deg2rad(self.roll)
        c, s = np.cos(th), np.sin(th)
        sx = self.scale * (1.0 - 0.12 * np.abs(self.yaw))
        sh = 0.10 * self.yaw
        R = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T,2,2)
        K = np.zeros_like(R)
        K[:, 0, 0] = sx
        K[:, 0, 1] = sh * self.scale
        K[:, 1, 1] = self.scale
        A = R @ K
        ctr = np.array([size / 2.0, size / 2.0])
        b = ctr[None] - A @ ctr + np.stack([self.tx, self.ty], -1)
        return A, b


def _smooth(rng: np.random.Generator, t: np.ndarray, amp: float, fmin: float = 0.03, fmax: float = 0.4, k: int = 3) -> np.ndarray:
    out = np.zeros_like(t)
    for _ in range(k):
        out += np.sin(2 * np.pi * rng.uniform(fmin, fmax) * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.3, 1.0)
    return amp * out / k * 1.6


def sample_nuisance(rng: np.random.Generator, n_frames: int, fps: float, size: int, strength: float,
                    quality: tuple[int, int] = (75, 95)) -> NuisanceTrack:
    """Draw one video's nuisance tracks."""
    t = np.arange(n_frames) / fps
    st = strength
    roll = rng.normal(0, 3.0) * st + _smooth(rng, t, 5.0 * st)
    yaw = np.clip(rng.normal(0, 0.3) * st + _smooth(rng, t, 0.45 * st), -1, 1)
    scale = 1.0 + rng.normal(0, 0.03) * st + _smooth(rng, t, 0.03 * st)
    tx = (rng.normal(0, 0.025) * st) * size + _smooth(rng, t, 0.03 * st * size)
    ty = (rng.normal(0, 0.02) * st) * size + _smooth(rng, t, 0.02 * st * size)
    gx = rng.normal(0, 0.25) * st + _smooth(rng, t, 0.05 * st, 0.01, 0.1)
    gy = rng.normal(0, 0.15) * st + _smooth(rng, t, 0.04 * st, 0.01, 0.1)
    bright = 1.0 + rng.normal(0, 0.08) * st + _smooth(rng, t, 0.04 * st, 0.05, 0.5)
    noise = float(abs(rng.normal(2.5, 1.5)) * st)
    blur = np.zeros(n_frames)
    occ = np.zeros((n_frames, 5))
    if st > 0:
        # motion blur bursts (~2 per minute, 2–8 frames)
        for _ in range(rng.poisson(2.0 * st * n_frames / fps / 60.0)):
            a = int(rng.integers(0, n_frames))
            blur[a:a + int(rng.integers(2, 9))] = rng.uniform(0.5, 1.4) * size / 128
        # partial occlusions (a hand or object over part of the face, ~1 per minute, 0.5–3 s)
        for _ in range(rng.poisson(1.0 * st * n_frames / fps / 60.0)):
            a = int(rng.integers(0, n_frames))
            n = int(rng.uniform(0.5, 3.0) * fps)
            lower = rng.random() < 0.6
            cx = size * rng.uniform(0.3, 0.7)
            cy = size * (rng.uniform(0.68, 0.85) if lower else rng.uniform(0.25, 0.4))
            drift = rng.normal(0, 0.05 * size, 2)
            for i in range(a, min(n_frames, a + n)):
                f = (i - a) / max(n, 1)
                occ[i] = (1, cx + drift[0] * f, cy + drift[1] * f, size * 0.16, size * 0.11)
    col = tuple(int(c) for c in rng.uniform([150, 100, 80], [235, 190, 170]))
    q = int(rng.integers(quality[0], quality[1] + 1))
    return NuisanceTrack(roll, yaw, scale, tx, ty, gx, gy, bright, noise, blur, occ, col, q)


def no_nuisance(n_frames: int) -> NuisanceTrack:
    z = np.zeros(n_frames)
    return NuisanceTrack(z, z, z + 1, z, z, z, z, z + 1, 0.0, z, np.zeros((n_frames, 5)), (0, 0, 0), 95)
