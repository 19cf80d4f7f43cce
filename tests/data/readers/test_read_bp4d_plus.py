from pathlib import Path

import numpy as np
import pytest
from _reader_trees import BP4DP_CODED, make_bp4d_plus

from auspread.aus import dataset_aus
from auspread.data.readers import probe_dataset, read_dataset
from auspread.errors import DataError


def _expected(codes34, aus):
    c = codes34[:, [BP4DP_CODED.index(a) for a in aus]]
    return np.where(c == 9, -1, c).astype(np.int8)


def test_positional_columns_one_based_frames_mixed_padding(tmp_path):
    videos = {("F001", "T1"): (3, 4, "4", 10), ("M050", "T6"): (1, 3, "3", 6), ("F001", "T2"): (1, 3, "4", 5)}
    written = make_bp4d_plus(tmp_path, videos)
    assert probe_dataset(tmp_path) == "bp4d+"
    idx = read_dataset("bp4d+", tmp_path, progress=False)
    assert idx.dataset == "BP4D+" and idx.aus == dataset_aus("BP4D").aus
    # T2 is not AU-coded in BP4D+: skipped by default
    assert [v.video_id for v in idx] == ["F001/T1", "M050/T6"]
    for v in idx:
        frames, codes = written[v.video_id]
        np.testing.assert_array_equal(v.frame_numbers, frames)  # CSV numbering kept (1-based)
        np.testing.assert_array_equal(v.labels, _expected(codes, idx.aus))
        # CSV frame f ↔ image f − 1
        assert [int(Path(p).stem) for p in v.source.paths] == (frames - 1).tolist()
        assert v.meta["image_offset"] == -1
    assert Path(idx.videos[1].source.paths[0]).name == "000.jpg"  # 3-digit copy
    assert Path(idx.videos[0].source.paths[0]).name == "0002.jpg"  # 4-digit copy


def test_all_34_aus_by_position_and_task_option(tmp_path):
    written = make_bp4d_plus(tmp_path, {("F002", "T2"): (1, 3, "3", 3)}, header="named")
    idx = read_dataset("bp4d+", tmp_path, aus=list(BP4DP_CODED), tasks=["T2"], progress=False)
    assert idx.aus == BP4DP_CODED and idx.videos[0].labels.shape == (3, 34)
    np.testing.assert_array_equal(idx.videos[0].labels, _expected(written["F002/T2"][1], BP4DP_CODED))
    assert idx.videos[0].labels[1, 3] == -1  # the 9 written for the 4th coded AU (AU5)


def test_offset_probing_and_forcing(tmp_path):
    # a renumbered copy whose images match the CSV numbers and whose segment reaches the last image:
    # offset −1 would miss nothing at the start but offset 0 is the only one covering every frame
    make_bp4d_plus(tmp_path, {("F003", "T7"): (0, 5, "4", 5)}, raw=False)
    v = read_dataset("bp4d+", tmp_path, progress=False).videos[0]
    assert v.meta["image_offset"] == 0
    assert [int(Path(p).stem) for p in v.source.paths] == [0, 1, 2, 3, 4]
    with pytest.raises(DataError, match="1 of 5 coded frames"):
        read_dataset("bp4d+", tmp_path, image_offset=-1, progress=False)


def test_short_row_header_is_an_error(tmp_path):
    make_bp4d_plus(tmp_path, {("F001", "T1"): (1, 2, "3", 3)})
    csv = tmp_path / "RawData/AUCoding/AU_OCC/F001_T1.csv"
    csv.write_text("1,1,2,4\n1,0,0,0\n")
    with pytest.raises(DataError, match="F001_T1.csv: has 4 columns; expected the frame column and 34 AU columns"):
        read_dataset("bp4d+", tmp_path)
