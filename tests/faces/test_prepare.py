import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faces_fakes import composite, write_video

from auspread.data.readers import read_dataset
from auspread.errors import DataError
from auspread.faces.align import template
from auspread.faces.prepare import PrepareOptions, fill_matrices, prepare_dataset, read_prepared


def test_aligned_synthetic_tree_skips_detection_and_reads_back(synth_root, tmp_path):
    out = tmp_path / "out"
    rep = prepare_dataset(synth_root, out, "bp4d", PrepareOptions(size=64), progress=False)
    assert rep["aligned_input"] is True and rep["frames_without_face"] == 0
    src = read_dataset("bp4d", synth_root)
    for again in (read_dataset("bp4d", out), read_prepared(out)):
        assert again.dataset == "BP4D" and [v.video_id for v in again] == [v.video_id for v in src]
        for a, b in zip(src, again):
            np.testing.assert_array_equal(a.frame_numbers, b.frame_numbers)
            np.testing.assert_array_equal(a.labels, b.labels)
            assert Image.open(b.source.paths[0]).size == (64, 64)
            # landmarks follow the resize (112 → 64 px)
            np.testing.assert_allclose(b.landmarks, (a.landmarks + 0.5) * 64 / 112 - 0.5, atol=0.006)  # JSON keeps 2 dp


def _manifest(tmp_path, videos: dict[str, np.ndarray]):
    lines = ["source,subject,task,frame,AU01,AU12"]
    for name, frames in videos.items():
        write_video(tmp_path / f"{name}.mp4", frames)
        for t in range(len(frames)):
            lines.append(f"{name}.mp4,{name},,{t},{t % 2},")
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "manifest.csv"


@pytest.fixture(scope="module")
def raw_videos(faces, tmp_path_factory):
    frames, _ = faces
    d = tmp_path_factory.mktemp("raw")
    present = [False, True, True, False, True]
    m = _manifest(d, {"anna": composite(frames, present), "empty": composite(frames, [False] * 3)})
    return m, present


def test_detect_align_keep_no_face_frames(raw_videos, tmp_path):
    manifest, present = raw_videos
    out = tmp_path / "out"
    rep = prepare_dataset(manifest, out, "generic", PrepareOptions(size=64), progress=False)
    anna = rep["per_video"][next(k for k in rep["per_video"] if "anna" in k)]
    assert anna["frames"] == 5 and anna["frames_with_face"] == 3
    assert anna["no_face_frames"] == [0, 3] and anna["fallback"] == "previous face"
    empty = rep["per_video"][next(k for k in rep["per_video"] if "empty" in k)]
    assert empty["no_face_frames"] == [0, 1, 2] and empty["fallback"] == "centre square"
    assert rep["frames_without_face"] == 5
    idx = read_prepared(out)
    rec = next(v for v in idx if "anna" in v.video_id)
    assert len(rec.source.paths) == 5 and all(os.path.isfile(p) for p in rec.source.paths)
    assert rec.meta["no_face_frames"] == [0, 3]
    np.testing.assert_array_equal(rec.labels[:, 0], [0, 1, 0, 1, 0])
    # the detected 5 points land on the template in the crop
    with np.load(out / "Landmarks_5" / f"{rec.video_id.replace('/', '_')}.npz") as z:
        pts = z["points"]
    assert np.isnan(pts[[0, 3]]).all()
    err = np.linalg.norm(pts[[1, 2, 4]] - template(64), axis=-1)
    assert err.max() < 4.0
    # frame 3 (no face) reuses frame 2's transform: same background, no face pixels → not black
    crop3 = np.asarray(Image.open(rec.source.paths[3]))
    assert crop3.shape == (64, 64, 3) and crop3.mean() > 40


def test_resume_skips_done_videos(raw_videos, tmp_path):
    manifest, _ = raw_videos
    out = tmp_path / "out"
    prepare_dataset(manifest, out, "generic", PrepareOptions(size=32), progress=False)
    markers = sorted((out / "videos").glob("*.json"))
    assert len(markers) == 2
    stamps = {m.name: m.stat().st_mtime_ns for m in markers}
    markers[0].unlink()
    rep = prepare_dataset(manifest, out, "generic", PrepareOptions(size=32), progress=False)
    assert rep["videos_done"] == 2
    assert markers[0].is_file() and markers[1].stat().st_mtime_ns == stamps[markers[1].name]
    assert not list(out.rglob("*.partial"))


def test_parallel_workers_match_serial(raw_videos, tmp_path):
    manifest, _ = raw_videos
    a = prepare_dataset(manifest, tmp_path / "a", "generic", PrepareOptions(size=32), progress=False)
    b = prepare_dataset(manifest, tmp_path / "b", "generic", PrepareOptions(size=32, workers=2), progress=False)
    assert a["per_video"] == b["per_video"]


def test_fill_matrices_nearest_earlier_face():
    lms = np.full((4, 5, 2), np.nan)
    lms[2] = template(64) * 2  # a face at twice the template's scale
    mats, how = fill_matrices(lms, (100, 100), 64, 0.1)
    assert how == "previous face"
    np.testing.assert_allclose(mats[0], mats[2])  # leading frames take the first later face
    np.testing.assert_allclose(mats[3], mats[2])
    np.testing.assert_allclose(mats[2][:, :2], np.eye(2) / 2, atol=1e-9)


def test_output_inside_input_is_refused(synth_root):
    with pytest.raises(DataError, match="inside the input"):
        prepare_dataset(synth_root, synth_root / "crops", "bp4d", progress=False)


def test_prepared_reader_and_probe(synth_root, tmp_path):
    from auspread.data.readers import probe_dataset

    out = tmp_path / "out"
    prepare_dataset(synth_root, out, "bp4d", PrepareOptions(size=32), progress=False)
    assert probe_dataset(out) == "prepared"
    idx = read_dataset("prepared", out)
    assert idx.num_frames == read_dataset("bp4d", synth_root).num_frames and idx.dataset == "BP4D"


def test_a_broken_video_fails_alone_and_is_retried(synth_root, tmp_path):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(synth_root, raw)
    src = read_dataset("bp4d", raw)
    bad_frame = src.videos[1].source.paths[2]
    good = Path(bad_frame).read_bytes()
    Path(bad_frame).write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="1 of 2 videos failed"):
        prepare_dataset(raw, out, "bp4d", PrepareOptions(size=32), progress=False)
    assert (out / "videos" / f"{src.videos[0].video_id.replace('/', '_')}.json").is_file()
    assert not (out / "videos" / f"{src.videos[1].video_id.replace('/', '_')}.json").exists()
    assert not list(out.rglob("*.partial"))
    Path(bad_frame).write_bytes(good)
    rep = prepare_dataset(raw, out, "bp4d", PrepareOptions(size=32), progress=False)
    assert rep["videos_done"] == 2 and not rep["errors"]


def test_disfa_format_videos(tmp_path):
    """DISFA-layout input (video files + per-AU intensity files): frames come from VideoFile decode indices."""
    from auspread.data.synth.generator import generate

    raw = generate(tmp_path / "disfa", preset="tiny", fmt="disfa", subjects=2, frames=10, size=64, progress=False)
    rep = prepare_dataset(raw, tmp_path / "out", "disfa", PrepareOptions(size=32), progress=False)
    src, out = read_dataset("disfa", raw), read_dataset("prepared", tmp_path / "out")
    assert rep["videos_done"] == 2 and out.dataset == "DISFA" and out.aus == src.aus
    for a, b in zip(src, out):
        assert len(b.source.paths) == len(a) and Path(b.source.paths[0]).is_file()
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.intensities, b.intensities, atol=1e-3)
