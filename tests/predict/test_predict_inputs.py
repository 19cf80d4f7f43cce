import numpy as np
import pytest
from PIL import Image

from faces_fakes import write_video

from auspread.errors import DataError
from auspread.predict.inputs import ImageSequence, VideoSource, expand_inputs


def _frames(t=6, h=32, w=48):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_expand_folder_glob_and_files(tmp_path):
    write_video(tmp_path / "b.mp4", _frames())
    write_video(tmp_path / "a.mp4", _frames())
    for n in (10, 2, 1):
        Image.fromarray(_frames(1)[0]).save(tmp_path / f"{n}.png")
    (tmp_path / "notes.txt").write_text("x")
    src = expand_inputs([str(tmp_path)])
    assert [s.kind for s in src] == ["video", "video", "images"]
    assert [s.name for s in src[:2]] == ["a", "b"]
    assert [p.rsplit("/", 1)[1] for p in src[2].paths] == ["1.png", "2.png", "10.png"]  # natural order
    g = expand_inputs([str(tmp_path / "*.mp4")])
    assert [s.name for s in g] == ["a", "b"]
    single = expand_inputs([str(tmp_path / "2.png"), str(tmp_path / "a.mp4"), str(tmp_path / "a.mp4")])
    assert isinstance(single[0], ImageSequence) and single[0].num_frames_hint() == 1
    assert [s.name for s in single] == ["2", "a", "a_2"]  # unique output names


@pytest.mark.parametrize("make,match", [
    (lambda d: d.mkdir(), "contains no video or image"),
    (lambda d: None, "no such file or folder"),
])
def test_bad_paths(tmp_path, make, match):
    p = tmp_path / "x"
    make(p)
    with pytest.raises(DataError, match=match):
        expand_inputs([str(p)])
    with pytest.raises(DataError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.mov")])


def test_zero_byte_and_text_named_mp4(tmp_path):
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    with pytest.raises(DataError, match="zero.mp4: empty file"):
        VideoSource(tmp_path / "zero.mp4").probe()
    with pytest.raises(DataError, match="text.mp4: not a readable video"):
        list(VideoSource(tmp_path / "text.mp4").frames())


def test_video_frames_timestamps_and_lazy_close(tmp_path):
    f = _frames(8)
    write_video(tmp_path / "v.mp4", f, fps=25)
    src = VideoSource(tmp_path / "v.mp4")
    got = list(src.frames())
    assert [g.index for g in got] == list(range(8))
    np.testing.assert_allclose([g.timestamp for g in got], np.arange(8) / 25, atol=1e-6)
    assert src.fps == pytest.approx(25) and src.num_frames_hint() == 8
    assert got[0].image.shape == (32, 48, 3) and got[0].image.dtype == np.uint8
    it = src.frames()
    next(it)
    it.close()  # stopping early is fine (the container is closed, nothing raised)


def test_truncated_video_yields_decoded_frames_then_error(tmp_path):
    write_video(tmp_path / "v.mp4", _frames(40, 48, 64), faststart=True)
    data = (tmp_path / "v.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(DataError, match="cut.mp4: (truncated|decoding failed)"):
        for fr in VideoSource(tmp_path / "cut.mp4").frames():
            got.append(fr.index)
    assert 5 < len(got) < 40 and got == list(range(len(got)))
