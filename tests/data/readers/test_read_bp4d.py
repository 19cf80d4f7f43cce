from pathlib import Path

import numpy as np
import pytest
from _reader_trees import (
    BP4D_AUS,
    bp4d_codes,
    expected_bp4d_labels,
    image_name,
    make_bp4d,
    write_bp4d_csv,
    write_image,
)

from auspread.data.index import ImageFiles
from auspread.data.readers import probe_dataset, read_dataset
from auspread.errors import ConfigError, DataError

VIDEOS = {("F001", "T1"): (2440, 5, "4"), ("M009", "T2"): (7, 4, "3")}


@pytest.mark.parametrize("tree", ["Sequences(2D+3D)", "Sequences_2D+3D", "2D+3D", "BP4D-training", "img", ""])
@pytest.mark.parametrize("coding", ["AU_OCC", "AUCoding"])
def test_root_variants_read_exact_labels(tmp_path, tree, coding):
    written = make_bp4d(tmp_path, VIDEOS, tree=tree, coding=coding)
    assert probe_dataset(tmp_path) == "bp4d"
    index = read_dataset("auto", tmp_path, progress=False)
    assert index.dataset == "BP4D" and index.aus == BP4D_AUS and index.fps == 25
    assert [v.video_id for v in index] == ["F001/T1", "M009/T2"]
    for v in index:
        frames, codes = written[v.video_id]
        np.testing.assert_array_equal(v.frame_numbers, frames)
        np.testing.assert_array_equal(v.labels, expected_bp4d_labels(codes))
        assert v.labels.dtype == np.int8
        assert isinstance(v.source, ImageFiles)
        # coded frames only: the extra images before/after the segment are not indexed
        assert [int(Path(p).stem) for p in v.source.paths] == frames.tolist()
        assert v.subject == v.video_id.split("/")[0] and v.task == v.video_id.split("/")[1]


def test_padding_per_task_folder_and_nine_cells(tmp_path):
    videos = {("F001", "T1"): (2440, 3, "none"), ("F001", "T2"): (5, 3, "4"), ("M009", "T1"): (5, 3, "3")}
    written = make_bp4d(tmp_path, videos)
    index = read_dataset("bp4d", tmp_path, progress=False)
    by_id = {v.video_id: v for v in index}
    assert Path(by_id["F001/T1"].source.paths[0]).name == "2440.jpg"
    assert Path(by_id["F001/T2"].source.paths[0]).name == "0005.jpg"
    assert Path(by_id["M009/T1"].source.paths[0]).name == "005.jpg"
    assert by_id["F001/T2"].meta["padding"] == "4" and by_id["M009/T1"].meta["padding"] == "3"
    # the 9 written in AU1 of the first frame is unknown
    assert (by_id["F001/T1"].labels[0, 0]) == -1
    assert set(np.unique(index.all_labels())) <= {-1, 0, 1}
    # an all-9 column (AU28 not coded in this video) reads as unknown and is reported
    frames, codes = written["F001/T1"]
    codes[:, 28] = 9
    write_bp4d_csv(tmp_path / "AUCoding/AU_OCC/F001_T1.csv", frames, codes)
    idx = read_dataset("bp4d", tmp_path, aus=[1, 28], progress=False)
    v = idx.videos[0]
    assert (v.labels[:, 1] == -1).all() and v.meta["uncoded_aus"] == [28]
    # AUs BP4D never codes (its all-9 columns 25, 26) are refused with a clear message
    with pytest.raises(ConfigError, match="BP4D does not code AU25, AU26"):
        read_dataset("bp4d", tmp_path, aus=[1, 25, 26])
    np.testing.assert_array_equal(v.labels[:, 0], expected_bp4d_labels(written["F001/T1"][1], aus=[1])[:, 0])


def test_other_coded_aus_and_bad_au(tmp_path):
    written = make_bp4d(tmp_path, {("F002", "T8"): (10, 4, "4")})
    idx = read_dataset("bp4d", tmp_path, aus=[5, 27, 9], progress=False)
    assert idx.aus == (5, 27, 9)
    np.testing.assert_array_equal(idx.videos[0].labels, expected_bp4d_labels(written["F002/T8"][1], aus=[5, 27, 9]))
    with pytest.raises(ConfigError, match="AU45"):
        read_dataset("bp4d", tmp_path, aus=[45])
    with pytest.raises(ConfigError, match="nonsense"):
        read_dataset("bp4d", tmp_path, nonsense=1)


def test_rows_out_of_order_are_sorted_and_png_frames(tmp_path):
    rng = np.random.default_rng(1)
    frames = np.array([12, 10, 11])
    codes = bp4d_codes(rng, 3)
    write_bp4d_csv(tmp_path / "AUCoding/AU_OCC/F003_T3.csv", frames, codes)
    for n in frames:
        write_image(tmp_path / "BP4D-training/F003/T3" / f"{n}.png", int(n))
    v = read_dataset("bp4d", tmp_path, progress=False).videos[0]
    assert v.frame_numbers.tolist() == [10, 11, 12]
    np.testing.assert_array_equal(v.labels, expected_bp4d_labels(codes[[1, 2, 0]]))


