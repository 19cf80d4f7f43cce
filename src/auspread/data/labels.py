"""Sparse label policies (KS supplement §1.2) and what they keep (KS §4.4, Fig. 5).

KS assumes only one label every ``k`` frames is available: the labelled frames become *key frames*, and n-frame
clips are built around them (``auspread.data.sampling``). :func:`sparsify` implements the policy:

* per video, the *labelled* frames are the frames with at least one known AU label (``labels >= 0`` somewhere in
  the row); frames whose true labels are all unknown (BP4D's uncoded frames, whole unlabelled videos) can never be
  key frames;
* one random offset ``o`` per video, drawn from a generator seeded by ``(seed, crc32(video_id))`` so a video gets
  the same key frames whatever fold or subset it appears in, uniformly in ``{0, …, min(k, L) − 1}`` where ``L`` is
  the video's number of labelled frames (so every video with a label keeps at least one);
* the key frames are the labelled frames ``o, o + k, o + 2k, …`` (counted along the labelled frames, which for a
  fully coded video is the same as along the frames);
* key frames keep their whole label row; every other frame becomes all ``-1``. ``every = 1`` keeps every label.

A ratio r% where 100 / r is not a whole number (15%, 60%, 70%, …) is kept exact instead of rounded to a k
(:class:`~auspread.data.config.LabelRegime` ``percent``): per video, ``n = round(r/100 · L)`` key frames (at least
one when ``L > 0``), evenly spread at the real step ``s = L / n``: the labelled frames ``floor(u + i·s)``,
``i = 0 … n−1``, with one seeded offset ``u`` in ``[0, s)`` per video (the same generator as above). Consecutive key
frames are then ``floor(s)`` or ``ceil(s)`` labelled frames apart, and the split keeps about ``r/100`` of its
labelled frames. Ratios with a whole 100 / r take the every-k rule above, unchanged.

A video whose labels are all ``-1`` yields no key frame; its frames still feed unlabelled clips.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from auspread.data.config import LabelRegime
from auspread.data.index import UNKNOWN, VideoIndex


@dataclass
class SparseLabels:
    """The result of a label policy.

    Attributes:
        index: the same videos with labels ``-1`` everywhere except at key frames.
        key_frames: ``(K, 2)`` int64 rows ``(video_i, t)``: video position in ``index.videos`` and frame position
            in that video, sorted by video then frame.
        every: the policy's ``k`` (None for an exact ratio).
        percent: the exact ratio in percent (None for the every-k rule).
    """

    index: VideoIndex
    key_frames: np.ndarray
    every: int | None
    percent: float | None = None

    @property
    def num_key_frames(self) -> int:
        return len(self.key_frames)


def video_offset(video_id: str, every: int, num_labelled: int, seed: int) -> int:
    """The seeded offset of one video's key frames among its labelled frames."""
    if num_labelled == 0:
        return 0
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(video_id.encode("utf-8"))])
    return int(rng.integers(0, min(every, num_labelled)))


def exact_positions(video_id: str, num_labelled: int, fraction: float, seed: int) -> np.ndarray:
    """Positions among a video's ``num_labelled`` labelled frames kept by the exact ratio ``fraction`` (in (0, 1]):
    ``round(fraction · L)`` of them (at least one), evenly spread from one seeded offset (module docstring)."""
    if num_labelled == 0:
        return np.zeros(0, dtype=np.int64)
    n = min(num_labelled, max(1, int(round(fraction * num_labelled))))
    step = num_labelled / n
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(video_id.encode("utf-8"))])
    u = rng.random() * step
    return np.minimum(np.floor(u + step * np.arange(n)).astype(np.int64), num_labelled - 1)


def labelled_positions(labels: np.ndarray) -> np.ndarray:
    """Frame positions with at least one known label."""
    return np.flatnonzero((labels >= 0).any(axis=1))


