"""AU dynamics: latent expression episodes + spontaneous single-AU events, each with onset–apex–offset.

An *episode* is an emotion prototype (e.g. happiness = AU6+AU12, optionally +AU25/10/7/14) lasting 0.3–5 s
(longer episodes are chained). Every AU of an episode gets its own apex (prototype intensity × episode strength ×
per-AU jitter) and slightly shifted timing, so AUs co-occur without switching in lock-step. *Spontaneous* events
are independent single-AU bumps; blinks (AU45) are frequent short closures. Overlapping events combine by max.

Two activity profiles follow the real data: ``bp4d`` (tasks T1–T8 dominated by their elicited emotion, dense
activity: BP4D's coded segments are its most expressive parts) and ``disfa`` (sparse episodes while watching
clips, frequent lips-apart). Rates were calibrated so base rates follow ``folds.json`` (``benchmarks/bench_synth.py``).
"""

from __future__ import annotations

import numpy as np

#: prototype -> ({AU: apex intensity}, {AU: (probability, apex intensity)})
PROTOTYPES: dict[str, tuple[dict[int, float], dict[int, tuple[float, float]]]] = {
    "happiness": ({6: 3.0, 12: 3.6}, {25: (0.45, 2.6), 10: (0.6, 2.4), 7: (0.55, 2.3), 14: (0.45, 2.2), 26: (0.12, 2.2)}),
    "surprise": ({1: 3.0, 2: 2.8, 5: 2.6, 25: 3.0}, {26: (0.55, 3.0)}),
    "sadness": ({1: 2.6, 4: 2.4, 15: 2.7, 17: 2.6}, {14: (0.25, 1.8), 24: (0.2, 1.8)}),
    "disgust": ({9: 3.0, 10: 3.2, 17: 2.3}, {4: (0.4, 2.0), 7: (0.4, 2.0), 15: (0.25, 1.8), 25: (0.3, 1.6)}),
    "pain": ({4: 3.0, 6: 2.8, 7: 3.2, 9: 2.4, 10: 3.0}, {25: (0.5, 2.0), 12: (0.3, 1.8), 20: (0.25, 2.0)}),
    "anger": ({4: 3.2, 7: 2.8, 23: 2.7, 24: 2.6}, {17: (0.45, 2.0), 10: (0.35, 2.0), 5: (0.2, 1.8)}),
    "embarrassment": ({12: 2.5, 14: 2.8, 24: 2.4}, {6: (0.45, 2.0), 17: (0.35, 1.6), 7: (0.3, 1.8), 15: (0.15, 1.5)}),
    "fear": ({1: 2.8, 2: 2.4, 4: 2.4, 5: 2.8, 20: 3.0}, {25: (0.7, 2.5), 26: (0.3, 2.0)}),
    "talk": ({25: 2.8}, {26: (0.5, 2.4), 10: (0.15, 1.5), 17: (0.15, 1.5)}),
}

#: BP4D task -> episode mixture (tasks differ in their dominant episodes)
BP4D_TASKS: dict[str, dict[str, float]] = {
    "T1": {"happiness": 0.8, "embarrassment": 0.2},
    "T2": {"sadness": 0.5, "happiness": 0.3, "embarrassment": 0.2},
    "T3": {"surprise": 0.5, "happiness": 0.35, "fear": 0.15},
    "T4": {"embarrassment": 0.5, "happiness": 0.5},
    "T5": {"fear": 0.45, "surprise": 0.2, "pain": 0.1, "happiness": 0.25},
    "T6": {"pain": 0.6, "happiness": 0.2, "anger": 0.2},
    "T7": {"anger": 0.45, "disgust": 0.2, "happiness": 0.35},
    "T8": {"disgust": 0.55, "pain": 0.2, "happiness": 0.25},
}
DISFA_MIX: dict[str, float] = {"happiness": 0.35, "surprise": 0.1, "sadness": 0.08, "disgust": 0.15, "fear": 0.05,
                               "talk": 0.27}

#: profile -> (mean gap between episode starts [s], episode duration range [s], chain probability,
#:             spontaneous events per minute per AU, spontaneous apex range)
PROFILES: dict[str, dict] = {
    "bp4d": {
        "gap": 1.6, "duration": (1.2, 5.0), "chain": 0.55, "strength": (0.6, 1.35),
        "spont": {1: 2.0, 2: 1.8, 4: 1.5, 5: 1.0, 6: 1.5, 7: 5.0, 9: 0.5, 10: 5.0, 12: 1.5, 14: 6.0, 15: 3.0,
                  17: 6.0, 20: 0.8, 23: 3.5, 24: 1.5, 25: 2.0, 26: 0.8},
        "spont_apex": (1.2, 3.0), "blinks": 14.0,
    },
    "disfa": {
        "gap": 5.5, "duration": (0.8, 5.0), "chain": 0.3, "strength": (0.5, 1.3),
        "spont": {1: 0.6, 2: 0.6, 4: 10.0, 5: 0.3, 6: 0.6, 7: 0.5, 9: 0.6, 10: 0.3, 12: 1.2, 14: 0.5, 15: 0.4,
                  17: 0.8, 20: 0.3, 23: 0.4, 24: 0.4, 25: 9.0, 26: 2.5},
        "spont_apex": (1.3, 3.5), "blinks": 12.0,
    },
}