def test_missing_image_is_an_error_or_skipped(tmp_path):
    make_bp4d(tmp_path, {("F001", "T1"): (100, 5, "4")}, extra_images=0)
    (tmp_path / "Sequences(2D+3D)/F001/T1/0102.jpg").unlink()
    with pytest.raises(DataError, match=r"1 of 5 coded frames of F001_T1.csv have no image.*102") as e:
        read_dataset("bp4d", tmp_path, progress=False)
    assert "F001/T1" in str(e.value)
    v = read_dataset("bp4d", tmp_path, missing_frames="skip", progress=False).videos[0]
    assert v.frame_numbers.tolist() == [100, 101, 103, 104] and v.meta["skipped_frames"] == 1


def test_missing_frame_folder_and_zip_hint(tmp_path):
    write_bp4d_csv(tmp_path / "AUCoding/AU_OCC/F001_T1.csv", np.arange(3), bp4d_codes(np.random.default_rng(0), 3))
    (tmp_path / "2D+3D").mkdir()
    (tmp_path / "2D+3D" / "F001.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match="extract them first"):
        read_dataset("bp4d", tmp_path)


def test_non_numeric_cell_names_file_line_and_column(tmp_path):
    make_bp4d(tmp_path, {("F001", "T1"): (1, 3, "4")})
    csv = tmp_path / "AUCoding/AU_OCC/F001_T1.csv"
    lines = csv.read_text().splitlines()
    cells = lines[2].split(",")
    cells[12] = "x"
    lines[2] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"F001_T1.csv: non-numeric cell 'x' at line 3, column '12' \(AU12\)"):
        read_dataset("bp4d", tmp_path)


def test_bad_code_missing_column_empty_csv(tmp_path):
    make_bp4d(tmp_path, {("F001", "T1"): (1, 3, "4")})
    csv = tmp_path / "AUCoding/AU_OCC/F001_T1.csv"
    text = csv.read_text()
    lines = text.splitlines()
    cells = lines[1].split(",")
    cells[4] = "3"
    csv.write_text("\n".join([lines[0], ",".join(cells)] + lines[2:]) + "\n")
    with pytest.raises(DataError, match="unexpected code 3 at line 2 for AU4"):
        read_dataset("bp4d", tmp_path)
    csv.write_text("0,1,2,3\n1,0,0,9\n")
    with pytest.raises(DataError, match="has no column for AU4"):
        read_dataset("bp4d", tmp_path)
    csv.write_text("")
    with pytest.raises(DataError, match="F001_T1.csv: is empty"):
        read_dataset("bp4d", tmp_path)


def test_landmarks_attached_by_frame_number(tmp_path):
    make_bp4d(tmp_path, {("F001", "T1"): (50, 4, "4")})
    pts = np.random.default_rng(0).random((3, 68, 2)).astype(np.float32)
    (tmp_path / "Landmarks_68").mkdir()
    np.savez(tmp_path / "Landmarks_68/F001_T1.npz", frame_numbers=np.array([50, 51, 53]), points=pts)
    v = read_dataset("bp4d", tmp_path, progress=False).videos[0]
    assert v.landmarks.shape == (4, 68, 2)
    np.testing.assert_array_equal(v.landmarks[[0, 1, 3]], pts)
    assert np.isnan(v.landmarks[2]).all() and "1 frames have no landmarks" in v.meta["landmarks_note"]


def test_subject_and_task_selection(tmp_path):
    make_bp4d(tmp_path, {("F001", "T1"): (1, 2, "4"), ("F001", "T2"): (1, 2, "4"), ("M001", "T1"): (1, 2, "4")})
    idx = read_dataset("bp4d", tmp_path, subjects=["f001"], tasks=["T2"], progress=False)
    assert [v.video_id for v in idx] == ["F001/T2"]


def test_bad_input_layouts(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_dataset("bp4d", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty folder"):
        probe_dataset(tmp_path / "empty")
    with pytest.raises(DataError, match="no BP4D label folder"):
        read_dataset("bp4d", tmp_path / "empty")
    (tmp_path / "odd" / "stuff").mkdir(parents=True)
    with pytest.raises(DataError, match="unknown dataset layout"):
        read_dataset("auto", tmp_path / "odd")
    (tmp_path / "nocsv/AUCoding/AU_OCC").mkdir(parents=True)
    (tmp_path / "nocsv/AUCoding/AU_OCC/readme.txt").write_text("x")
    with pytest.raises(DataError, match="no BP4D label folder"):
        read_dataset("bp4d", tmp_path / "nocsv")
    with pytest.raises(ConfigError, match="unknown dataset"):
        read_dataset("ck+", tmp_path)


def test_image_name_helper_matches_padding():
    assert [image_name(7, p) for p in ("none", "3", "4")] == ["7.jpg", "007.jpg", "0007.jpg"]


def test_jpeg_frames_win_over_same_numbered_bmp_and_images_option(tmp_path):
    written = make_bp4d(tmp_path, {("F001", "T1"): (1, 3, "4")}, extra_images=0)
    for n in (1, 2, 3):
        write_image(tmp_path / "Sequences(2D+3D)/F001/T1" / f"{n:04d}.bmp", n)
        write_image(tmp_path / "img/F001/T1" / f"{n}.png", n)
    v = read_dataset("bp4d", tmp_path, progress=False).videos[0]
    assert [Path(p).name for p in v.source.paths] == ["0001.jpg", "0002.jpg", "0003.jpg"]
    v = read_dataset("bp4d", tmp_path, images=tmp_path / "img", progress=False).videos[0]
    assert [Path(p).name for p in v.source.paths] == ["1.png", "2.png", "3.png"]
    np.testing.assert_array_equal(v.labels, expected_bp4d_labels(written["F001/T1"][1]))
