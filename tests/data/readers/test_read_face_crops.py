"""Every reader says whether its frames are aligned face crops or full camera frames (``VideoIndex.face_crops``),
so training can refuse or prepare camera frames instead of squashing them."""

import json

import numpy as np
import pytest
from _reader_trees import make_bp4d, make_bp4d_plus, make_disfa, write_avi, write_image

from auspread.data.index import (ImageFiles, VideoIndex, VideoRecord, index_from_json, index_to_json,
                                 unlabel_no_face_frames)
from auspread.data.readers import read_dataset
from auspread.errors import DataError

BP4D_VIDEOS = {("F001", "T1"): (10, 3, "4")}


def test_raw_bp4d_and_bp4d_plus_trees_are_camera_frames(tmp_path):
    make_bp4d(tmp_path / "bp4d", BP4D_VIDEOS)
    assert read_dataset("bp4d", tmp_path / "bp4d", progress=False).face_crops is False
    make_bp4d_plus(tmp_path / "bp4dp", {("F001", "T1"): (1, 3, "4", 4)})
    assert read_dataset("bp4d+", tmp_path / "bp4dp", progress=False).face_crops is False
    # subject folders directly under the root are camera frames too
    make_bp4d(tmp_path / "flat", BP4D_VIDEOS, tree="")
    assert read_dataset("bp4d", tmp_path / "flat", progress=False).face_crops is False


def test_bp4d_crop_tree_and_explicit_option(tmp_path):
    make_bp4d(tmp_path, BP4D_VIDEOS, tree="img")  # ME-GraphAU's crop layout (and auspread prepare's output)
    assert read_dataset("bp4d", tmp_path, progress=False).face_crops is True
    assert read_dataset("bp4d", tmp_path, progress=False, face_crops=False).face_crops is False
    make_bp4d(tmp_path / "raw", BP4D_VIDEOS)
    assert read_dataset("bp4d", tmp_path / "raw", progress=False, face_crops=True).face_crops is True


def test_when_both_trees_exist_the_camera_tree_is_flagged(tmp_path):
    """The reader prefers the raw tree when both exist; it must then say so."""
    make_bp4d(tmp_path, BP4D_VIDEOS, tree="Sequences(2D+3D)")
    make_bp4d(tmp_path, BP4D_VIDEOS, tree="img")
    idx = read_dataset("bp4d", tmp_path, progress=False)
    assert "Sequences(2D+3D)" in idx.videos[0].source.paths[0] and idx.face_crops is False
    assert read_dataset("bp4d", tmp_path, progress=False, images=tmp_path / "img").face_crops is True


def test_disfa_videos_are_camera_frames(tmp_path):
    make_disfa(tmp_path, {"SN001": 3})
    assert read_dataset("disfa", tmp_path, progress=False).face_crops is False
    assert read_dataset("disfa", tmp_path, progress=False, face_crops=True).face_crops is True


def test_synthetic_benchmark_trees_are_face_crops(tmp_path):
    from auspread.data import synth

    for fmt in ("bp4d", "disfa"):
        root = synth.generate(tmp_path / fmt, preset="tiny", fmt=fmt, seed=0, progress=False, subjects=1, tasks=1,
                              frames=8, size=32)
        assert read_dataset(fmt, root, progress=False).face_crops is True


def test_generic_manifests_are_camera_recordings_unless_declared(tmp_path):
    write_avi(tmp_path / "a.avi", 4)
    (tmp_path / "m.csv").write_text("source,subject,frame,AU12\na.avi,anna,0,1\n")
    assert read_dataset("generic", tmp_path / "m.csv").face_crops is False
    assert read_dataset("generic", tmp_path / "m.csv", face_crops=True).face_crops is True
    doc = {"aus": [12], "videos": [{"source": "a.avi", "subject": "anna"}]}
    (tmp_path / "m.json").write_text(json.dumps(doc))
    assert read_dataset("generic", tmp_path / "m.json").face_crops is False
    (tmp_path / "m.json").write_text(json.dumps({**doc, "face_crops": True}))
    assert read_dataset("generic", tmp_path / "m.json").face_crops is True
    (tmp_path / "m.json").write_text(json.dumps({**doc, "face_crops": "yes"}))
    with pytest.raises(DataError, match='"face_crops" must be true or false'):
        read_dataset("generic", tmp_path / "m.json")


def test_list_crop_trees_are_face_crops(tmp_path):
    write_image(tmp_path / "img" / "SN001" / "0.png", 0)
    (tmp_path / "DISFA_test_img_path_fold1.txt").write_text("SN001/0.png\n")
    (tmp_path / "DISFA_test_label_fold1.txt").write_text("0 1 0 0 1 0 0 1\n")
    assert read_dataset("lists", tmp_path).face_crops is True


def _rec(no_face):
    return VideoRecord("S1/T1", "S1", "T1", np.array([5, 6, 7]), np.array([[1, 0], [1, 1], [0, -1]]),
                       ImageFiles(("a", "b", "c")), meta={"no_face_frames": no_face})


def test_face_crops_round_trips_and_no_face_frames_become_unknown():
    idx = VideoIndex("BP4D", (1, 2), [_rec([6])], 25.0, face_crops=False)
    assert index_from_json(index_to_json(idx)).face_crops is False
    assert idx.frames_without_face == 1 and idx.summary()["frames_without_face"] == 1
    out = unlabel_no_face_frames(idx)
    assert out.videos[0].labels.tolist() == [[1, 0], [-1, -1], [0, -1]]
    assert idx.videos[0].labels.tolist() == [[1, 0], [1, 1], [0, -1]]  # the input is not modified
