"""Both layouts parse back (pandas / plain parsing) to exactly the generated labels."""

import json

import av
import numpy as np
import pandas as pd
from PIL import Image

from auspread.aus import dataset_aus
from auspread.data.synth import GENERATED_AUS
from auspread.data.synth.writers import BP4D_INT_AUS, DISFA_AUS

BP4D12 = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]


def _gt(root, vid):
    return np.load(root / "ground_truth" / f"{vid.replace('/', '_')}.npz")


def test_bp4d_tree_parses_back(tiny_bp4d):
    root = tiny_bp4d
    m = json.loads((root / "manifest.json").read_text())
    assert m["format"] == "bp4d" and m["seed"] == 3 and m["parameters"]["preset"] == "tiny"
    assert len(m["videos"]) == 12  # 6 subjects x 2 tasks
    coded = set(dataset_aus("BP4D").coded_aus)
    saw_nine_in_coded_column = False
    for v in m["videos"]:
        gt = _gt(root, v["video_id"])
        fn_all = gt["frame_numbers"]
        assert fn_all[0] == v["first_frame"] and len(fn_all) == v["n_frames"]
        df = pd.read_csv(root / "AUCoding" / "AU_OCC" / f"{v['subject']}_{v['task']}.csv", header=0)
        assert list(df.columns) == [str(i) for i in range(100)]
        seg = slice(v["coded_lo"], v["coded_hi"])
        np.testing.assert_array_equal(df["0"].to_numpy(), fn_all[seg])
        codes = df.iloc[:, 1:].to_numpy()
        np.testing.assert_array_equal(codes, gt["written_codes"])
        assert set(np.unique(codes)) <= {0, 1, 9}
        for au in range(1, 100):
            if au not in coded:
                assert (codes[:, au - 1] == 9).all(), f"AU{au} should be all 9"
        # without label noise, every coded cell equals the exact occurrence (intensity >= 1)
        occ = gt["occurrence"][seg]
        for au in BP4D12:
            c = codes[:, au - 1]
            known = c != 9
            saw_nine_in_coded_column |= not known.all()
            np.testing.assert_array_equal(c[known], occ[known, GENERATED_AUS.index(au)])
            np.testing.assert_array_equal(occ[:, GENERATED_AUS.index(au)],
                                          (np.floor(gt["intensity"][seg, GENERATED_AUS.index(au)] + 1e-6) >= 1))
        # frames: all on-disk frames exist with the subject's zero padding, including uncoded margins
        pad = 3 if v["subject"][0] == "M" and 9 <= int(v["subject"][1:]) <= 18 else 4
        d = root / "Sequences(2D+3D)" / v["subject"] / v["task"]
        names = sorted(p.name for p in d.iterdir())
        assert names == sorted(f"{str(int(f)).zfill(pad)}.jpg" for f in fn_all)
        with Image.open(d / names[0]) as im:
            assert im.size == (64, 64) and im.format == "JPEG"
        # AU_INT: frame,intensity without header, coded segment only
        for j, au in enumerate(BP4D_INT_AUS):
            p = root / "AUCoding" / "AU_INT" / f"AU{au:02d}" / f"{v['subject']}_{v['task']}_AU{au:02d}.csv"
            a = pd.read_csv(p, header=None).to_numpy()
            np.testing.assert_array_equal(a[:, 0], fn_all[seg])
            np.testing.assert_array_equal(a[:, 1], gt["written_intensity"][:, j])
        # landmarks
        lm = np.load(root / "Landmarks_68" / f"{v['subject']}_{v['task']}.npz")
        np.testing.assert_array_equal(lm["frame_numbers"], fn_all)
        assert lm["points"].shape == (len(fn_all), 68, 2) and lm["points"].dtype == np.float32
        assert (lm["points"] > 0).all() and (lm["points"] < 64).all()
    assert saw_nine_in_coded_column or m["parameters"]["unknown_rate"] == 0
    # both zero-padding conventions are exercised by the tiny subjects (M011: 3 digits, F001: 4 digits)
    assert {v["image_name_digits"] for v in m["videos"]} == {3, 4}
    assert any(v["coded_lo"] > 0 or v["coded_hi"] < v["n_frames"] for v in m["videos"])


def test_disfa_tree_parses_back(tiny_disfa):
    root = tiny_disfa
    m = json.loads((root / "manifest.json").read_text())
    assert m["format"] == "disfa" and m["fps"] == 20.0
    assert [v["subject"] for v in m["videos"]] == ["SN002", "SN013", "SN003", "SN010", "SN018", "SN029"]
    for v in m["videos"]:
        sn = v["subject"]
        gt = _gt(root, sn)
        T = v["n_frames"]
        for j, au in enumerate(DISFA_AUS):
            lines = (root / "ActionUnit_Labels" / sn / f"{sn}_au{au}.txt").read_text().splitlines()
            pairs = np.array([[int(x) for x in ln.split(",")] for ln in lines])
            np.testing.assert_array_equal(pairs[:, 0], np.arange(1, T + 1))  # 1-based frame numbers
            np.testing.assert_array_equal(pairs[:, 1], gt["written_intensity"][:, j])
            assert pairs[:, 1].min() >= 0 and pairs[:, 1].max() <= 5
            exact = np.floor(gt["intensity"][:, GENERATED_AUS.index(au)] + 1e-6).clip(0, 5)
            np.testing.assert_array_equal(pairs[:, 1], exact)
            np.testing.assert_array_equal(gt["occurrence"][:, GENERATED_AUS.index(au)], exact >= 2)
        with av.open(str(root / "Videos_LeftCamera" / f"LeftVideo{sn}_comp.avi")) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == T and frames[0].shape == (64, 64, 3)
        lm = np.load(root / "Landmarks_68" / f"{sn}.npz")
        np.testing.assert_array_equal(lm["frame_numbers"], np.arange(1, T + 1))
