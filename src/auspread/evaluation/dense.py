"""Dense whole-video prediction for any method (architecture: evaluation).

Every frame of every evaluated video gets a prediction: the frames are streamed through
``auspread.data.sampling.video_chunks`` (consecutive normalised batches covering the video once) into the
method's ``predict_video(chunks, T)``, which defines how a method covers every frame (a frame classifier scores
each frame; temporal methods slide clips over per-frame features). The metric then counts **all** frames of the
split, as in the papers' protocol (reference C.6).

With several processes, videos are sharded round-robin over ranks and the counts are summed, so every rank ends
with the same scores.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from auspread.evaluation.metrics import AUScores, CountAccumulator, scores_from_counts


@dataclass
class DensePredictions:
    """Per-video ``(T, U)`` float32 probabilities, in the order of the evaluated index's videos."""

    video_ids: list[str]
    probs: list[np.ndarray]
    labels: list[np.ndarray]
    frame_numbers: list[np.ndarray]


def predict_video(method, store, video_i: int, num_frames: int, transform, device: torch.device, chunk: int = 64,
                  autocast: Callable[[], contextlib.AbstractContextManager] | None = None) -> np.ndarray:
    """``(T, U)`` probabilities of one video of ``store`` (float32 on the CPU)."""
    from auspread.data.sampling import video_chunks

    ctx = autocast() if autocast is not None else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        probs = method.predict_video(video_chunks(store, video_i, transform, chunk, device), num_frames)
    probs = probs.float().cpu()
    if probs.shape[0] != num_frames:
        raise RuntimeError(f"{type(method).__name__}.predict_video returned {probs.shape[0]} frames for a {num_frames}-frame video")
    return probs.numpy()


def evaluate_split(method, store, index, transform, device: torch.device, *, chunk: int = 64, dist=None,
                   autocast=None, keep_predictions: bool = False, progress: bool = False, desc: str = "eval",
                   ) -> tuple[AUScores, DensePredictions | None]:
    """Scores of ``method`` over every frame of every video of ``index`` (labels −1 masked).

    ``dist`` (an ``auspread.engine.distributed.DistInfo``) shards videos over ranks; counts are summed across
    ranks. With ``keep_predictions`` the per-frame probabilities are gathered (on rank 0; other ranks get None).
    """
    rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
    was_training = method.training
    method.eval()
    acc = CountAccumulator(index.num_aus)
    mine: list[tuple[int, np.ndarray]] = []
    todo = list(range(rank, len(index.videos), world))
    it = todo
    if progress and rank == 0:
        from auspread.progress import progress_bar

        it = progress_bar(todo, desc=desc, unit="video", leave=False)  # off a terminal: one line per video
    try:
        for vi in it:
            rec = index.videos[vi]
            p = predict_video(method, store, vi, len(rec), transform, device, chunk, autocast)
            acc.update(torch.from_numpy(p), torch.from_numpy(rec.labels.astype(np.int64)))
            if keep_predictions:
                mine.append((vi, p))
    finally:
        method.train(was_training)
    counts = acc.counts
    preds = None
    if world > 1:
        from auspread.engine import distributed as D

        counts = D.all_reduce_sum(counts.to(torch.float64)).round().to(torch.int64)
        if keep_predictions:
            gathered = D.gather_objects(mine)
            mine = [x for part in gathered for x in part] if gathered is not None else []
    if keep_predictions and (world == 1 or rank == 0):
        by_i = dict(mine)
        order = range(len(index.videos))
        preds = DensePredictions(
            video_ids=[index.videos[i].video_id for i in order],
            probs=[by_i[i] for i in order],
            labels=[index.videos[i].labels for i in order],
            frame_numbers=[index.videos[i].frame_numbers for i in order],
        )
    return scores_from_counts(counts, index.aus), preds
