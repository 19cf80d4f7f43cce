"""Two augmented views of neighbouring frames for self-supervised pretraining.

:class:`FaceViews` turns a batch of uint8 store frames ``(B, S, S, 3)`` into one normalised view ``(B, 3, H, H)``,
an independent draw per frame (unlike the training :class:`~auspread.data.transforms.ClipTransform`, which shares
one draw across a clip): random resized crop + roll + horizontal flip in one bilinear resample, colour jitter
(brightness → contrast → saturation, probability ``jitter_p``), greyscale, Gaussian blur, solarisation, ImageNet
normalisation. Every draw comes from the NumPy generator passed in, so a batch is a pure function of its seed.

:class:`PretrainBatches` draws, per step, ``B`` frames ``t`` of the training split uniformly over all its frames
and pairs each with a frame ``t + d`` of the same video, ``d ~ U{−o..o}`` clipped to the video (``o`` =
``recipe.temporal_offset``; ρBYOL's temporal positives, Feichtenhofer et al. CVPR 2021). With
``frames_per_video = M > 1`` the batch instead holds ``B/M`` videos and ``M`` frames spread over each (within-video
negatives for SimCLR). Batches are a pure
function of ``(seed, epoch, step, rank)`` (resume repeats them exactly) and shard like
:class:`~auspread.data.sampling.TrainBatches`: step ``b``'s ``B·W`` items are split into W disjoint slices.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as tnf

from auspread.data.index import VideoIndex
from auspread.data.sampling import _StepDataset, _worker_init
from auspread.data.store import FrameStore
from auspread.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from auspread.errors import DataError
from auspread.pretrain.config import ViewAugment

_GREY = torch.tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R 601 luma, as torchvision


class FaceViews:
    """One augmented view per frame; ``view`` (0 or 1) picks the view's blur and solarisation probabilities."""

    def __init__(self, image_size: int, aug: ViewAugment):
        self.h, self.aug = int(image_size), aug
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def draw(self, rng: np.random.Generator, b: int, s: int, view: int) -> dict[str, np.ndarray]:
        a = self.aug
        area = rng.uniform(*a.crop_scale, b) * s * s
        ratio = np.exp(rng.uniform(math.log(a.crop_ratio[0]), math.log(a.crop_ratio[1]), b))
        w = np.minimum(np.sqrt(area * ratio), s)
        h = np.minimum(np.sqrt(area / ratio), s)
        j = a.color_jitter
        jit = rng.random(b) < a.jitter_p
        sig = rng.uniform(*a.blur_sigma, b) * self.h / 224
        return {
            "w": w, "h": h, "cx": rng.uniform(w / 2, s - w / 2), "cy": rng.uniform(h / 2, s - h / 2),
            "angle": np.radians(rng.uniform(-a.rotation, a.rotation, b)),
            "flip": (rng.random(b) < 0.5) & a.flip,
            "bright": np.where(jit, rng.uniform(1 - j, 1 + j, b), 1.0),
            "contrast": np.where(jit, rng.uniform(1 - j, 1 + j, b), 1.0),
            "sat": np.where(jit, rng.uniform(1 - j / 2, 1 + j / 2, b), 1.0),
            "grey": rng.random(b) < a.grey_p,
            "sigma": np.where(rng.random(b) < a.blur_p[view], sig, 0.0),
            "solarize": rng.random(b) < a.solarize_p[view],
        }

    def _geometry(self, x: torch.Tensor, p: dict) -> torch.Tensor:
        """Crop (centre cx, cy, size w×h in store pixels), roll and flip: one ``affine_grid`` resample to H×H."""
        s = x.shape[-1]
        t = lambda k: torch.from_numpy(np.asarray(p[k], dtype=np.float32))  # noqa: E731
        cos, sin, f = torch.cos(t("angle")), torch.sin(t("angle")), 1.0 - 2.0 * t("flip")
        sx, sy = t("w") / s * f, t("h") / s
        theta = torch.stack([torch.stack([cos * sx, -sin * sy, 2 * t("cx") / s - 1], 1),
                             torch.stack([sin * sx, cos * sy, 2 * t("cy") / s - 1], 1)], 1)
        grid = tnf.affine_grid(theta, [x.shape[0], 3, self.h, self.h], align_corners=False)
        return tnf.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def _colour(x: torch.Tensor, p: dict) -> torch.Tensor:
        """torchvision's adjust_brightness / contrast / saturation blends, per-frame factors, clamped to [0, 1]."""
        f = lambda k: torch.from_numpy(np.asarray(p[k], dtype=np.float32)).view(-1, 1, 1, 1)  # noqa: E731
        x = (x * f("bright")).clamp(0, 1)
        mean = (x * _GREY).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        x = (x * f("contrast") + (1 - f("contrast")) * mean).clamp(0, 1)
        grey = (x * _GREY).sum(1, keepdim=True)
        x = (x * f("sat") + (1 - f("sat")) * grey).clamp(0, 1)
        g = torch.from_numpy(p["grey"]).view(-1, 1, 1, 1)
        return torch.where(g, (x * _GREY).sum(1, keepdim=True).expand_as(x), x)

    @staticmethod
    def _blur(x: torch.Tensor, sigma: np.ndarray) -> torch.Tensor:
        """Separable Gaussian blur, standard deviation ``sigma[i]`` pixels for frame i (0: unchanged)."""
        if not (sigma > 0).any():
            return x
        b, c, hh, ww = x.shape
        r = max(1, int(math.ceil(3 * sigma.max())))
        d = torch.arange(-r, r + 1, dtype=torch.float32)
        sg = torch.from_numpy(np.maximum(sigma, 1e-6).astype(np.float32)).view(-1, 1)
        k = torch.exp(-0.5 * (d / sg) ** 2)
        k = k / k.sum(1, keepdim=True)  # (B, 2r+1); sigma ~ 0 gives a delta
        k = k.repeat_interleave(c, 0)
        y = tnf.pad(x.reshape(1, b * c, hh, ww), (r, r, r, r), mode="reflect")
        y = tnf.conv2d(y, k.view(b * c, 1, 1, -1), groups=b * c)
        y = tnf.conv2d(y, k.view(b * c, 1, -1, 1), groups=b * c)
        return y.view(b, c, hh, ww)

    def __call__(self, u8: np.ndarray | torch.Tensor, rng: np.random.Generator, view: int = 0) -> torch.Tensor:
        """uint8 ``(B, S, S, 3)`` → normalised float ``(B, 3, H, H)``."""
        t = torch.from_numpy(np.ascontiguousarray(u8)) if isinstance(u8, np.ndarray) else u8
        if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames (B, S, S, 3), got {tuple(t.shape)} {t.dtype}")
        x = t.permute(0, 3, 1, 2).float().div_(255.0)
        p = self.draw(rng, x.shape[0], x.shape[-1], view)
        x = self._colour(self._geometry(x, p), p)
        x = self._blur(x, p["sigma"])
        sol = torch.from_numpy(p["solarize"]).view(-1, 1, 1, 1)
        x = torch.where(sol & (x >= 0.5), 1.0 - x, x)
        return ((x - self.mean) / self.std).contiguous()


