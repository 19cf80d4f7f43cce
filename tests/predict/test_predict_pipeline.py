import numpy as np
import pytest
import torch

from faces_fakes import composite, write_video
from predict_fakes import tiny_bundle

from auspread.methods.base import Method
from auspread.predict.inputs import ImageSequence, VideoSource
from auspread.predict.options import ModelBundle, PredictOptions
from auspread.predict.pipeline import Predictor


@pytest.fixture(scope="module")
def predictor():
    # fp32 on every CPU: these tests compare probabilities to 1e-5 (on a CPU with native bf16 amp=auto would round
    # them to bf16's 3 significant digits; the bf16 path has its own tests)
    return Predictor(tiny_bundle(), PredictOptions(batch_size=4, amp="off"))


def _video(tmp_path, frames, name="v.mp4"):
    return VideoSource(write_video(tmp_path / name, frames))


def test_one_row_per_frame_and_success_flags(predictor, faces, tmp_path):
    present = [True, False, True, True, False, True]
    tab = predictor.predict(_video(tmp_path, composite(faces[0], present)))
    assert tab.num_frames == 6 and tab.frame.tolist() == list(range(6)) and tab.error is None
    assert tab.success.tolist() == present
    assert np.isnan(tab.probs[~tab.success]).all() and np.isnan(tab.box[~tab.success]).all()
    assert np.isfinite(tab.probs[tab.success]).all() and (tab.confidence[tab.success] > 0.9).all()
    x, y, w, h = tab.box[0]
    assert 130 < x < 180 and 20 < y < 80 and 50 < w < 110


def test_alignment_makes_predictions_position_invariant(predictor, faces, tmp_path):
    a = composite(faces[0][:2], [True, True], xy=(150, 30))
    b = composite(faces[0][:2], [True, True], xy=(20, 60))
    pa = predictor.predict(_video(tmp_path, a, "a.mp4")).probs
    pb = predictor.predict(_video(tmp_path, b, "b.mp4")).probs
    np.testing.assert_allclose(pa, pb, atol=0.02)
    # while a face elsewhere in the crop (no alignment) changes them
    assert np.abs(pa - predictor.predict(_video(tmp_path, composite(faces[0][5:7], [True, True]), "c.mp4")).probs).max() > 0


def test_detect_every_k_without_tracking_holds_faces_between_detections(faces, tmp_path):
    present = [False, True, True, False, True, True, True, False]
    pr = Predictor(tiny_bundle(), PredictOptions(batch_size=4, detect_every=3, track=False))
    tab = pr.predict(_video(tmp_path, composite(faces[0], present)))
    # detection on frames 0, 3, 6 (no face, no face, face); the others repeat the latest detection
    assert tab.success.tolist() == [False, False, False, False, False, False, True, True]
    assert tab.held.tolist() == [False, False, False, False, False, False, False, True]


def test_no_detect_on_aligned_crops(tmp_path, faces):
    b = tiny_bundle(image_size=32, store_size=36)
    pr = Predictor(b, PredictOptions(no_detect=True, batch_size=5, align_size=112, amp="off"))  # fp32: compared to 1e-5
    assert pr.detector is None
    frames = faces[0][:7]
    tab = pr.predict(_video(tmp_path, frames))
    assert tab.success.all() and tab.probs.shape == (7, 5)
    # same as feeding the frame store's path by hand: resize to the store size, test transform, model
    from auspread.data.transforms import ClipTransform

    decoded = np.stack([f.image for f in VideoSource(tmp_path / "v.mp4").frames()])
    x = torch.from_numpy(decoded).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(36, 36), mode="bilinear", antialias=True, align_corners=False)
    u8 = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    with torch.no_grad():
        want = b.method.predict_frames(ClipTransform(32, train=False)(u8)[0]).numpy()
    np.testing.assert_allclose(tab.probs, want, atol=1e-5)


class _OrderProbe(Method):
    """Temporal stand-in: each frame's 'probability' is its position in the stream / 1000, so any row shift or
    dropped chunk shows up; records the chunks it was given."""

    name = "order_probe_test"

    def __init__(self):
        torch.nn.Module.__init__(self)
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.chunks: list[int] = []

    def predict_video(self, chunks, num_frames):
        n = 0
        for c in chunks:
            self.chunks.append(len(c))
            n += len(c)
        assert n <= num_frames
        return (torch.arange(n, dtype=torch.float32) / 1000)[:, None].repeat(1, 2)


