import json

import numpy as np
import pytest
from _reader_trees import write_avi, write_image

from auspread.data.index import ImageFiles, VideoFile
from auspread.data.readers import probe_dataset, read_dataset
from auspread.errors import DataError


def _media(root):
    write_avi(root / "clips" / "anna.avi", 40)
    write_avi(root / "clips" / "carl.avi", 6)
    for n in (1, 2, 10, 11):  # natural order 1, 2, 10, 11 (not 1, 10, 11, 2)
        write_image(root / "frames" / "bob" / f"{n}.jpg", n)


CSV = """source,subject,task,frame,AU01,AU06,AU12
clips/anna.avi,anna,interview,0,1,,0
clips/anna.avi,anna,interview,30,0,1,
frames/bob,bob,,2,1,0,1
clips/carl.avi,carl,,,,,
"""


def _check(idx, root):
    assert idx.dataset == "generic" and idx.aus == (1, 6, 12)
    by = {v.video_id: v for v in idx}
    assert set(by) == {"anna/interview", "bob/bob", "carl/carl"}
    anna = by["anna/interview"]
    assert isinstance(anna.source, VideoFile) and len(anna) == 40 and anna.source.indices == tuple(range(40))
    assert anna.labels[0].tolist() == [1, -1, 0] and anna.labels[30].tolist() == [0, 1, -1]
    assert (np.delete(anna.labels, [0, 30], axis=0) == -1).all()
    bob = by["bob/bob"]
    assert isinstance(bob.source, ImageFiles) and [p.rsplit("/", 1)[1] for p in bob.source.paths] == ["1.jpg", "2.jpg", "10.jpg", "11.jpg"]
    assert bob.labels.tolist() == [[-1] * 3, [-1] * 3, [1, 0, 1], [-1] * 3]  # frame 2 = third image (0-based)
    carl = by["carl/carl"]
    assert len(carl) == 6 and (carl.labels == -1).all()  # a fully unlabelled video


def test_csv_manifest(tmp_path):
    _media(tmp_path)
    (tmp_path / "labels.csv").write_text(CSV)
    assert probe_dataset(tmp_path / "labels.csv") == "generic"
    idx = read_dataset("auto", tmp_path / "labels.csv")
    _check(idx, tmp_path)
    assert idx.fps == 20  # from the first video
    sub = read_dataset("generic", tmp_path / "labels.csv", aus=[12, 1], fps=30)
    assert sub.aus == (12, 1) and sub.fps == 30 and sub.videos[0].labels[0].tolist() == [0, 1]


def test_json_manifest_in_folder(tmp_path):
    _media(tmp_path)
    manifest = {"fps": 30, "videos": [
        {"source": "clips/anna.avi", "subject": "anna", "task": "interview",
         "labels": [{"frame": 0, "AU01": 1, "AU12": 0}, {"frame": 30, "AU1": 0, "au06": 1}]},
        {"source": "frames/bob", "subject": "bob", "labels": [{"frame": 2, "AU01": 1, "AU06": 0, "AU12": 1}]},
        {"source": "clips/carl.avi", "subject": "carl"}]}
    (tmp_path / "auspread_manifest.json").write_text(json.dumps(manifest))
    assert probe_dataset(tmp_path) == "generic"
    idx = read_dataset("auto", tmp_path)
    _check(idx, tmp_path)
    assert idx.fps == 30


@pytest.mark.parametrize("row,problem", [
    ("clips/anna.avi,anna,interview,40,1,0,0", "frame 40 of clips/anna.avi is beyond its 40 frames"),
    ("clips/anna.avi,anna,interview,3,yes,0,0", "non-numeric label 'yes' at line 3, AU1"),
    ("clips/anna.avi,anna,interview,3,2,0,0", "label '2' at line 3, AU1 must be 1, 0 or empty"),
    ("clips/gone.avi,gone,,0,1,0,0", "gone.avi: listed in the manifest but does not exist"),
    ("clips/anna.avi,anna,interview,0,0,,", "frame 0 AU1 given twice with different values"),
    ("clips/anna.avi,zed,interview,0,1,,", "was listed with subject/task anna/interview"),
])
def test_csv_manifest_errors(tmp_path, row, problem):
    _media(tmp_path)
    (tmp_path / "m.csv").write_text("source,subject,task,frame,AU01,AU06,AU12\nclips/anna.avi,anna,interview,0,1,,0\n" + row + "\n")
    with pytest.raises(DataError) as e:
        read_dataset("generic", tmp_path / "m.csv")
    assert problem in str(e.value)


def test_manifest_structure_errors(tmp_path):
    (tmp_path / "a.csv").write_text("video,who\nx,y\n")
    with pytest.raises(DataError, match="a.csv: has no 'source' column"):
        read_dataset("generic", tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("")
    with pytest.raises(DataError, match="b.csv: is empty"):
        read_dataset("generic", tmp_path / "b.csv")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(DataError, match="c.json: is not valid JSON"):
        read_dataset("generic", tmp_path / "c.json")
    (tmp_path / "empty").mkdir()
    (tmp_path / "d.csv").write_text("source,subject,frame,AU1\nempty,s,0,1\n")
    with pytest.raises(DataError, match="frame folder contains no images"):
        read_dataset("generic", tmp_path / "d.csv")
    with pytest.raises(DataError, match="no manifest"):
        read_dataset("generic", tmp_path / "empty")
