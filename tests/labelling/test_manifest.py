"""The label manifest: answers stored as given, atomic writes, resume point, clear errors."""

import os

import pytest

from auspread.data.readers import read_dataset
from auspread.errors import DataError
from auspread.labelling.manifest import LabelManifest


@pytest.fixture
def manifest(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    from PIL import Image

    for i in range(30):
        Image.new("RGB", (32, 32), (i, 80, 120)).save(d / f"{i}.png")
    p = tmp_path / "m.csv"
    p.write_text("source,subject,task,frame,AU01,AU12,reason,answered\n"
                 "frames,anna,,0,1,0,,\n"      # written by hand: answered (cells filled)
                 "frames,anna,,10,,,key frame,\n"
                 "frames,anna,,20,,,key frame,\n")
    return p


def test_answers_are_written_as_given_and_resume_at_the_first_open_frame(manifest):
    m = LabelManifest.read(manifest)
    assert m.first_open() == 1
    m.answer(m.frame_rows()[1], {1: 1, 12: None}, answered_at="2026-01-01T00:00:00+00:00")
    again = LabelManifest.read(manifest)
    assert again.rows[1]["AU01"] == "1" and again.rows[1]["AU12"] == "" and again.rows[1]["answered"]
    assert again.first_open() == 2
    idx = read_dataset("generic", manifest)
    assert idx.videos[0].labels[[0, 10, 20]].tolist() == [[1, 0], [1, -1], [-1, -1]]  # not sure stays unknown


def test_all_not_sure_still_counts_as_answered(manifest):
    m = LabelManifest.read(manifest)
    m.answer(1, {1: None, 12: None})
    assert LabelManifest.read(manifest).is_answered(1)


def test_a_failed_write_leaves_the_previous_manifest(manifest, monkeypatch):
    before = manifest.read_bytes()
    m = LabelManifest.read(manifest)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        m.answer(1, {1: 1})
    assert manifest.read_bytes() == before
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["frames", "m.csv"]  # no temp file left


@pytest.mark.parametrize("text, problem", [
    ("", "is empty"),
    ("source,subject,frame\nx,y,1\n", "names no AU"),
    ("source,frame,AU01\nx,1,1\n", "no 'subject' column"),
    ("source,subject,frame,AU01\nx,y,one,1\n", "frame 'one'"),
    ("source,subject,frame,AU01\nx,y,1,yes\n", "must be 1, 0 or empty"),
])
def test_unreadable_manifests_name_the_file_and_the_problem(tmp_path, text, problem):
    p = tmp_path / "m.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=problem) as e:
        LabelManifest.read(p)
    assert str(p) in str(e.value)


def test_a_json_manifest_is_refused_with_the_way_out(tmp_path):
    p = tmp_path / "m.json"
    p.write_text("{}")
    with pytest.raises(DataError, match="suggest-labels"):
        LabelManifest.read(p)


def test_answers_never_overwrite_edits_made_elsewhere(manifest):
    m = LabelManifest.read(manifest)
    m.answer(1, {1: 1})
    edited = manifest.read_text().replace("key frame", "edited by hand")
    manifest.write_text(edited)
    with pytest.raises(DataError, match="changed on disk"):
        m.answer(2, {1: 0})
    assert manifest.read_text() == edited
