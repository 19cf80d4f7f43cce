import numpy as np
import pytest

from labelling_fakes import FakeDetector, face_video, synth_faces, synth_tree


@pytest.fixture(scope="session")
def faces(tmp_path_factory):
    return synth_faces(synth_tree(tmp_path_factory.mktemp("synth_l") / "tree", frames=30))[0]


@pytest.fixture(scope="session")
def clips(tmp_path_factory, faces):
    """Two videos at 25 fps: ``long`` 150 frames (face missing in frames 50-74), ``short`` 75 frames."""
    d = tmp_path_factory.mktemp("clips")
    long_present = np.ones(150, bool)
    long_present[50:75] = False
    face_video(d / "long.mp4", faces, long_present)
    face_video(d / "short.mp4", faces[::-1], np.ones(75, bool))
    return {"dir": d, "long": d / "long.mp4", "short": d / "short.mp4", "long_present": long_present}


@pytest.fixture
def detector():
    return FakeDetector()