def test_temporal_method_gets_whole_video_in_order(faces, tmp_path):
    m = _OrderProbe()
    pr = Predictor(ModelBundle(m, (1, 2), 32, 32), PredictOptions(batch_size=3))
    present = [True, True, False, True, True, True, False]
    tab = pr.predict(_video(tmp_path, composite(faces[0], present)))
    assert m.chunks == [3, 3, 1]
    want = np.arange(7) / 1000
    np.testing.assert_allclose(tab.probs[tab.success, 0], want[np.array(present)], atol=1e-6)


def test_all_faces_tracks_two_faces(faces, tmp_path):
    frames = faces[0]
    video = composite(frames[:4], [True, True, False, True], xy=(190, 40), second=frames[6:10], second_xy=(10, 20))
    pr = Predictor(tiny_bundle(), PredictOptions(all_faces=True, batch_size=4))
    tab = pr.predict(_video(tmp_path, video))
    assert tab.num_frames == 4
    assert tab.frame.tolist() == [0, 0, 1, 1, 2, 3, 3]
    assert tab.face_id.tolist() == [0, 1, 0, 1, -1, 0, 1]
    assert tab.success.tolist() == [True, True, True, True, False, True, True]
    # ids follow positions: each track stays on its own side of the frame for every frame
    xs0 = tab.box[tab.face_id == 0, 0]
    xs1 = tab.box[tab.face_id == 1, 0]
    sides = sorted([xs0, xs1], key=lambda xs: xs.mean())
    assert (sides[0] < 60).all() and (sides[1] > 150).all()


def test_bf16_channels_last_close_to_fp32(faces, tmp_path):
    v = _video(tmp_path, composite(faces[0][:3], [True] * 3))
    ref = Predictor(tiny_bundle(), PredictOptions()).predict(v).probs
    fast = Predictor(tiny_bundle(), PredictOptions(amp="bf16", channels_last=True)).predict(v).probs
    np.testing.assert_allclose(fast, ref, atol=0.03)


def test_truncated_video_keeps_decoded_rows(faces, tmp_path):
    frames = np.concatenate([faces[0]] * 3)
    write_video(tmp_path / "full.mp4", frames, faststart=True)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    pr = Predictor(tiny_bundle(), PredictOptions(no_detect=True, batch_size=4))
    tab = pr.predict(VideoSource(tmp_path / "cut.mp4"))
    assert tab.error is not None and "cut.mp4" in tab.error
    assert 3 < tab.num_frames < 36 and tab.frame.tolist() == list(range(tab.num_frames))
    assert tab.success.all() and np.isfinite(tab.probs).all()


def test_image_sequence_of_mixed_sizes(predictor, faces, tmp_path):
    from PIL import Image

    a = composite(faces[0][:1], [True])[0]
    b = composite(faces[0][:1], [True], bg_hw=(200, 300), xy=(60, 50))[0]
    Image.fromarray(a).save(tmp_path / "1.png")
    Image.fromarray(b).save(tmp_path / "2.png")
    tab = predictor.predict(ImageSequence([str(tmp_path / "1.png"), str(tmp_path / "2.png")], "seq"))
    assert tab.success.tolist() == [True, True]
    np.testing.assert_allclose(tab.probs[0], tab.probs[1], atol=0.02)


def test_prefetch_thread_gives_identical_rows_and_propagates_errors(faces, tmp_path):
    from auspread.predict.prefetch import prefetch

    v = _video(tmp_path, composite(faces[0][:5], [True, False, True, True, True]))
    a = Predictor(tiny_bundle(), PredictOptions(batch_size=2, prefetch=True)).predict(v)
    b = Predictor(tiny_bundle(), PredictOptions(batch_size=2, prefetch=False)).predict(v)
    np.testing.assert_array_equal(a.success, b.success)
    np.testing.assert_allclose(a.probs, b.probs, equal_nan=True)

    def boom():
        yield 1
        raise ValueError("producer failed")

    it = prefetch(boom())
    assert next(it) == 1
    with pytest.raises(ValueError, match="producer failed"):
        next(it)
    early = prefetch(iter(range(100)), depth=2)
    assert next(early) == 0
    early.close()  # stopping early ends the producer thread


