import pytest

from faces_fakes import synth_faces, synth_tree


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    return synth_tree(tmp_path_factory.mktemp("synth") / "tree")


@pytest.fixture(scope="session")
def faces(synth_root):
    return synth_faces(synth_root)


@pytest.fixture(autouse=True)
def _one_thread():
    """MTCNN on a shared 2-core machine is several times faster with one intra-op thread (no spin contention)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
