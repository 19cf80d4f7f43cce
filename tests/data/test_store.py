"""Frame store: round trip, cache keys and reuse, resumable build, video decoding checks."""

import os

import av
import numpy as np
import pytest
from PIL import Image

import auspread.data.store as store_mod
from auspread.data.index import ImageFiles, VideoFile, VideoIndex, VideoRecord
from auspread.data.store import FrameStore, source_key
from auspread.errors import DataError


def write_pngs(folder, count, size=16, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths, arrays = [], []
    for i in range(count):
        a = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        p = folder / f"{i:04d}.png"
        Image.fromarray(a).save(p)
        paths.append(str(p))
        arrays.append(a)
    return paths, arrays


def write_video(path, count, size=24, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8) for _ in range(count)]
    with av.open(str(path), "w") as c:
        s = c.add_stream("png", rate=25)
        s.width = s.height = size
        s.pix_fmt = "rgb24"
        for a in arrays:
            for pkt in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return arrays


def rec(vid, source, t):
    return VideoRecord(vid, vid, "", np.arange(t), np.zeros((t, 2), np.int8), source)


def resized(a, s):
    return np.asarray(Image.fromarray(a).resize((s, s), Image.Resampling.BILINEAR))


@pytest.fixture
def image_index(tmp_path):
    p1, a1 = write_pngs(tmp_path / "v1", 4, seed=1)
    p2, a2 = write_pngs(tmp_path / "v2", 3, seed=2)
    idx = VideoIndex("t", (1, 2), [rec("v1", ImageFiles(tuple(p1)), 4), rec("v2", ImageFiles(tuple(p2)), 3)], 25.0)
    return idx, [a1, a2]


def count_builds(monkeypatch):
    calls = []
    real = store_mod.build_video

    def counting(source, size, target):
        calls.append(target)
        return real(source, size, target)

    monkeypatch.setattr(store_mod, "build_video", counting)
    return calls


