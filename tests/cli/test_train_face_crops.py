"""Training on full camera frames (a generic manifest of people's own videos) uses aligned face crops made as
`auspread predict` makes them: prepared once by training itself (resumable, cached), found automatically, or refused
in one line naming `auspread prepare`. Frames without a face stay in the videos, unlabelled, and are counted."""

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faces"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "predict"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "readers"))

from cli_runner import run_cli  # noqa: E402
from faces_fakes import BG_HW, composite, synth_faces, synth_tree, write_video  # noqa: E402
from _reader_trees import make_bp4d, make_disfa, write_avi  # noqa: E402

from auspread.data.index import ImageFiles  # noqa: E402
from auspread.engine.config import DataConfig  # noqa: E402
from auspread.engine.data import open_store, read_index  # noqa: E402
from auspread.errors import DataError  # noqa: E402

PRESENT = {"anna": [False, True, True, False, True], "bob": [True, True, True]}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """Two camera recordings (320x180, the face a small part of the frame), every frame labelled."""
    d = tmp_path_factory.mktemp("own_videos")
    frames, _ = synth_faces(synth_tree(d / "synth", frames=8))
    lines = ["source,subject,task,frame,AU01,AU12"]
    for name, present in PRESENT.items():
        write_video(d / f"{name}.mp4", composite(frames, present))
        lines += [f"{name}.mp4,{name},,{t},{t % 2},1" for t in range(len(present))]
    (d / "manifest.csv").write_text("\n".join(lines) + "\n")
    return d / "manifest.csv"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUSPREAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return tmp_path / "cache"


def _by_subject(index):
    return {v.subject: v for v in index.videos}


def test_training_prepares_face_crops_once_and_unlabels_no_face_frames(manifest, cache, monkeypatch, capsys):
    dc = DataConfig(dataset="generic", root=manifest, cache_dir=cache / "frames")
    index = read_index(dc, progress=True)
    err = capsys.readouterr().err
    assert "full camera frames" in err and "2 of 8 frames have no face" in err
    assert index.face_crops and index.frames_without_face == 2
    out = cache / "prepared"
    for v in index.videos:  # the aligned 256 px crops of auspread prepare, not the 320x180 frames
        assert isinstance(v.source, ImageFiles) and all(Path(p).is_relative_to(out) for p in v.source.paths)
        assert Image.open(v.source.paths[0]).size == (256, 256)
    anna = _by_subject(index)["anna"]
    assert anna.meta["no_face_frames"] == [0, 3]
    assert anna.labels.tolist() == [[-1, -1], [1, 1], [0, 1], [-1, -1], [0, 1]]  # no face: unknown, not dropped
    assert len(anna) == 5 and (_by_subject(index)["bob"].labels >= 0).all()
    # the frame store is built from the crops, not from the 320x180 camera frames
    store = open_store(index, dc, progress=False)
    assert [store.source_size(i) for i in range(len(store))] == [(256, 256)] * 2 != [BG_HW[::-1]] * 2
    # found again without detecting anything
    import auspread.faces.prepare as fp

    monkeypatch.setattr(fp, "FaceDetector", lambda *a, **k: pytest.fail("faces detected again"))
    again = read_index(dc.model_copy(update={"prepare": "never"}), progress=False)
    assert [v.source for v in again.videos] == [v.source for v in index.videos]


