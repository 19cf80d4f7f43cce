import numpy as np
import pandas as pd
import pytest

from auspread.errors import ConfigError
from auspread.predict.options import PredictionTable
from auspread.predict.writers import columns, to_frame, write_table


def _table(all_faces=False):
    ok = np.array([True, False, True])
    return PredictionTable(
        frame=np.array([0, 1, 2]), timestamp=np.array([0.0, 0.04, 0.08]), face_id=np.array([0, -1, 1]),
        success=ok, confidence=np.array([0.99, np.nan, 0.97]),
        box=np.array([[10, 20, 30, 40], [np.nan] * 4, [11, 21, 31, 41]], float),
        probs=np.array([[0.9, 0.1], [np.nan, np.nan], [0.5, 0.49999]]), aus=(1, 12), num_frames=3, fps=25.0,
        held=np.zeros(3, bool))


def test_columns_are_stable_and_openface_named():
    assert columns((1, 12)) == ["frame", "timestamp", "success", "confidence", "face_x", "face_y", "face_w",
                                "face_h", "AU01_c", "AU12_c", "AU01_p", "AU12_p"]
    assert columns((1,), all_faces=True)[:2] == ["frame", "face_id"]


def test_csv_rows_one_based_frames_and_empty_cells(tmp_path):
    df = to_frame(_table(), threshold=0.5)
    p = write_table(df, tmp_path / "o.csv")
    lines = p.read_text().splitlines()
    assert lines[0] == ",".join(columns((1, 12)))
    assert lines[1] == "1,0.0,1,0.99,10.0,20.0,30.0,40.0,1,0,0.9,0.1"
    assert lines[2] == "2,0.04,0,,,,,,,,,"  # no face: everything after success is empty
    assert lines[3].split(",")[8:10] == ["1", "0"]  # 0.5 >= 0.5 → 1; 0.49999 → 0
    back = pd.read_csv(p)
    assert back["frame"].tolist() == [1, 2, 3] and back["success"].tolist() == [1, 0, 1]
    assert np.isnan(back.loc[1, "AU01_p"])
    assert not list(tmp_path.glob("*.tmp"))
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_one_threshold_per_au():
    df = to_frame(_table(), threshold=[0.95, 0.05])
    assert df["AU01_c"].tolist()[::2] == [0, 0] and df["AU12_c"].tolist()[::2] == [1, 1]
    with pytest.raises(ValueError, match="3 thresholds for 2 AUs"):
        to_frame(_table(), threshold=[0.5, 0.5, 0.5])


def test_all_faces_face_id_column(tmp_path):
    df = to_frame(_table(), all_faces=True)
    assert df["face_id"].tolist()[0] == 0 and pd.isna(df["face_id"][1]) and df["face_id"][2] == 1


def test_parquet(tmp_path):
    df = to_frame(_table())
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pyarrow"):
            write_table(df, tmp_path / "o.parquet", "parquet")
        return
    back = pd.read_parquet(write_table(df, tmp_path / "o.parquet", "parquet"))
    assert list(back.columns) == list(df.columns) and len(back) == 3


def test_timeline_png(tmp_path):
    from auspread.predict.plots import plot_timeline

    p = plot_timeline(to_frame(_table(), all_faces=True), tmp_path / "t.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


def test_overlay_video_has_every_frame(tmp_path):
    import av

    from auspread.predict.overlay import write_overlay

    from PIL import Image

    from auspread.predict.inputs import ImageSequence

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):  # odd frame sizes (an encoder needs even ones: the overlay crops one pixel)
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(rng.integers(0, 255, (47, 63, 3), dtype=np.uint8)).save(paths[-1])
    p = write_overlay(ImageSequence(paths, "seq", fps=25), to_frame(_table()), tmp_path / "ov.mp4")
    with av.open(str(p)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (46, 62, 3)
