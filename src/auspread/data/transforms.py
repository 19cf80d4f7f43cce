"""Clip-consistent augmentation, FixMatch's strong view, normalisation and the test transform.

KS supplement §2.1: "All training images in the same video clips are randomly rotated (−45 to 45 degrees), flipped
horizontally (50% possibility), and with color jitters (saturation, contrast, and brightness) simultaneously."
:class:`ClipTransform` therefore makes ONE random draw per clip and applies it to every frame (and its landmarks):

1. geometry, one bilinear resample of the ``S×S`` store frame: rotation by ``θ ~ U[−r, r]`` degrees
   (counter-clockwise on screen for θ > 0) about the frame centre ``((S−1)/2, (S−1)/2)``, then a random
   ``H×H`` crop at integer offset ``(ox, oy) ~ U{0..S−H}²`` (or, with ``augment.crop = False``, a resize of the
   whole frame to ``H``), then a horizontal flip with probability ½. Pixels rotated in from outside are black;
2. colour jitter with factors ``b, c, s ~ U[1−j, 1+j]`` applied in the fixed order brightness → contrast →
   saturation (MDHR's order, reference B.1; no hue), each clamped to [0, 1];
3. ImageNet normalisation.

Pixel coordinates put pixel centres at integers (pixel ``i`` covers ``[i−½, i+½]``). Landmarks ``(n, P, 2)`` given
in store pixels follow the same map into output pixels; on a flip the point *indices* are mirrored too (the left
eye becomes the right eye) with the iBUG-68 permutation (:data:`FLIP_68`), its 66-point variant (iBUG-68 without
the inner-mouth corners 60 and 64, DISFA) or the 5-point MTCNN permutation.

Test (``train=False``): resize the whole store frame to ``H`` (antialiased bilinear), normalise.

:class:`StrongClipTransform` (FixMatch, reference ssl_algorithms §1.2): an independent ClipTransform draw, then
RandAugment with 2 ops drawn from FixMatch's list at random magnitudes, then Cutout of a square with side
``~ U[0, ½]·H`` filled with grey; all draws shared by the clip's frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as tnf
import torchvision.transforms.v2.functional as F

from auspread.data.config import AugmentConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _flip_68() -> list[int]:
    p = list(range(68))

    def swap(a: list[int], b: list[int]) -> None:
        for i, j in zip(a, b):
            p[i], p[j] = j, i

    swap(list(range(0, 8)), list(range(16, 8, -1)))  # jaw 0..16 (8 is the chin)
    swap(list(range(17, 22)), list(range(26, 21, -1)))  # brows
    swap([31, 32], [35, 34])  # nostrils (33 is the nose tip; 27-30 bridge)
    swap([36, 37, 38, 39, 40, 41], [45, 44, 43, 42, 47, 46])  # eyes
    swap([48, 49, 50, 55, 56], [54, 53, 52, 59, 58])  # outer lips (51, 57 on the axis)
    swap([60, 61, 65], [64, 63, 67])  # inner lips (62, 66 on the axis)
    return p


FLIP_68: list[int] = _flip_68()
_KEEP_66 = [i for i in range(68) if i not in (60, 64)]
FLIP_66: list[int] = [_KEEP_66.index(FLIP_68[i]) for i in _KEEP_66]
FLIP_5: list[int] = [1, 0, 2, 4, 3]  # MTCNN: left eye, right eye, nose, left mouth corner, right mouth corner
FLIP_PERMUTATIONS = {68: FLIP_68, 66: FLIP_66, 5: FLIP_5}


def flip_permutation(num_points: int) -> list[int]:
    if num_points not in FLIP_PERMUTATIONS:
        raise ValueError(f"no horizontal-flip landmark permutation for {num_points} points (known: 68, 66, 5)")
    return FLIP_PERMUTATIONS[num_points]


def to_tensor_clip(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(n, S, S, 3)`` (numpy or torch) → uint8 tensor ``(n, 3, S, S)``."""
    t = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if t.dtype != torch.uint8 or t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (n, S, S, 3), got {tuple(t.shape)} {t.dtype}")
    return t.permute(0, 3, 1, 2)


