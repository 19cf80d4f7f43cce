"""The synthetic benchmark's BP4D- and DISFA-format trees load through the real readers with their exact labels."""

import numpy as np
import pytest

synth = pytest.importorskip("auspread.data.synth", reason="the synthetic generator (issue 2) is not written yet")

from auspread.aus import dataset_aus  # noqa: E402
from auspread.data.readers import probe_dataset, read_dataset  # noqa: E402

SMALL = {"subjects": 3, "tasks": 2, "frames": 16, "size": 32}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return {fmt: synth.generate(root / fmt, preset="tiny", fmt=fmt, seed=3, progress=False, **SMALL)
            for fmt in ("bp4d", "disfa")}


def _gt(root, video_id):
    with np.load(root / "ground_truth" / f"{video_id.replace('/', '_')}.npz") as z:
        return {k: z[k] for k in z.files}


def test_bp4d_format_exact_labels(trees):
    root = trees["bp4d"]
    assert probe_dataset(root) == "bp4d"
    idx = read_dataset("auto", root, progress=False)
    assert idx.dataset == "BP4D" and len(idx.subjects()) == 3 and len(idx) == 6
    for v in idx:
        gt = _gt(root, v.video_id)
        coded = gt["coded"].astype(bool)
        np.testing.assert_array_equal(v.frame_numbers, gt["frame_numbers"][coded])  # coded frames only
        codes = gt["written_codes"][:, [a - 1 for a in idx.aus]]
        np.testing.assert_array_equal(v.labels, np.where(codes == 9, -1, codes))
        # no label noise: every known label is the exact occurrence
        col = [list(gt["aus"]).index(a) for a in idx.aus]
        occ = gt["occurrence"][coded][:, col]
        known = v.labels >= 0
        np.testing.assert_array_equal(v.labels[known], occ[known])
        assert v.landmarks is not None and v.landmarks.shape == (len(v), 68, 2) and not np.isnan(v.landmarks).any()


def test_disfa_format_exact_labels(trees):
    root = trees["disfa"]
    assert probe_dataset(root) == "disfa"
    idx = read_dataset("auto", root, progress=False)  # includes the video/label frame-count check
    assert idx.dataset == "DISFA" and len(idx) == 3
    coded = dataset_aus("DISFA").coded_aus
    for v in idx:
        gt = _gt(root, v.video_id)
        written = gt["written_intensity"][:, [coded.index(a) for a in idx.aus]]
        np.testing.assert_array_equal(v.frame_numbers, gt["frame_numbers"])
        np.testing.assert_array_equal(v.intensities, written.astype(np.float32))
        np.testing.assert_array_equal(v.labels, (written >= 2).astype(np.int8))
        assert len(v.source) == len(gt["frame_numbers"])
        assert v.landmarks is not None and not np.isnan(v.landmarks).any()
