import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faces"))

from faces_fakes import synth_faces, synth_tree  # noqa: E402


@pytest.fixture(scope="session")
def faces(tmp_path_factory):
    return synth_faces(synth_tree(tmp_path_factory.mktemp("synth_p") / "tree"))