def envelope(t: np.ndarray, start: float, onset: float, apex: float, offset: float) -> np.ndarray:
    """Onset–apex–offset profile in [0, 1] (raised-cosine ramps) at times ``t`` (seconds)."""
    e = np.zeros_like(t)
    a = (t >= start) & (t < start + onset)
    e[a] = 0.5 - 0.5 * np.cos(np.pi * (t[a] - start) / max(onset, 1e-6))
    b = (t >= start + onset) & (t < start + onset + apex)
    e[b] = 1.0
    c = (t >= start + onset + apex) & (t < start + onset + apex + offset)
    e[c] = 0.5 + 0.5 * np.cos(np.pi * (t[c] - start - onset - apex) / max(offset, 1e-6))
    return e


def _event(rng: np.random.Generator, t: np.ndarray, start: float, dur: float) -> np.ndarray:
    on = dur * rng.uniform(0.15, 0.35)
    off = dur * rng.uniform(0.2, 0.4)
    return envelope(t, start, on, max(dur - on - off, 0.0), off)


def simulate_intensities(rng: np.random.Generator, n_frames: int, fps: float, aus: tuple[int, ...], profile: str,
                         mixture: dict[str, float], activity: float = 1.0) -> tuple[np.ndarray, list[dict]]:
    """Continuous intensities ``(T, A)`` in [0, 5] for the AUs ``aus`` and the list of episodes drawn.

    ``activity`` scales episode and spontaneous rates (a difficulty / base-rate knob).
    """
    prof = PROFILES[profile]
    col = {a: j for j, a in enumerate(aus)}
    T = n_frames
    t = np.arange(T) / fps
    out = np.zeros((T, len(aus)), np.float64)
    total = T / fps
    names = list(mixture)
    probs = np.array([mixture[n] for n in names], np.float64)
    probs /= probs.sum()
    episodes: list[dict] = []
    cur = -rng.uniform(0, prof["gap"]) / max(activity, 1e-6)
    while cur < total:
        name = names[rng.choice(len(names), p=probs)]
        dur = rng.uniform(*prof["duration"])
        # chained episodes (same emotion continuing) make long expressive stretches, as in BP4D's coded segments
        while rng.random() < prof["chain"] and dur < 12.0:
            dur += rng.uniform(*prof["duration"]) * 0.7
        strength = rng.uniform(*prof["strength"])
        core, optional = PROTOTYPES[name]
        members = dict(core)
        for au, (p, apex) in optional.items():
            if rng.random() < p:
                members[au] = apex
        for au, apex in members.items():
            if au not in col:
                continue
            a = float(np.clip(apex * strength * np.exp(rng.normal(0, 0.2)), 0.3, 5.0))
            shift = rng.normal(0, 0.12) * dur
            scale = float(np.clip(rng.normal(1.0, 0.12), 0.7, 1.3))
            env = _event(rng, t, cur + shift, dur * scale)
            wobble = 1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.2, 0.7) * t + rng.uniform(0, 6.3))
            out[:, col[au]] = np.maximum(out[:, col[au]], np.clip(a * env * wobble, 0, 5))
        episodes.append({"name": name, "start": round(float(cur), 3), "duration": round(float(dur), 3),
                         "strength": round(float(strength), 3), "aus": sorted(int(a) for a in members)})
        cur += dur * 0.8 + rng.exponential(prof["gap"]) / max(activity, 1e-6)
    # spontaneous single-AU events (0.3–3 s)
    for au, per_min in prof["spont"].items():
        if au not in col:
            continue
        n = rng.poisson(per_min * activity * total / 60.0)
        for _ in range(n):
            start = rng.uniform(-0.5, total)
            dur = rng.uniform(0.3, 3.0)
            a = rng.uniform(*prof["spont_apex"])
            out[:, col[au]] = np.maximum(out[:, col[au]], a * _event(rng, t, start, dur))
    if 45 in col:  # blinks: short full closures, unlabelled distractor
        n = rng.poisson(prof["blinks"] * total / 60.0)
        for _ in range(n):
            start = rng.uniform(0, total)
            dur = rng.uniform(0.12, 0.35)
            out[:, col[45]] = np.maximum(out[:, col[45]], 5.0 * envelope(t, start, dur * 0.35, dur * 0.15, dur * 0.5))
    return np.clip(out, 0.0, 5.0).astype(np.float32), episodes


def occurrence(intensity: np.ndarray, threshold: float) -> np.ndarray:
    """Occurrence from continuous intensity: present when ``floor(I) ≥ threshold`` (integer FACS levels)."""
    return (np.floor(intensity + 1e-6) >= threshold).astype(np.int8)


def integer_intensity(intensity: np.ndarray) -> np.ndarray:
    """Integer intensity 0–5 as coded by FACS coders (A=1 … E=5): ``floor(I)`` clipped to [0, 5]."""
    return np.clip(np.floor(intensity + 1e-6), 0, 5).astype(np.int8)


def add_label_noise(occ: np.ndarray, rng: np.random.Generator, amount: float, fps: float) -> np.ndarray:
    """Human-like label noise near event boundaries: each on/off boundary of each AU is moved, with probability
    ``amount``, by 1..round(0.2·fps) frames in a random direction (coders disagree on onsets/offsets)."""
    if amount <= 0:
        return occ.copy()
    out = occ.copy()
    T = len(occ)
    max_shift = max(1, int(round(0.2 * fps)))
    for j in range(occ.shape[1]):
        y = occ[:, j]
        edges = np.flatnonzero(np.diff(y.astype(np.int16)) != 0) + 1  # first frame of a new run
        for e in edges:
            if rng.random() >= amount:
                continue
            k = int(rng.integers(1, max_shift + 1))
            if rng.random() < 0.5:  # extend the later run backwards
                lo, hi = max(0, e - k), e
                out[lo:hi, j] = y[e]
            else:  # extend the earlier run forwards
                lo, hi = e, min(T, e + k)
                out[lo:hi, j] = y[e - 1]
    return out
