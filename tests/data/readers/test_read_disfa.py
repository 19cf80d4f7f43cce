import numpy as np
import pytest
from _reader_trees import DISFA_CODED, disfa_expected, make_disfa, write_avi

from auspread.data.index import VideoFile
from auspread.data.readers import probe_dataset, read_dataset
from auspread.data.readers._common import count_video_frames
from auspread.errors import DataError


def test_left_camera_threshold_and_intensities(tmp_path):
    written = make_disfa(tmp_path, {"SN001": 6, "SN002": 5})
    assert probe_dataset(tmp_path) == "disfa"
    idx = read_dataset("auto", tmp_path, progress=False)
    assert idx.dataset == "DISFA" and idx.aus == (1, 2, 4, 6, 9, 12, 25, 26) and idx.fps == 20
    assert [v.video_id for v in idx] == ["SN001", "SN002"]
    for v in idx:
        inten = written[v.subject]
        np.testing.assert_array_equal(v.labels, disfa_expected(inten))
        cols = [DISFA_CODED.index(a) for a in idx.aus]
        np.testing.assert_array_equal(v.intensities, inten[:, cols].astype(np.float32))
        assert v.frame_numbers.tolist() == list(range(1, len(inten) + 1))  # the file's 1-based numbers
        assert isinstance(v.source, VideoFile) and v.source.indices == tuple(range(len(inten)))  # line order
        assert v.source.path.endswith("Videos_LeftCamera/LeftVideo" + v.subject + "_comp.avi")
    low = read_dataset("disfa", tmp_path, threshold=1, aus=[5, 15], progress=False)
    np.testing.assert_array_equal(low.videos[0].labels, disfa_expected(written["SN001"], aus=(5, 15), threshold=1))


def test_name_variants_video_folder_comp_capitalisation_right_camera(tmp_path):
    written = make_disfa(tmp_path, {"SN003": 4}, video_dir="Video_LeftCamera", video_name="leftvideo{s}_Comp.avi",
                         labels_dir="actionunit_labels", label_name="{s}_AU{a}.txt")
    write_avi(tmp_path / "Videos_RightCamera" / "RightVideoSN003_comp.avi", 4)
    left = read_dataset("disfa", tmp_path, progress=False)
    np.testing.assert_array_equal(left.videos[0].labels, disfa_expected(written["SN003"]))
    assert left.videos[0].source.path.endswith("Video_LeftCamera/leftvideoSN003_Comp.avi")
    right = read_dataset("disfa", tmp_path, camera="right", progress=False)
    assert right.videos[0].source.path.endswith("Videos_RightCamera/RightVideoSN003_comp.avi")
    assert right.videos[0].meta["camera"] == "right"


def test_sn010_has_4844_frames(tmp_path):
    make_disfa(tmp_path, {"SN010": 4844, "SN001": 3})
    idx = read_dataset("disfa", tmp_path, progress=False)
    assert {v.subject: len(v) for v in idx} == {"SN001": 3, "SN010": 4844}
    assert idx.videos[1].frame_numbers[-1] == 4844


def test_frame_count_mismatch_names_both_files_and_counts(tmp_path):
    make_disfa(tmp_path, {"SN001": 5})
    write_avi(tmp_path / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi", 7)
    with pytest.raises(DataError) as e:
        read_dataset("disfa", tmp_path)
    msg = str(e.value)
    assert "LeftVideoSN001_comp.avi: has 7 frames but" in msg and "SN001_au1.txt has 5 label lines" in msg
    assert len(read_dataset("disfa", tmp_path, check_frame_count=False, progress=False).videos[0]) == 5


@pytest.mark.parametrize("mode", ["metadata", "packets", "decode"])
def test_frame_count_modes_agree(tmp_path, mode):
    write_avi(tmp_path / "v.avi", 9)
    assert count_video_frames(tmp_path / "v.avi", mode) == 9


def test_bad_label_files(tmp_path):
    make_disfa(tmp_path, {"SN001": 4})
    sdir = tmp_path / "ActionUnit_Labels" / "SN001"
    (sdir / "SN001_au4.txt").write_text("1,0\n2,x\n3,0\n4,0\n")
    with pytest.raises(DataError, match=r"SN001_au4.txt: non-numeric value at line 2: '2,x'"):
        read_dataset("disfa", tmp_path)
    (sdir / "SN001_au4.txt").write_text("1,0\n2,0\n3,0\n")
    with pytest.raises(DataError, match="SN001_au4.txt: has 3 label lines but SN001_au1.txt has 4"):
        read_dataset("disfa", tmp_path)
    (sdir / "SN001_au4.txt").write_text("1,0\n2,0\n3,7\n4,0\n")
    with pytest.raises(DataError, match="line 3 is '3,7'"):
        read_dataset("disfa", tmp_path)
    (sdir / "SN001_au4.txt").unlink()
    with pytest.raises(DataError, match="SN001_au4.txt: missing label file for AU4 of SN001"):
        read_dataset("disfa", tmp_path)


def test_missing_video_and_camera_folder(tmp_path):
    make_disfa(tmp_path, {"SN001": 3}, video_dir="")
    with pytest.raises(DataError, match="no Videos_LeftCamera or Video_LeftCamera folder"):
        read_dataset("disfa", tmp_path)
    (tmp_path / "Videos_LeftCamera").mkdir()
    with pytest.raises(DataError, match="LeftVideoSN001_comp.avi: missing left-camera video of SN001"):
        read_dataset("disfa", tmp_path)
    (tmp_path / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi").write_bytes(b"not a video")
    with pytest.raises(DataError, match="cannot be read as a video"):
        read_dataset("disfa", tmp_path)


def test_no_subjects(tmp_path):
    (tmp_path / "ActionUnit_Labels").mkdir()
    with pytest.raises(DataError, match="contains no subject folders"):
        read_dataset("disfa", tmp_path)