def sparsify(index: VideoIndex, every: int | LabelRegime, seed: int) -> SparseLabels:
    """Keep one label every ``every`` labelled frames per video (KS supplement §1.2), or, given a
    :class:`~auspread.data.config.LabelRegime` with an exact ``percent``, that ratio; see the module docstring."""
    regime = every if isinstance(every, LabelRegime) else LabelRegime(every=every)
    new_labels: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    for vi, v in enumerate(index.videos):
        lab = labelled_positions(v.labels)
        if regime.percent is not None:
            kept = lab[exact_positions(v.video_id, len(lab), regime.percent / 100.0, seed)]
        else:
            kept = lab[video_offset(v.video_id, regime.every, len(lab), seed)::regime.every]
        masked = np.full_like(v.labels, UNKNOWN)
        masked[kept] = v.labels[kept]
        new_labels.append(masked)
        keys.append(np.stack([np.full(len(kept), vi, dtype=np.int64), kept.astype(np.int64)], axis=1))
    key_frames = np.concatenate(keys) if keys else np.zeros((0, 2), dtype=np.int64)
    return SparseLabels(index=index.with_labels(new_labels), key_frames=key_frames.reshape(-1, 2), every=regime.every,
                        percent=regime.percent)


def _distinct_rows(rows: np.ndarray) -> int:
    if len(rows) == 0:
        return 0
    return len(np.unique(rows, axis=0))


def label_statistics(full_index: VideoIndex, sparse: SparseLabels, seed: int = 0, repeats: int = 5) -> dict:
    """What a sparse policy kept, and how many distinct AU combinations it retained (KS §4.4, Fig. 5).

    An *AU combination* is a frame's whole label row (values 1/0/−1 per AU, so a partly coded row is its own
    combination). The sparse policy's count is compared, at the same budget K (number of key frames), with two
    seeded baselines averaged over ``repeats`` draws:

    * ``random_frames``: K labelled frames drawn uniformly without replacement from the whole training pool;
    * ``contiguous``: per video, one contiguous run of labelled frames as long as that video's key-frame count,
      at a random start (the "continuous annotation" of earlier video semi-supervised work that Fig. 5 contrasts).
    """
    if len(full_index.videos) != len(sparse.index.videos):
        raise ValueError("full_index and sparse must describe the same videos")
    aus = full_index.aus
    full_rows = [v.labels for v in full_index.videos]
    all_rows = np.concatenate(full_rows) if full_rows else np.zeros((0, len(aus)), np.int8)
    lab_mask = (all_rows >= 0).any(1)
    labelled = all_rows[lab_mask]
    k = sparse.num_key_frames
    key_rows = (
        np.stack([full_rows[vi][t] for vi, t in sparse.key_frames]) if k else np.zeros((0, len(aus)), np.int8)
    )
    rng = np.random.default_rng(seed)
    rand_counts, contig_counts = [], []
    per_video_k = np.bincount(sparse.key_frames[:, 0], minlength=len(full_rows)) if k else np.zeros(len(full_rows), int)
    for _ in range(repeats):
        pick = rng.choice(len(labelled), size=min(k, len(labelled)), replace=False) if k else np.zeros(0, int)
        rand_counts.append(_distinct_rows(labelled[pick]))
        runs = []
        for vi, rows in enumerate(full_rows):
            lab = labelled_positions(rows)
            kv = int(per_video_k[vi])
            if kv == 0:
                continue
            start = int(rng.integers(0, len(lab) - kv + 1))
            runs.append(rows[lab[start:start + kv]])
        contig_counts.append(_distinct_rows(np.concatenate(runs)) if runs else 0)
    known_full = (all_rows >= 0).sum()
    known_kept = int((key_rows >= 0).sum())
    pos_full = (all_rows == 1).sum(0)
    pos_kept = (key_rows == 1).sum(0) if k else np.zeros(len(aus), int)
    return {
        "every": sparse.every,
        "percent": sparse.percent,
        "videos": len(full_rows),
        "videos_with_key_frames": int((per_video_k > 0).sum()),
        "frames": int(len(all_rows)),
        "labelled_frames": int(lab_mask.sum()),
        "key_frames": int(k),
        "frame_ratio": float(k / lab_mask.sum()) if lab_mask.sum() else 0.0,
        "known_cells_total": int(known_full),
        "known_cells_kept": known_kept,
        "cell_ratio": float(known_kept / known_full) if known_full else 0.0,
        "positives_kept": {f"AU{a}": [int(pk), int(pf)] for a, pk, pf in zip(aus, pos_kept, pos_full)},
        "combinations_all": _distinct_rows(labelled),
        "combinations_sparse": _distinct_rows(key_rows),
        "combinations_random_frames": float(np.mean(rand_counts)) if repeats else float("nan"),
        "combinations_contiguous": float(np.mean(contig_counts)) if repeats else float("nan"),
        "baseline_repeats": repeats,
        "baseline_seed": seed,
    }