def test_image_round_trip_and_reads(tmp_path, image_index):
    idx, arrays = image_index
    st = FrameStore.open(idx, 12, cache_dir=tmp_path / "cache", progress=False)
    assert len(st) == 2 and st.num_frames(0) == 4 and st.num_frames(1) == 3
    got = st.frames(1, [2, 0])
    assert got.shape == (2, 12, 12, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[0], resized(arrays[1][2], 12))
    np.testing.assert_array_equal(got[1], resized(arrays[1][0], 12))
    assert st.source_size(0) == (16, 16)
    # same size as source: exact pixels
    st16 = FrameStore.open(idx, 16, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(st16.frames(0, [3])[0], arrays[0][3])


def test_cache_reuse_and_keys(tmp_path, image_index, monkeypatch):
    idx, _ = image_index
    calls = count_builds(monkeypatch)
    FrameStore.open(idx, 12, cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 2
    FrameStore.open(idx, 12, cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 2  # second open decodes nothing
    FrameStore.open(idx, 10, cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 4  # another size is another entry
    # a subset index (another fold) reuses the shared video
    sub = VideoIndex("t", idx.aus, idx.videos[1:], 25.0)
    FrameStore.open(sub, 12, cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 4
    # touching a source file changes the key
    k0 = source_key(idx.videos[0].source, 12)
    p = idx.videos[0].source.paths[0]
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert source_key(idx.videos[0].source, 12) != k0


def test_default_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("AUSPREAD_CACHE", str(tmp_path / "env"))
    assert store_mod.default_cache_dir() == tmp_path / "env" / "frames"


def test_killed_build_resumes(tmp_path, image_index, monkeypatch):
    idx, arrays = image_index
    bad = idx.videos[1].source.paths[1]
    real_load = store_mod.load_image

    def dying(path, size):
        if path == bad:
            raise KeyboardInterrupt  # the process is interrupted while decoding video 2
        return real_load(path, size)

    monkeypatch.setattr(store_mod, "load_image", dying)
    with pytest.raises(KeyboardInterrupt):
        FrameStore.open(idx, 12, cache_dir=tmp_path / "c", progress=False)
    left = sorted(q.name for q in (tmp_path / "c").rglob("*") if q.is_file())
    assert sum(n.endswith(".npy") for n in left) == 1 and not any(n.endswith(".partial") for n in left)
    # a partial file left by a process that died hard (SIGKILL) is cleaned up
    key = source_key(idx.videos[1].source, 12)
    stale = tmp_path / "c" / "s12" / key[:2] / f"{key}.999999999.partial"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"junk")
    monkeypatch.setattr(store_mod, "load_image", real_load)
    calls = count_builds(monkeypatch)
    st = FrameStore.open(idx, 12, cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 1  # only the unfinished video is built
    assert not stale.exists()
    np.testing.assert_array_equal(st.frames(1, [1])[0], resized(arrays[1][1], 12))


def test_video_round_trip_and_subset(tmp_path):
    arrays = write_video(tmp_path / "a.mov", 6)
    idx = VideoIndex("t", (1, 2), [rec("a", VideoFile(str(tmp_path / "a.mov"), tuple(range(6))), 6),
                                   rec("b", VideoFile(str(tmp_path / "a.mov"), (1, 3)), 2)], 25.0)
    st = FrameStore.open(idx, 16, cache_dir=tmp_path / "c", progress=False)
    for t in range(6):
        np.testing.assert_array_equal(st.frames(0, [t])[0], resized(arrays[t], 16))
    np.testing.assert_array_equal(st.frames(1, [0, 1]), st.frames(0, [1, 3]))
    assert st.source_size(0) == (24, 24)


def test_video_frame_count_mismatch(tmp_path):
    write_video(tmp_path / "a.mov", 5)
    for indices in (tuple(range(6)), tuple(range(4)), (2, 7)):
        idx = VideoIndex("t", (1, 2), [rec("a", VideoFile(str(tmp_path / "a.mov"), indices), len(indices))], 25.0)
        with pytest.raises(DataError, match="a.mov"):
            FrameStore.open(idx, 8, cache_dir=tmp_path / "c", progress=False)
    assert not list((tmp_path / "c").rglob("*.npy"))


def test_unreadable_image(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"not a png")
    idx = VideoIndex("t", (1, 2), [rec("x", ImageFiles((str(p),)), 1)], 25.0)
    with pytest.raises(DataError, match="x.png"):
        FrameStore.open(idx, 8, cache_dir=tmp_path / "c", progress=False)
    missing = VideoIndex("t", (1, 2), [rec("y", ImageFiles((str(tmp_path / "nope.png"),)), 1)], 25.0)
    with pytest.raises(DataError, match="nope.png"):
        FrameStore.open(missing, 8, cache_dir=tmp_path / "c", progress=False)


def test_parallel_build_and_fork_reads(tmp_path, image_index):
    idx, arrays = image_index
    st = FrameStore.open(idx, 12, cache_dir=tmp_path / "c", progress=False, workers=2)
    np.testing.assert_array_equal(st.frames(0, [1])[0], resized(arrays[0][1], 12))
    import pickle

    st2 = pickle.loads(pickle.dumps(st))
    np.testing.assert_array_equal(st2.frames(1, [0, 2]), st.frames(1, [0, 2]))
    # in a forked child the memmaps are reopened, not shared
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = np.array_equal(st.frames(0, [1])[0], resized(arrays[0][1], 12)) and st._pid == os.getpid()
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"


def test_jpeg_draft_path(tmp_path):
    rng = np.random.default_rng(0)
    a = np.kron(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8))
    p = tmp_path / "big.jpg"
    Image.fromarray(a).save(p, quality=95)
    out, orig = store_mod.load_image(str(p), 32)
    assert orig == (128, 128) and out.shape == (32, 32, 3)
    ref = resized(np.asarray(Image.open(p).convert("RGB")), 32)
    err = np.abs(out.astype(int) - ref.astype(int)).mean()
    assert err < 3, err  # DCT downscale to ≥ 2·S, then bilinear ≈ full decode + resize


def test_open_maps_are_bounded(tmp_path, monkeypatch):
    vids = []
    for i in range(5):
        p, _ = write_pngs(tmp_path / f"m{i}", 1, seed=i)
        vids.append(rec(f"m{i}", ImageFiles(tuple(p)), 1))
    idx = VideoIndex("t", (1, 2), vids, 25.0)
    st = FrameStore.open(idx, 8, cache_dir=tmp_path / "c", progress=False)
    monkeypatch.setattr(FrameStore, "max_open", 2)
    first = st.frames(0, [0])
    for i in range(5):
        st.frames(i, [0])
    assert len(st._maps) == 2 and list(st._maps) == [3, 4]
    np.testing.assert_array_equal(st.frames(0, [0]), first)  # reopened on demand


def test_parallel_build_error_names_the_file(tmp_path, image_index):
    idx, _ = image_index
    bad = tmp_path / "v2" / "0001.png"
    bad.write_bytes(b"broken")
    with pytest.raises(DataError, match="0001.png") as e:
        FrameStore.open(idx, 12, cache_dir=tmp_path / "c", progress=False, workers=2)
    assert e.value.path == str(bad)
