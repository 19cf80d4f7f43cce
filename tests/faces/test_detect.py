import numpy as np
import pytest

from faces_fakes import FACE_XY, composite

from auspread.faces.detect import DetectorOptions, FaceDetector


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def test_finds_a_synthetic_face_and_its_five_points(detector, faces):
    frames, lm68 = faces
    video = composite(frames[:3], [True, False, True])
    dets = detector.detect(video)
    assert [len(d) for d in dets] == [1, 0, 1]
    off = np.array(FACE_XY, float)
    for t in (0, 2):
        d = dets[t]
        x1, y1, x2, y2 = d.boxes[0]
        assert x1 < off[0] + 40 and x2 > off[0] + 70 and y1 < off[1] + 50 and y2 > off[1] + 80
        assert 0.9 <= d.scores[0] <= 1.0
        # MTCNN points vs the generator's iBUG-68 landmarks (eye centres, nose tip, mouth corners), frame pixels
        truth = np.stack([lm68[t, 36:42].mean(0), lm68[t, 42:48].mean(0), lm68[t, 30], lm68[t, 48], lm68[t, 54]]) + off
        err = np.linalg.norm(d.landmarks[0] - truth, axis=1)
        assert err.max() < 6.0, err  # inter-ocular distance is ~25 px here


def test_frames_of_different_sizes_and_downscaling(faces):
    frames, _ = faces
    small = composite(frames[:1], [True])[0]
    big = np.repeat(np.repeat(small, 2, 0), 2, 1)  # 360 x 640
    det = FaceDetector(DetectorOptions(detect_side=320))  # the big frame is detected at half size
    d_small, d_big = det.detect([small, big])
    assert len(d_small) == 1 and len(d_big) == 1
    np.testing.assert_allclose(d_big.boxes[0], 2 * d_small.boxes[0], atol=6)
    np.testing.assert_allclose(d_big.landmarks[0], 2 * d_small.landmarks[0], atol=4)


def test_rejects_bad_frames(detector):
    with pytest.raises(ValueError):
        detector.detect(np.zeros((1, 20, 20, 3), np.float32))


def test_refine_follows_a_face_with_onet_alone(detector, faces):
    frames, _ = faces
    video = composite(frames[:2], [True, True])
    full = detector.detect(video)
    moved = composite(frames[1:2], [True], xy=(FACE_XY[0] + 8, FACE_XY[1] + 4))[0]
    r = detector.refine(moved, full[0].boxes[:1])  # last frame's box on a frame where the face moved by (8, 4)
    want = detector.detect(moved[None])[0]
    assert len(r) == 1 and r.scores[0] > 0.9
    assert np.abs(r.landmarks[0] - want.landmarks[0]).max() < 4 and np.abs(r.boxes[0] - want.boxes[0]).max() < 8
    empty = composite(frames[:1], [False])[0]
    assert detector.refine(empty, full[0].boxes[:1]).scores[0] < 0.5
    assert len(detector.refine(moved, np.zeros((0, 4)))) == 0


def test_detection_leaves_autocast_alone_where_it_is_off(detector, faces, monkeypatch):
    """Leaving an autocast block clears autocast's process-wide cast cache under a mutex; predict's detection thread
    must not do that while the AU model is traced under autocast in another thread (a deadlock, session 15). Where a
    caller's autocast is on, the detector still runs MTCNN in fp32."""
    import torch

    cleared = []
    real = torch.clear_autocast_cache
    monkeypatch.setattr(torch, "clear_autocast_cache", lambda: (cleared.append(1), real())[1])
    frames, _ = faces
    video = composite(frames[:2], [True, True])
    plain = detector.detect(video)
    plain_r = detector.refine(video[1], plain[0].boxes[:1])
    assert cleared == []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = detector.detect(video)
        under_r = detector.refine(video[1], plain[0].boxes[:1])
    assert cleared  # the guard was entered and left
    np.testing.assert_array_equal(under[0].boxes, plain[0].boxes)  # fp32 under the caller's bf16 autocast
    np.testing.assert_array_equal(under_r.landmarks, plain_r.landmarks)


def test_frames_smaller_than_the_smallest_face_have_no_face(detector):
    """A frame smaller than ``min_face_size`` gives MTCNN no pyramid level (facenet-pytorch's ``torch.cat`` of an empty
    list fails): no face, not a crash (tiny fixture frames and thumbnails reach ``auspread prepare``)."""
    dets = detector.detect(np.zeros((2, 8, 8, 3), np.uint8))
    assert [len(d) for d in dets] == [0, 0]