def test_crops_are_the_ones_predict_makes(manifest, cache, monkeypatch):
    """Same detector, template, margin and size: the training crop of a frame with a face is predict's crop."""
    import auspread.predict.align as pa
    import auspread.predict.options as po
    import auspread.predict.pipeline as pp
    from predict_fakes import tiny_bundle

    from auspread.faces.prepare import PrepareOptions
    from auspread.media import VideoSource

    assert (po.PredictOptions().align_size, po.PredictOptions().margin) == (PrepareOptions().size,
                                                                            PrepareOptions().margin)
    seen = []
    warp = pa._warp_frames
    monkeypatch.setattr(pa, "_warp_frames", lambda *a: seen.append(warp(*a)) or seen[-1])
    pr = pp.Predictor(tiny_bundle(), po.PredictOptions(batch_size=8, amp="off", detect_every=1, prefetch=False))
    tab = pr.predict(VideoSource(manifest.parent / "anna.mp4"))
    theirs = np.concatenate(seen)
    anna = _by_subject(read_index(DataConfig(dataset="generic", root=manifest), progress=False))["anna"]
    for t in np.flatnonzero(tab.success):
        ours = np.asarray(Image.open(anna.source.paths[t]).convert("RGB"), np.float32)
        assert np.abs(ours - theirs[t]).mean() < 2.0, t  # JPEG q95 apart
    assert tab.success.tolist() == PRESENT["anna"]  # predict's no-face frames are the unlabelled ones


def test_refusal_names_the_prepare_command_that_makes_training_find_the_crops(manifest, cache, capsys):
    dc = DataConfig(dataset="generic", root=manifest, prepare="never")
    with pytest.raises(DataError) as e:
        read_index(dc, progress=False)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "full camera frames" in msg
    command = msg.split("run `", 1)[1].split("`", 1)[0]
    assert command.startswith("auspread prepare ") and "--dataset generic" in command
    assert not (cache / "prepared").exists()  # nothing was prepared
    code, err = run_cli([*shlex.split(command)[1:], "--no-progress"], capsys)
    assert code == 0, err
    assert read_index(dc, progress=False).face_crops  # found automatically


def test_prepare_without_an_output_folder_writes_where_training_looks(manifest, cache, capsys):
    code, err = run_cli(["prepare", manifest, "--dataset", "generic", "--no-progress"], capsys)
    assert code == 0, err
    assert f"output: {cache / 'prepared'}" in err
    index = read_index(DataConfig(dataset="generic", root=manifest, prepare="never"), progress=False)
    assert index.face_crops and index.frames_without_face == 2


def test_train_refuses_under_torchrun_and_with_prepare_never(manifest, cache, tmp_path, capsys, monkeypatch):
    code, err = run_cli(["train", f"out_dir={tmp_path / 'runs'}", "data.dataset=generic", f"data.root={manifest}",
                         "data.prepare=never", "pretrained=null", "threads=1"], capsys)
    assert code == 2 and err.startswith("error: ") and "auspread prepare" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DataError, match="run `auspread prepare .*under torchrun"):
        read_index(DataConfig(dataset="generic", root=manifest), progress=False)


def _refusal(dc) -> str:
    with pytest.raises(DataError) as e:
        read_index(dc, progress=False)
    return str(e.value).split("run `", 1)[1].split("`", 1)[0]


def test_raw_bp4d_and_disfa_trees_are_refused_with_their_own_prepare_command(tmp_path, cache):
    make_bp4d(tmp_path / "BP4D", {("F001", "T1"): (10, 3, "4")})
    cmd = _refusal(DataConfig(dataset="bp4d", root=tmp_path / "BP4D", prepare="never"))
    assert cmd.startswith(f"auspread prepare {tmp_path / 'BP4D'} {cache / 'prepared'}/bp4d-BP4D-")
    assert cmd.endswith("--dataset bp4d")
    make_disfa(tmp_path / "DISFA", {"SN001": 3})
    write_avi(tmp_path / "DISFA" / "Videos_RightCamera" / "RightVideoSN001_comp.avi", 3)
    left = _refusal(DataConfig(dataset="disfa", root=tmp_path / "DISFA", prepare="never"))
    assert left.endswith("--dataset disfa -o camera=left")
    right = _refusal(DataConfig(dataset="disfa", root=tmp_path / "DISFA", prepare="never", camera="right"))
    assert right.split()[3] != left.split()[3]  # each camera has its own crops
    # the threshold changes labels only: the same crops serve
    assert _refusal(DataConfig(dataset="disfa", root=tmp_path / "DISFA", prepare="never", disfa_threshold=1)) == left
