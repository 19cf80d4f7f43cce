"""Training batches (key-frame clips, all frames, video windows) and evaluation chunks.

:class:`TrainBatches` turns a training split, its key frames (``auspread.data.labels``) and a frame store into the
batch dicts documented in :mod:`auspread.methods.base`. Every rule below is tested in ``tests/data/test_sampling.py``.

**Items.** ``spec.sampling`` decides what one clip is drawn around:

* ``"key_frames"``: one item per key frame; the clip shows ONLY that frame's label (at ``key_pos``), every other
  frame of the clip is an unlabelled neighbour (KS supplement §1.2: "each input video clip contains one label",
  also when ``every < n`` puts other key frames inside the window: they are items of their own);
* ``"all_frames"``: one item per frame of every video; the clip shows the policy's visible labels on all its frames
  (−1 where hidden); ``key_pos`` is the item frame's position if it is a key frame, else −1;
* ``"video_windows"``: one item per video with at least one key frame; each epoch one window of n frames at a
  uniformly random start (MDHR, reference B.1); visible labels on all frames; ``key_pos`` = the first labelled
  position in the window or −1.

**Clips at video borders.** A clip never leaves its video: its window start ``s`` lies in ``[0, T−n]``, so an item
at frame ``t`` can only sit at positions ``m ∈ [t−(T−n), t] ∩ [0, n−1]``. Videos shorter than n are padded by
repeating their first/last frame (labels −1 on the copies, ``frame`` shows the repeated position).

**Key position.** Without ``spec.key_frame_shift`` each item's position is uniform over its allowed positions.
With it, global step ``b`` of the epoch puts every clip's key frame at ``m = b mod n`` (KS supplement §1.2; the same
``m`` on every rank). The supplement counts batches B and positions from 1 ("the first batch … 1 mod 5 equals 1",
positions 1…5 with 0 read as 5); with 0-based b = B − 1 and 0-based positions that is exactly ``m = b mod n``. Border items, whose allowed positions are restricted, are assigned to steps with an allowed
``m`` by earliest-deadline-first matching over the epoch, so windows stay inside the video AND every clip of step b
has its key at ``b mod n``. Only when no allowed slot is left (videos barely longer than n with most key frames
at their borders) does an item go to another step with its window shifted inside the video; ``key_pos`` always
states the true position. The number of steps with each ``m`` differs by at most one, so key positions are
balanced over an epoch.

**Epochs and shards.** :meth:`set_epoch` reshuffles deterministically from ``(seed, epoch)``. An epoch has
``ceil(N / (B·W))`` steps (N items, B per-rank batch, W ranks); the permutation is repeated to fill the last step.
Step ``b``'s ``B·W`` items are split into W disjoint slices of B: rank r gets slice r. Augmentation draws come from
a generator seeded by ``(seed, epoch, step, rank)``, so batches do not depend on ``num_workers``.

**Unlabelled clips** (``spec.unlabelled_ratio = μ > 0``, from epoch ``spec.unlabelled_from_epoch`` on; before
that the key is absent and nothing is decoded): ``round(μ·B)`` clips per batch around frames that are not key
frames (all frames when every frame is a key frame, e.g. 100% labels), with labels all −1, ``key_pos`` −1 and,
with key-frame shifting, their centre frame at the batch's ``m``. Drawn from a per-epoch permutation of that pool,
disjoint across ranks within a step.

**Where augmentation runs** (``data.augment_on``). ``loader``: the workers augment and hand over float crops.
``device``: the workers take the same draws from the same generator and hand over the uint8 frames with the draws
(``augment``, FixMatch's ``strong_plan``); :meth:`TrainBatches.finish` augments them on ``TrainBatches.device``
(a GPU). On one device both give equal batches.
"""

from __future__ import annotations

import heapq
import math
from typing import Iterator

import numpy as np
import torch

from auspread.data.index import UNKNOWN, VideoIndex
from auspread.data.spec import DataSpec
from auspread.data.store import FrameStore
from auspread.data.transforms import ClipTransform, StrongClipTransform
from auspread.data.config import DataConfig
from auspread.errors import DataError


