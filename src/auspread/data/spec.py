"""What a method asks of the data pipeline (:class:`DataSpec`); re-exported by :mod:`auspread.methods.base`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class DataSpec:
    """What a method needs from the data pipeline."""

    clip_len: int = 1
    # how training items are drawn:
    #   "key_frames"   one item per labelled frame of the sparse label policy (a clip around it); the default
    #   "all_frames"   one item per frame, labelled or not (labels -1 where hidden)
    #   "video_windows" one random window of clip_len frames per video per epoch (MDHR's recipe)
    sampling: Literal["key_frames", "all_frames", "video_windows"] = "key_frames"
    key_frame_shift: bool = False  # key position m = batch_number mod clip_len (KS); otherwise a random position
    unlabelled_ratio: float = 0.0  # mu: unlabelled clips per labelled clip in batch["unlabelled"] (0 = none)
    unlabelled_from_epoch: int = 0  # the sampler adds batch["unlabelled"] only from this epoch on (0-based)
    strong_view: bool = False
    landmarks: bool = False
