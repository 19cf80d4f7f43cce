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


class _CountingDetector:
    """A stand-in detector: one fixed face; ``refine`` returns it with a settable score."""

    def __init__(self):
        self.detected = self.refined = 0
        self.score = 0.99
        self.offset = 0.0  # refine moves the box by this many pixels in x
        self.box = np.array([40, 40, 80, 90], np.float32)

    def detect(self, frames):
        self.detected += len(frames)
        return [_dets(self.box) for _ in frames]

    def refine(self, frame, boxes):
        self.refined += 1
        d = _dets(*boxes)
        d.scores[:] = self.score
        d.boxes[:, [0, 2]] += self.offset
        return d


def test_face_tracker_detects_early_on_loss_and_scene_cut():
    from auspread.faces.track import FaceTracker

    det = _CountingDetector()
    tr = FaceTracker(det)
    a = np.full((72, 128, 3), 100, np.uint8)
    b = np.full((72, 128, 3), 200, np.uint8)  # another scene
    d, held = tr.step(a, det.detect(a[None])[0])
    assert len(d) == 1 and not held and tr.counts["key"] == 1
    d, held = tr.step(a, None)
    assert held and det.refined == 1 and det.detected == 1
    tr.step(b, None)  # scene cut: full detection, no refine
    assert tr.counts["cut"] == 1 and det.detected == 2 and det.refined == 1
    det.score = 0.5  # the face is lost: detect again on that frame
    tr.step(b, None)
    assert tr.counts["lost"] == 1 and det.detected == 3
    det.score, det.offset = 0.99, 5.0  # a small move (5 px of a ~45 px face) is followed
    assert tr.step(b, None)[1] and tr.counts["tracked"] == 2
    det.offset = 30.0  # the box jumps by 2/3 of its side in one frame: detect again
    d, held = tr.step(b, None)
    assert tr.counts["jump"] == 1 and det.detected == 4 and not held


def test_face_tracker_without_a_face_waits_unless_the_frame_changes():
    from auspread.faces.detect import Detections
    from auspread.faces.track import FaceTracker

    class Empty(_CountingDetector):
        def detect(self, frames):
            self.detected += len(frames)
            return [Detections() for _ in frames]

    det = Empty()
    tr = FaceTracker(det)
    a = np.full((72, 128, 3), 100, np.uint8)
    tr.step(a, det.detect(a[None])[0])
    for _ in range(3):
        assert len(tr.step(a, None)[0]) == 0
    assert tr.counts["idle"] == 3 and det.detected == 1 and det.refined == 0
    c = a.copy()
    c[:, :40] = 180  # something entered the frame (mean change ≈ 25 grey levels, below a scene cut)
    tr.step(c, None)
    assert tr.counts["change"] == 1 and det.detected == 2
