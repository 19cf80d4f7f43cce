import pytest

from faces_fakes import synth_faces, synth_tree


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    return synth_tree(tmp_path_factory.mktemp("synth") / "tree")


@pytest.fixture(scope="session")
def faces(synth_root):
    return synth_faces(synth_root)