def test_unreadable_image_in_a_sequence_costs_one_row(predictor, faces, tmp_path):
    from PIL import Image

    frame = composite(faces[0][:1], [True])[0]
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(frame).save(paths[-1])
    (tmp_path / "1.png").write_bytes(b"garbage")
    tab = predictor.predict(ImageSequence(paths, "seq"))
    assert tab.frame.tolist() == [0, 1, 2] and tab.success.tolist() == [True, False, True]
    assert "1 unreadable image" in tab.error and "1.png" in tab.error
    np.testing.assert_allclose(tab.probs[0], tab.probs[2], atol=1e-6)


def test_detect_every_k_interpolates_a_moving_face(faces, tmp_path):
    face = faces[0][:1]
    frames = np.concatenate([composite(face, [True], xy=(40 + 12 * t, 30)) for t in range(7)])
    v = _video(tmp_path, frames)
    every = Predictor(tiny_bundle(), PredictOptions(batch_size=4, detect_every=1)).predict(v)
    k3 = Predictor(tiny_bundle(), PredictOptions(batch_size=4, detect_every=3, track=False)).predict(v)
    assert k3.success.all() and k3.held.tolist() == [False, True, True, False, True, True, False]
    x_every, x_k3 = every.box[:, 0], k3.box[:, 0]
    np.testing.assert_allclose(np.diff(x_every), 12, atol=3)  # the detector follows the face
    np.testing.assert_allclose(x_k3, x_every, atol=3)  # interpolation, not a 12-24 px lag
    np.testing.assert_allclose(x_k3[[0, 3, 6]], x_every[[0, 3, 6]], atol=1e-4)  # key frames are detections


def test_default_options_track_the_face_and_agree_with_exhaustive_detection(faces, tmp_path):
    """The defaults (detection every K frames, O-net tracking in between, threads) against --detect-every 1 on a
    moving face: the same rows, boxes within a few pixels, AU probabilities within the issue-21 target."""
    frames = np.concatenate([composite(faces[0][t % 12 : t % 12 + 1], [True], xy=(40 + 6 * t, 30 + t))
                             for t in range(24)])
    v = _video(tmp_path, frames)
    ref = Predictor(tiny_bundle(), PredictOptions(batch_size=8, detect_every=1, amp="off", prefetch=False)).predict(v)
    new = Predictor(tiny_bundle(), PredictOptions(batch_size=8)).predict(v)
    assert PredictOptions().detect_every > 1 and PredictOptions().track
    assert ref.success.all() and new.success.all() and new.frame.tolist() == list(range(24))
    assert new.face_search["key"] == 3 and new.face_search["tracked"] >= 18  # frames 0, 10, 20 detected
    assert new.held.sum() == new.face_search["tracked"]
    assert np.abs(new.box - ref.box).max() < 6  # px (the face box is ~70 px)
    assert np.abs(new.probs - ref.probs).mean() <= 0.02


def test_tracking_notices_a_face_leaving_and_returning_at_once(faces, tmp_path):
    present = [True] * 4 + [False] * 3 + [True] * 5
    tab = Predictor(tiny_bundle(), PredictOptions(batch_size=4, detect_every=50)).predict(
        _video(tmp_path, composite(faces[0], present)))
    assert tab.success.tolist() == present  # no K-frame lag: lost → re-detect; a change → re-detect
    assert tab.face_search["lost"] == 1 and tab.face_search["change"] >= 1 and tab.face_search["key"] == 1


def test_auto_precision_follows_native_bf16(faces, tmp_path):
    from auspread.engine.precision import cpu_has_native_bf16

    pr = Predictor(tiny_bundle(), PredictOptions())
    assert pr.amp == ("bf16" if cpu_has_native_bf16() else "off") and pr.channels_last == (pr.amp == "bf16")
    forced = Predictor(tiny_bundle(), PredictOptions(amp="off", channels_last=True))
    assert forced.amp == "off" and forced.channels_last


def test_overlapped_stages_split_the_intra_op_threads(faces, tmp_path):
    before = torch.get_num_threads()
    pr = Predictor(tiny_bundle(), PredictOptions(batch_size=4))
    assert pr.thread_split() == (1, max(1, before - 1))
    assert Predictor(tiny_bundle(), PredictOptions(prefetch=False)).thread_split() == (None, None)
    assert Predictor(tiny_bundle(), PredictOptions(detect_threads=2, model_threads=3)).thread_split() == (2, 3)
    pr.predict(_video(tmp_path, composite(faces[0][:3], [True] * 3)))
    assert torch.get_num_threads() == before  # restored after the run