def allowed_positions(t: np.ndarray, num_frames: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``[lo, hi]`` an item at frame ``t`` may take in an n-frame clip inside its video."""
    s_lo = np.minimum(0, num_frames - n)
    s_hi = np.maximum(0, num_frames - n)
    return np.clip(t - s_hi, 0, n - 1), np.clip(t - s_lo, 0, n - 1)


def assign_shifted(lo: np.ndarray, hi: np.ndarray, capacity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Give each item (in the given order) a position in ``[lo, hi]`` so position m is used ``capacity[m]`` times.

    Earliest-deadline-first over positions (optimal for interval constraints); items left without an allowed
    slot take any free position (returned as is; the caller shifts their window). ``capacity.sum()`` must equal
    the number of items.
    """
    n = len(capacity)
    out = np.full(len(lo), -1, dtype=np.int64)
    cap = capacity.astype(np.int64).copy()
    constrained = np.flatnonzero((lo > 0) | (hi < n - 1))
    order = constrained[np.argsort(lo[constrained], kind="stable")]
    heap: list[tuple[int, int]] = []
    k = 0
    for m in range(n):
        while k < len(order) and lo[order[k]] <= m:
            heapq.heappush(heap, (int(hi[order[k]]), int(order[k])))
            k += 1
        while heap and cap[m] > 0:
            h, i = heapq.heappop(heap)
            if h < m:
                continue  # deadline passed: left for the fallback below
            out[i] = m
            cap[m] -= 1
    free = np.repeat(np.arange(n), cap)
    rest = np.flatnonzero(out < 0)
    free = free[rng.permutation(len(free))]
    out[rest] = free[: len(rest)]
    return out


class _StepDataset(torch.utils.data.Dataset):
    """Step b → the whole batch dict for this rank (so one worker builds one batch, nested parts included).
    ``length`` longer than the epoch repeats its steps (``b mod len(owner)``)."""

    def __init__(self, owner: "TrainBatches", length: int | None = None):
        self.owner = owner
        self.length = length

    def __len__(self) -> int:
        return len(self.owner) if self.length is None else self.length

    def __getitem__(self, step: int) -> dict:
        return self.owner.batch(step % len(self.owner))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


class TrainBatches:
    """Iterable of training batch dicts for one rank; see the module docstring for the sampling rules.

    ``index`` is the split with its *true* labels (used for ``true_labels``, logging only); what a method may see
    is decided by ``key_frames`` alone (labels at key frames, −1 elsewhere). Passing the already masked index of
    :class:`~auspread.data.labels.SparseLabels` works too (``true_labels`` then equals the visible labels).
    """

    def __init__(
        self,
        index: VideoIndex,
        key_frames: np.ndarray,
        store: FrameStore,
        spec: DataSpec,
        data_cfg: DataConfig,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        subject_ids: dict[str, int] | None = None,
        device: torch.device | str = "cpu",
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if len(store) != len(index.videos):
            raise ValueError("the frame store was built for a different index")
        self.index, self.store, self.spec, self.cfg = index, store, spec, data_cfg
        self.batch_size, self.seed, self.rank, self.world_size = int(batch_size), int(seed), rank, world_size
        self.device = torch.device(device)  # where data.augment_on=device augments
        self.n = int(spec.clip_len)
        self.lengths = np.array([len(v) for v in index.videos], dtype=np.int64)
        kf = np.asarray(key_frames, dtype=np.int64).reshape(-1, 2)
        self.key_frames = kf
        self.is_key = [np.zeros(t, dtype=bool) for t in self.lengths]
        for v, t in kf:
            self.is_key[v][t] = True
        self.visible = []
        for v, rec in enumerate(index.videos):
            lab = np.full_like(rec.labels, UNKNOWN)
            lab[self.is_key[v]] = rec.labels[self.is_key[v]]
            self.visible.append(lab)
        ids = subject_ids if subject_ids is not None else {s: i for i, s in enumerate(index.subjects())}
        self.subject_of = np.array([ids[v.subject] for v in index.videos], dtype=np.int64)
        self.transform = ClipTransform(data_cfg.image_size, data_cfg.augment, train=True)
        self.strong = StrongClipTransform(data_cfg.image_size, data_cfg.augment) if spec.strong_view else None
        if spec.landmarks:
            for v in index.videos:
                if v.landmarks is None:
                    raise DataError(v.meta.get("label_file", v.video_id), "the method needs landmarks but this "
                                    "video has none (add Landmarks_68/<video>.npz or run `auspread prepare`)")
        # items
        if spec.sampling == "key_frames":
            self.items = kf
        elif spec.sampling == "all_frames":
            self.items = np.concatenate([np.stack([np.full(t, v), np.arange(t)], 1) for v, t in enumerate(self.lengths)]
                                        ) if len(self.lengths) else np.zeros((0, 2), np.int64)
        elif spec.sampling == "video_windows":
            vids = np.array([v for v in range(len(self.lengths)) if self.is_key[v].any()], dtype=np.int64)
            self.items = np.stack([vids, np.zeros_like(vids)], 1)
        else:  # pragma: no cover - DataSpec's Literal
            raise ValueError(f"unknown sampling {spec.sampling!r}")
        if len(self.items) == 0:
            raise DataError(index.root or index.dataset, f"no training items for sampling {spec.sampling!r} "
                            "(no labelled key frames in the training split?)")
        pool = [np.flatnonzero(~k) for k in self.is_key]
        if sum(len(p) for p in pool) == 0:  # every frame is a key frame (100% labels): use all frames
            pool = [np.arange(t) for t in self.lengths]
        self.pool = np.concatenate([np.stack([np.full(len(p), v), p], 1) for v, p in enumerate(pool)]).astype(np.int64)
        self.num_unlabelled = int(round(spec.unlabelled_ratio * self.batch_size))
        self.set_epoch(0)

    # --- epoch plan --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        """Deterministic plan for ``epoch`` from ``(seed, epoch)``: items, positions and window starts per step."""
        self.epoch = int(epoch)
        n, g = self.n, self.batch_size * self.world_size
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        self.steps = max(1, math.ceil(len(self.items) / g))
        order = np.resize(rng.permutation(len(self.items)), self.steps * g)
        vid, t = self.items[order, 0], self.items[order, 1]
        T = self.lengths[vid]
        s_lo, s_hi = np.minimum(0, T - n), np.maximum(0, T - n)
        if self.spec.sampling == "video_windows":
            start = s_lo + (rng.random(len(vid)) * (s_hi - s_lo + 1)).astype(np.int64)
            anchor = np.full(len(vid), -1)
        else:
            lo, hi = allowed_positions(t, T, n)
            if self.spec.key_frame_shift and n > 1:
                steps_m = np.arange(self.steps) % n
                m = assign_shifted(lo, hi, np.bincount(steps_m, minlength=n) * g, rng)
                # place each m-group (shuffled) into the steps with that m
                slot = np.empty(len(vid), dtype=np.int64)
                for mm in range(n):
                    members = np.flatnonzero(m == mm)
                    members = members[rng.permutation(len(members))]
                    slots = (np.flatnonzero(steps_m == mm)[:, None] * g + np.arange(g)[None]).ravel()
                    slot[slots] = members
                vid, t, m, T, s_lo, s_hi = vid[slot], t[slot], m[slot], T[slot], s_lo[slot], s_hi[slot]
            else:
                m = lo + (rng.random(len(vid)) * (hi - lo + 1)).astype(np.int64)
            start = np.clip(t - m, s_lo, s_hi)
            anchor = t
        self.plan_video = vid.reshape(self.steps, g)
        self.plan_start = start.reshape(self.steps, g)
        self.plan_anchor = np.asarray(anchor).reshape(self.steps, g)
        self.unl_order = np.random.default_rng([self.seed, self.epoch, 2]).permutation(len(self.pool))

    def key_position(self, step: int) -> int | None:
        """The key position m of ``step`` under key-frame shifting (None when positions are random)."""
        return step % self.n if (self.spec.key_frame_shift and self.spec.sampling != "video_windows") else None

    # --- batch assembly ----------------------------------------------------------------------------------------
    def _clip(self, v: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        raw = start + np.arange(self.n)
        return np.clip(raw, 0, self.lengths[v] - 1), (raw < 0) | (raw >= self.lengths[v])

    def _landmarks(self, v: int, pos: np.ndarray) -> np.ndarray:
        w, h = self.store.source_size(v)
        s = self.store.size
        lm = self.index.videos[v].landmarks[pos].astype(np.float32)
        return np.stack([(lm[..., 0] + 0.5) * s / w - 0.5, (lm[..., 1] + 0.5) * s / h - 0.5], -1)

    def _assemble(self, rows: list[tuple[int, int, int]], rng: np.random.Generator, unlabelled: bool) -> dict:
        """rows: (video, window start, anchor frame or -1) → batch dict of tensors."""
        n, u = self.n, self.index.num_aus
        out: dict[str, list] = {k: [] for k in ("u8", "lm", "labels", "true_labels", "key_pos", "subject", "video",
                                                "frame")}
        for v, start, anchor in rows:
            pos, pad = self._clip(v, start)
            true = self.index.videos[v].labels[pos].astype(np.float32)
            true[pad] = UNKNOWN
            labels = np.full((n, u), UNKNOWN, dtype=np.float32)
            key = -1
            if not unlabelled:
                mode = self.spec.sampling
                if mode == "key_frames":
                    key = anchor - start
                    labels[key] = self.visible[v][anchor]
                else:
                    labels = self.visible[v][pos].astype(np.float32)
                    labels[pad] = UNKNOWN
                    if mode == "all_frames":
                        key = anchor - start if self.is_key[v][anchor] else -1
                    else:
                        lab = np.flatnonzero((labels >= 0).any(1))
                        key = int(lab[0]) if len(lab) else -1
            out["u8"].append(self.store.frames(v, pos))
            if self.spec.landmarks:
                out["lm"].append(self._landmarks(v, pos))
            out["labels"].append(labels)
            out["true_labels"].append(true)
            out["key_pos"].append(key)
            out["subject"].append(int(self.subject_of[v]))
            out["video"].append(v)
            out["frame"].append(pos)
        u8 = np.stack(out["u8"])
        lm = np.stack(out["lm"]) if self.spec.landmarks else None
        extra = {}
        if self.cfg.augment_on == "device":  # draws here (the same rng order), pixels in finish() on the device
            ps = [self.transform.draw(rng, u8.shape[2]) for _ in range(len(u8))]
            lm_out = self.transform.landmarks_drawn(None if lm is None else torch.as_tensor(lm, dtype=torch.float32),
                                                    ps, u8.shape[2])
            frames = torch.from_numpy(u8)
            extra["augment"] = self.transform.draws_to_tensor(ps)
            if self.strong is not None:
                extra["strong_plan"] = self.strong.draw_plan(rng, len(u8), u8.shape[2])
        else:
            frames, lm_out = self.transform.apply(u8, lm, rng)
        batch = {
            "frames": frames,
            "labels": torch.from_numpy(np.stack(out["labels"])),
            "true_labels": torch.from_numpy(np.stack(out["true_labels"])),
            "key_pos": torch.tensor(out["key_pos"], dtype=torch.long),
            "subject": torch.tensor(out["subject"], dtype=torch.long),
            "video": torch.tensor(out["video"], dtype=torch.long),
            "frame": torch.from_numpy(np.stack(out["frame"]).astype(np.int64)),
        }
        if self.strong is not None and not extra:
            batch["strong"] = self.strong.apply(u8, None, rng)[0]
        if self.spec.landmarks:
            batch["landmarks"] = lm_out
        batch.update(extra)
        return batch

    def finish(self, batch: dict) -> dict:
        """A loader batch on ``self.device``, augmented there when ``data.augment_on=device`` (uint8 frames and the
        worker's draws → the same crops as the loader path); unchanged values moved otherwise."""
        out = {}
        for k, v in batch.items():
            if isinstance(v, dict):
                out[k] = self.finish(v)
            elif isinstance(v, torch.Tensor) and k not in ("augment", "strong_plan"):
                out[k] = v.to(self.device, non_blocking=True)
            elif k not in ("augment", "strong_plan"):
                out[k] = v
        if "augment" in batch:
            u8 = out["frames"].permute(0, 1, 4, 2, 3)
            ps = self.transform.draws_from_tensor(batch["augment"])
            out["frames"] = self.transform.normalise(self.transform.augment_drawn(u8, ps)).contiguous()
            if "strong_plan" in batch:
                out["strong"] = self.strong.apply_plan(u8, batch["strong_plan"])
        return out

    def _unlabelled_rows(self, step: int) -> list[tuple[int, int, int]]:
        k, n = self.num_unlabelled, self.n
        base = (step * self.world_size + self.rank) * k
        idx = self.unl_order[(base + np.arange(k)) % len(self.pool)]
        vid, t = self.pool[idx, 0], self.pool[idx, 1]
        T = self.lengths[vid]
        lo, hi = allowed_positions(t, T, n)
        m_fix = self.key_position(step)
        rng = np.random.default_rng([self.seed, self.epoch, 4, step, self.rank])
        m = np.clip(m_fix, lo, hi) if m_fix is not None else lo + (rng.random(k) * (hi - lo + 1)).astype(np.int64)
        start = np.clip(t - m, np.minimum(0, T - n), np.maximum(0, T - n))
        return [(int(a), int(b), int(c)) for a, b, c in zip(vid, start, t)]

    def batch(self, step: int) -> dict:
        """The batch dict of global step ``step`` of the current epoch for this rank."""
        if not 0 <= step < self.steps:
            raise IndexError(step)
        sl = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        rows = list(zip(self.plan_video[step, sl].tolist(), self.plan_start[step, sl].tolist(),
                        self.plan_anchor[step, sl].tolist()))
        rng = np.random.default_rng([self.seed, self.epoch, 3, step, self.rank])
        batch = self._assemble(rows, rng, unlabelled=False)
        if self.num_unlabelled > 0 and self.epoch >= self.spec.unlabelled_from_epoch:
            batch["unlabelled"] = self._assemble(self._unlabelled_rows(step), rng, unlabelled=True)
        return batch

    def loader(self, num_steps: int | None = None) -> torch.utils.data.DataLoader:
        """The DataLoader of this epoch's batches (``data.num_workers`` processes). ``num_steps`` longer than the
        epoch repeats its steps in order (throughput checks on a small dataset, ``auspread doctor``)."""
        workers = self.cfg.num_workers
        return torch.utils.data.DataLoader(
            _StepDataset(self, num_steps), batch_size=None, shuffle=False, num_workers=workers,
            worker_init_fn=_worker_init if workers > 0 else None,
            prefetch_factor=2 if workers > 0 else None, pin_memory=torch.cuda.is_available(),
        )

    def iterate(self, num_steps: int | None = None) -> Iterator[dict]:
        """This epoch's batches as the training step takes them: from :meth:`loader`, finished on ``self.device``
        when ``data.augment_on=device``."""
        it = iter(self.loader(num_steps))
        return it if self.cfg.augment_on == "loader" else (self.finish(b) for b in it)

    def __iter__(self) -> Iterator[dict]:
        return self.iterate()


def video_chunks(
    store: FrameStore, video_i: int, transform: ClipTransform, chunk: int, device: torch.device | str = "cpu"
) -> Iterator[torch.Tensor]:
    """Consecutive normalised test-transform batches ``(k, 3, H, W)`` covering frames ``0..T−1`` once, in order
    (input of :meth:`auspread.methods.base.Method.predict_video`)."""
    if transform.train:
        raise ValueError("video_chunks needs a test transform (ClipTransform(..., train=False))")
    total = store.num_frames(video_i)
    for a in range(0, total, chunk):
        x, _ = transform(store.frames(video_i, np.arange(a, min(total, a + chunk))))
        yield x.to(device, non_blocking=True)