class PretrainBatches:
    """Iterable of ``{"frames": (B, 2, 3, H, H), "video": (B,), "frame": (B, 2)}`` for one rank."""

    def __init__(self, index: VideoIndex, store: FrameStore, image_size: int, aug: ViewAugment, temporal_offset: int,
                 batch_size: int, seed: int, rank: int = 0, world_size: int = 1, num_workers: int = 0,
                 frames_per_video: int = 1):
        if len(store) != len(index.videos):
            raise ValueError("the frame store was built for a different index")
        self.per_video = int(frames_per_video)
        if self.per_video < 1 or batch_size % self.per_video:
            raise ValueError(f"the batch ({batch_size} frames per process) must be a multiple of frames_per_video "
                             f"({frames_per_video})")
        self.store, self.views = store, FaceViews(image_size, aug)
        self.offset, self.batch_size, self.seed = int(temporal_offset), int(batch_size), int(seed)
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.lengths = np.array([len(v) for v in index.videos], dtype=np.int64)
        if self.lengths.sum() == 0:
            raise DataError(index.root or index.dataset, "no frames in the training split to pretrain on")
        self.items = np.concatenate([np.stack([np.full(t, v), np.arange(t)], 1) for v, t in enumerate(self.lengths)])
        self.set_epoch(0)

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        g = self.batch_size * self.world_size
        self.steps = max(1, math.ceil(len(self.items) / g))
        self.order = np.resize(np.random.default_rng([self.seed, self.epoch, 1]).permutation(len(self.items)), self.steps * g)

    def batch(self, step: int) -> dict:
        if not 0 <= step < self.steps:
            raise IndexError(step)
        g = self.batch_size * self.world_size
        if self.per_video > 1:
            rows = self._video_rows(step)
        else:
            rows = self.items[self.order[step * g + self.rank * self.batch_size: step * g + (self.rank + 1) * self.batch_size]]
        rng = np.random.default_rng([self.seed, self.epoch, 3, step, self.rank])
        vid, t = rows[:, 0], rows[:, 1]
        t2 = np.clip(t + rng.integers(-self.offset, self.offset + 1, len(t)), 0, self.lengths[vid] - 1)
        a = np.stack([self.store.frames(int(v), [int(i)])[0] for v, i in zip(vid, t)])
        b = np.stack([self.store.frames(int(v), [int(i)])[0] for v, i in zip(vid, t2)])
        frames = torch.stack([self.views(a, rng, 0), self.views(b, rng, 1)], 1)
        return {"frames": frames, "video": torch.from_numpy(vid.copy()), "frame": torch.from_numpy(np.stack([t, t2], 1))}

    def _video_rows(self, step: int) -> np.ndarray:
        """This rank's ``B`` rows ``(video, t)`` of step ``step`` with ``frames_per_video = M > 1``: the step's
        ``B·W/M`` videos are drawn without replacement, with probability proportional to their length (every frame
        as likely as with M = 1), and each gives M frames, one uniformly inside each of M equal parts of the video
        (so they are spread over it, as far apart as its length allows); rank r takes videos r·B/M .. (r+1)·B/M."""
        m, per_rank = self.per_video, self.batch_size // self.per_video
        rng = np.random.default_rng([self.seed, self.epoch, 2, step])
        n_vid = per_rank * self.world_size
        usable = np.flatnonzero(self.lengths > 0)
        p = self.lengths[usable] / self.lengths[usable].sum()
        vids = rng.choice(usable, size=n_vid, replace=n_vid > len(usable), p=p)
        u = rng.random((n_vid, m))
        rows = []
        for v, uv in zip(vids[self.rank * per_rank: (self.rank + 1) * per_rank],
                         u[self.rank * per_rank: (self.rank + 1) * per_rank]):
            n = int(self.lengths[v])
            edges = np.linspace(0, n, m + 1)
            t = np.minimum(np.floor(edges[:-1] + uv * (edges[1:] - edges[:-1])).astype(np.int64), n - 1)
            rows.append(np.stack([np.full(m, v), t], 1))
        return np.concatenate(rows)

    def __iter__(self) -> Iterator[dict]:
        w = self.num_workers
        return iter(torch.utils.data.DataLoader(_StepDataset(self), batch_size=None, shuffle=False, num_workers=w,
                                                worker_init_fn=_worker_init if w > 0 else None,
                                                prefetch_factor=2 if w > 0 else None))
