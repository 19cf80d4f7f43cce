import numpy as np
import pytest
from _reader_trees import write_image

from auspread.data.index import ImageFiles, VideoIndex, VideoRecord, index_to_json
from auspread.data.readers import probe_dataset, read_dataset, reader_name
from auspread.errors import ConfigError, DataError


def test_reader_names():
    assert [reader_name(n) for n in ("BP4D", "bp4d_plus", "BP4D+", "DISFA", "list", "auto")] == \
        ["bp4d", "bp4d+", "bp4d+", "disfa", "lists", "auto"]
    with pytest.raises(ConfigError, match="unknown dataset 'ck'"):
        reader_name("ck")


def test_prepared_output_is_probed_and_read(tmp_path):
    labels = np.array([[1, 0], [-1, 1]], np.int8)
    for f in (3, 4):
        write_image(tmp_path / "img" / "SN001" / f"{f}.jpg", f)
    rec = VideoRecord("SN001", "SN001", "", np.array([3, 4]), labels, ImageFiles(("img/SN001/3.jpg", "img/SN001/4.jpg")))
    (tmp_path / "auspread_index.json").write_text(index_to_json(VideoIndex("DISFA", (1, 2), [rec], 20.0)))
    assert probe_dataset(tmp_path) == "prepared"
    idx = read_dataset("auto", tmp_path)
    v = idx.videos[0]
    assert idx.dataset == "DISFA" and v.labels.tolist() == labels.tolist()
    assert v.source.paths == (str(tmp_path / "img/SN001/3.jpg"), str(tmp_path / "img/SN001/4.jpg"))
    with pytest.raises(ConfigError, match="takes no options"):
        read_dataset("prepared", tmp_path, camera="left")


def test_probe_rejects_plain_files(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a .csv/.json manifest"):
        probe_dataset(tmp_path / "x.txt")
