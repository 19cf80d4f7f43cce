"""VideoIndex queries: the evaluation subset used on CPU budgets."""

import numpy as np
import pytest

from auspread.data.index import ImageFiles, VideoIndex, VideoRecord


def _index(subjects=3, tasks=8) -> VideoIndex:
    vids = []
    for s in range(subjects):
        for t in reversed(range(1, tasks + 1)):  # out of order on purpose
            vids.append(VideoRecord(f"S{s}/T{t}", f"S{s}", f"T{t}", np.arange(2), np.zeros((2, 1), np.int8),
                                    ImageFiles(("/a.png", "/b.png"))))
    return VideoIndex("test", (1,), vids, fps=25.0)


def test_every_kth_video_keeps_every_subject_and_rotates_tasks():
    sub = _index().every_kth_video(4)
    assert [v.video_id for v in sub] == ["S0/T1", "S0/T5", "S1/T4", "S1/T8", "S2/T3", "S2/T7"]
    assert sub.subjects() == ["S0", "S1", "S2"]


def test_every_kth_video_one_is_everything_and_zero_is_refused():
    idx = _index()
    assert sorted(v.video_id for v in idx.every_kth_video(1)) == sorted(v.video_id for v in idx)
    with pytest.raises(ValueError):
        idx.every_kth_video(0)
