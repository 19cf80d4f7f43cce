import numpy as np

from auspread.faces.detect import Detections
from auspread.faces.track import IoUTracker, iou


def _dets(*boxes):
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(b, np.ones(len(b), np.float32), np.zeros((len(b), 5, 2), np.float32))


def test_iou_by_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou(a, b), [[25 / 175, 0.0, 1.0]])


def test_tracker_keeps_ids_and_starts_new_ones():
    tr = IoUTracker(iou_threshold=0.3, max_missed=1)
    assert tr.update(_dets([0, 0, 10, 10], [50, 50, 60, 60])).tolist() == [0, 1]
    # same faces moved a little, listed in the other order
    assert tr.update(_dets([51, 50, 61, 60], [1, 0, 11, 10])).tolist() == [1, 0]
    # a new face appears
    assert tr.update(_dets([1, 0, 11, 10], [100, 0, 110, 10])).tolist() == [0, 2]
    # face 1 missed twice (> max_missed) → ended; when it comes back it gets a new id
    tr.update(_dets([1, 0, 11, 10]))
    assert tr.update(_dets([1, 0, 11, 10], [51, 50, 61, 60])).tolist() == [0, 3]


def test_tracker_empty_frames():
    tr = IoUTracker()
    assert tr.update(Detections()).tolist() == []
    assert tr.update(_dets([0, 0, 10, 10])).tolist() == [0]