class ClipTransform:
    """uint8 clip ``(n, S, S, 3)`` (+ landmarks ``(n, P, 2)`` in store pixels) → normalised float ``(n, 3, H, H)``
    (+ landmarks in output pixels). See the module docstring for the exact operations."""

    def __init__(
        self,
        image_size: int,
        augment: AugmentConfig | None = None,
        train: bool = True,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ):
        self.image_size = int(image_size)
        self.augment = augment or AugmentConfig()
        self.train = train
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    # --- one draw per clip -----------------------------------------------------------------------------------
    def draw(self, rng: np.random.Generator, store_size: int) -> dict:
        a, h = self.augment, self.image_size
        if a.crop and store_size < h:
            raise ValueError(f"cannot crop {h} px out of a {store_size} px store frame")
        return {
            "angle": float(rng.uniform(-a.rotation, a.rotation)) if a.rotation > 0 else 0.0,
            "ox": int(rng.integers(0, store_size - h + 1)) if a.crop else 0,
            "oy": int(rng.integers(0, store_size - h + 1)) if a.crop else 0,
            "flip": bool(a.flip and rng.random() < 0.5),
            "b": float(rng.uniform(1 - a.color_jitter, 1 + a.color_jitter)),
            "c": float(rng.uniform(1 - a.color_jitter, 1 + a.color_jitter)),
            "s": float(rng.uniform(1 - a.color_jitter, 1 + a.color_jitter)),
        }

    def _affine(self, p: dict, s: int) -> tuple[float, float, float, float]:
        """(scale, offset_x, offset_y, angle_rad): rotated-frame coords r = scale·u + offset for output pixel u."""
        h = self.image_size
        if self.augment.crop:
            return 1.0, float(p["ox"]), float(p["oy"]), math.radians(p["angle"])
        k = s / h
        return k, 0.5 * k - 0.5, 0.5 * k - 0.5, math.radians(p["angle"])

    def _grid(self, p: dict, s: int) -> torch.Tensor:
        """Sampling grid ``(H, H, 2)`` (grid_sample's normalised coordinates) of one draw on an S×S frame."""
        h = self.image_size
        k, ox, oy, th = self._affine(p, s)
        u = torch.arange(h, dtype=torch.float32)
        uf = (h - 1 - u) if p["flip"] else u
        rx = (k * uf + ox).view(1, h).expand(h, h)
        ry = (k * u + oy).view(h, 1).expand(h, h)
        c = (s - 1) / 2.0
        cos, sin = math.cos(th), math.sin(th)
        dx, dy = rx - c, ry - c
        sx = c + cos * dx - sin * dy  # inverse of the on-screen counter-clockwise rotation
        sy = c + sin * dx + cos * dy
        return torch.stack([(2 * sx + 1) / s - 1, (2 * sy + 1) / s - 1], dim=-1)

    def _geometry(self, x: torch.Tensor, ps: list[dict]) -> torch.Tensor:
        """One bilinear resample of float ``(B, n, 3, S, S)`` into ``(B, n, 3, H, H)``, draw ``ps[b]`` for clip b."""
        b, n, _, s, _ = x.shape
        h = self.image_size
        if all(p["angle"] == 0.0 for p in ps) and self.augment.crop:  # integer crops (+ flips): exact, no resampling
            out = []
            for xi, p in zip(x, ps):
                c = xi[:, :, p["oy"]:p["oy"] + h, p["ox"]:p["ox"] + h]
                out.append(c.flip(-1) if p["flip"] else c)
            return torch.stack(out)
        grid = torch.stack([self._grid(p, s) for p in ps]).to(x.device)[:, None].expand(b, n, h, h, 2)
        grid = grid.reshape(b * n, h, h, 2)
        y = tnf.grid_sample(x.reshape(b * n, 3, s, s), grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        return y.view(b, n, 3, h, h)

    def _landmarks(self, pts: torch.Tensor, p: dict, s: int) -> torch.Tensor:
        """Forward map of store-pixel points ``(n, P, 2)`` to output pixels (and index mirroring on flip)."""
        h = self.image_size
        k, ox, oy, th = self._affine(p, s)
        c = (s - 1) / 2.0
        cos, sin = math.cos(th), math.sin(th)
        dx, dy = pts[..., 0] - c, pts[..., 1] - c
        rx = c + cos * dx + sin * dy
        ry = c - sin * dx + cos * dy
        x, y = (rx - ox) / k, (ry - oy) / k
        if p["flip"]:
            x = (h - 1) - x
        out = torch.stack([x, y], dim=-1)
        if p["flip"]:
            out = out[:, flip_permutation(out.shape[1])]
        return out

    @staticmethod
    def _gray(x: torch.Tensor) -> torch.Tensor:
        """ITU-R 601 luma as torchvision computes it, ``(..., 1, H, W)``."""
        return (0.2989 * x[..., 0:1, :, :] + 0.587 * x[..., 1:2, :, :] + 0.114 * x[..., 2:3, :, :])

    def _colour(self, x: torch.Tensor, ps: list[dict]) -> torch.Tensor:
        """Brightness → contrast → saturation of ``(B, n, 3, H, W)`` in [0, 1], factors of clip b from ``ps[b]``
        (the blend-and-clamp formulas of torchvision's adjust_*; contrast uses each frame's mean grey)."""
        if self.augment.color_jitter <= 0:
            return x
        f = torch.tensor([[p["b"], p["c"], p["s"]] for p in ps], dtype=x.dtype, device=x.device).view(-1, 3, 1, 1, 1, 1)
        bf, cf, sf = f[:, 0], f[:, 1], f[:, 2]
        x = x.mul(bf).clamp_(0.0, 1.0)
        mean = self._gray(x).mean(dim=(-3, -2, -1), keepdim=True)
        x.mul_(cf).add_((1 - cf) * mean).clamp_(0.0, 1.0)
        gray = self._gray(x).mul_(1 - sf)  # before x changes in place
        return x.mul_(sf).add_(gray).clamp_(0.0, 1.0)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return x.sub(self.mean.to(x.device)).div_(self.std.to(x.device))

    def _test(self, u8: torch.Tensor, landmarks: torch.Tensor | None):
        b, n, _, s, _ = u8.shape
        h = self.image_size
        if s != h:
            u8 = F.resize(u8.reshape(b * n, 3, s, s), [h, h], antialias=True).view(b, n, 3, h, h)
        x = u8.float().div_(255.0)
        if landmarks is not None:
            landmarks = (landmarks + 0.5) * (h / s) - 0.5
        return self.normalise(x), landmarks

    def augment_float(self, u8: torch.Tensor, rng: np.random.Generator, landmarks: torch.Tensor | None):
        """Geometry + colour, one draw per clip: uint8 ``(B,n,3,S,S)`` → float [0, 1] ``(B,n,3,H,H)``, landmarks
        ``(B,n,P,2)`` → output pixels. Draws are taken from ``rng`` clip by clip, in order."""
        s = u8.shape[-1]
        ps = [self.draw(rng, s) for _ in range(u8.shape[0])]
        return self.augment_drawn(u8, ps), self.landmarks_drawn(landmarks, ps, s)

    def augment_drawn(self, u8: torch.Tensor, ps: list[dict]) -> torch.Tensor:
        """Geometry + colour of uint8 ``(B,n,3,S,S)`` with the given draws (one per clip), on ``u8``'s device."""
        return self._colour(self._geometry(u8.float().div_(255.0), ps), ps)

    def landmarks_drawn(self, landmarks: torch.Tensor | None, ps: list[dict], s: int) -> torch.Tensor | None:
        """Store-pixel landmarks ``(B,n,P,2)`` → output pixels under the draws ``ps``."""
        if landmarks is None:
            return None
        return torch.stack([self._landmarks(lm, p, s) for lm, p in zip(landmarks, ps)])

    # draws as a tensor, so that a loader worker can hand them to the training process (data.augment_on=device)
    DRAW_KEYS = ("angle", "ox", "oy", "flip", "b", "c", "s")

    @classmethod
    def draws_to_tensor(cls, ps: list[dict]) -> torch.Tensor:
        """``(B, 7)`` float64 (exact for the draws' Python floats and ints)."""
        return torch.tensor([[float(p[k]) for k in cls.DRAW_KEYS] for p in ps], dtype=torch.float64).view(-1, 7)

    @classmethod
    def draws_from_tensor(cls, t: torch.Tensor) -> list[dict]:
        out = []
        for row in t.detach().cpu().tolist():
            p = dict(zip(cls.DRAW_KEYS, row))
            p["ox"], p["oy"], p["flip"] = int(p["ox"]), int(p["oy"]), bool(p["flip"])
            out.append(p)
        return out

    def apply(self, frames: np.ndarray | torch.Tensor, landmarks: np.ndarray | torch.Tensor | None = None,
              rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch of clips: uint8 ``(B, n, S, S, 3)`` (+ landmarks ``(B, n, P, 2)``) → normalised
        ``(B, n, 3, H, H)`` (+ landmarks in output pixels). Equal to calling the transform clip by clip with the
        same generator."""
        t = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
        if t.dtype != torch.uint8 or t.ndim != 5 or t.shape[-1] != 3:
            raise ValueError(f"expected uint8 clips (B, n, S, S, 3), got {tuple(t.shape)} {t.dtype}")
        u8 = t.permute(0, 1, 4, 2, 3)
        lm = None if landmarks is None else torch.as_tensor(landmarks, dtype=torch.float32)
        if not self.train:
            x, lm = self._test(u8, lm)
            return x.contiguous(), lm
        x, lm = self.augment_float(u8, rng if rng is not None else np.random.default_rng(), lm)
        return self.normalise(x).contiguous(), lm

    def __call__(
        self,
        frames: np.ndarray | torch.Tensor,
        landmarks: np.ndarray | torch.Tensor | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One clip: uint8 ``(n, S, S, 3)`` (+ landmarks ``(n, P, 2)``) → ``(n, 3, H, H)`` (+ landmarks)."""
        to_tensor_clip(frames)  # validates the shape
        lm = None if landmarks is None else landmarks[None]
        x, lm = self.apply(frames[None], lm, rng)
        return x[0], (None if lm is None else lm[0])


class StrongClipTransform(ClipTransform):
    """FixMatch's strong view of a clip: ClipTransform draw + RandAugment(2 ops, random magnitude) + Cutout.

    Op list and ranges follow FixMatch (Sohn 2020, Table 12; factor ops as in its code, v·1.8 + 0.1):
    identity, autocontrast, equalize, brightness/colour/contrast/sharpness factor ∈ [0.1, 1.9], posterize to
    4–8 bits, rotate ±30°, shear x/y ±0.3, solarize threshold ∈ [0, 1], translate x/y ±0.3·H. Landmarks of the
    strong view are not returned (methods use the weak view's)."""

    OPS = ("identity", "autocontrast", "equalize", "brightness", "color", "contrast", "sharpness", "posterize",
           "rotate", "shear_x", "shear_y", "solarize", "translate_x", "translate_y")

    def __init__(self, image_size: int, augment: AugmentConfig | None = None, num_ops: int = 2,
                 cutout: float = 0.5, **kw):
        super().__init__(image_size, augment, train=True, **kw)
        self.num_ops = num_ops
        self.cutout = cutout

    def _op(self, x: torch.Tensor, op: str, v: float) -> torch.Tensor:
        """Apply one op at level ``v ∈ [0, 1]`` to float ``(n, 3, H, W)`` in [0, 1]."""
        h = x.shape[-1]
        sign = 1.0 if v >= 0.5 else -1.0  # symmetric ops: v ∈ [0, ½) → negative, [½, 1] → positive
        mag = abs(2 * v - 1)
        if op == "identity":
            return x
        if op == "autocontrast":
            return F.autocontrast(x)
        if op == "equalize":
            return F.equalize(x)
        if op in ("brightness", "color", "contrast", "sharpness"):
            f = v * 1.8 + 0.1
            fn = {"brightness": F.adjust_brightness, "color": F.adjust_saturation,
                  "contrast": F.adjust_contrast, "sharpness": F.adjust_sharpness}[op]
            return fn(x, f)
        if op == "posterize":
            return F.posterize(x, int(round(4 + 4 * v)))
        if op == "solarize":
            return F.solarize(x, v)
        if op == "rotate":
            return F.affine(x, angle=sign * 30 * mag, translate=[0, 0], scale=1.0, shear=[0.0, 0.0])
        if op in ("shear_x", "shear_y"):
            deg = math.degrees(math.atan(0.3 * mag)) * sign
            shear = [deg, 0.0] if op == "shear_x" else [0.0, deg]
            return F.affine(x, angle=0.0, translate=[0, 0], scale=1.0, shear=shear)
        if op in ("translate_x", "translate_y"):
            t = int(round(sign * 0.3 * mag * h))
            return F.affine(x, angle=0.0, translate=[t, 0] if op == "translate_x" else [0, t], scale=1.0,
                            shear=[0.0, 0.0])
        raise ValueError(f"unknown op {op}")  # pragma: no cover

    def apply(self, frames, landmarks=None, rng: np.random.Generator | None = None):
        """A batch of clips ``(B, n, S, S, 3)`` → strong views ``(B, n, 3, H, H)`` (landmarks: None)."""
        rng = rng if rng is not None else np.random.default_rng()
        t = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
        u8 = t.permute(0, 1, 4, 2, 3)
        return self.apply_plan(u8, self.draw_plan(rng, u8.shape[0], u8.shape[-1])), None

    def draw_plan(self, rng: np.random.Generator, clips: int, store_size: int) -> torch.Tensor:
        """Every draw of ``clips`` strong views, in the order ``apply`` takes them from ``rng``: ``(clips, 7 + 2·ops
        + 3)`` float64 rows = the ClipTransform draw, (op index, level) per op, cutout side and centre."""
        h = self.image_size
        ps = [self.draw(rng, store_size) for _ in range(clips)]
        rows = []
        for p in ps:
            ops = rng.choice(len(self.OPS), size=self.num_ops, replace=True)
            levels = [float(rng.random()) for _ in ops]
            side = int(rng.uniform(0, self.cutout) * h)
            centre = (int(rng.integers(0, h)), int(rng.integers(0, h))) if side > 0 else (0, 0)
            rows.append([*(float(p[k]) for k in self.DRAW_KEYS), *(v for pair in zip(ops, levels) for v in pair),
                         side, *centre])
        return torch.tensor(rows, dtype=torch.float64).view(clips, 7 + 2 * self.num_ops + 3)

    def apply_plan(self, u8: torch.Tensor, plan: torch.Tensor) -> torch.Tensor:
        """Strong views of uint8 ``(B,n,3,S,S)`` (on any device) from ``draw_plan``'s rows → normalised
        ``(B,n,3,H,H)``."""
        x = self.augment_drawn(u8, self.draws_from_tensor(plan[:, :7]))
        h = x.shape[-1]
        out = []
        for clip, row in zip(x, plan.tolist()):
            k = 7 + 2 * self.num_ops
            for i, v in zip(row[7:k:2], row[8:k:2]):
                clip = self._op(clip, self.OPS[int(i)], float(v)).clamp_(0.0, 1.0)
            side, cy, cx = int(row[k]), int(row[k + 1]), int(row[k + 2])
            if side > 0:
                y0, x0 = max(0, cy - side // 2), max(0, cx - side // 2)
                clip = clip.clone()
                clip[:, :, y0:min(h, y0 + side), x0:min(h, x0 + side)] = 0.5
            out.append(clip)
        return self.normalise(torch.stack(out)).contiguous()
