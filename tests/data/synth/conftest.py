import pytest

from auspread.data.synth import generate


@pytest.fixture(scope="session")
def tiny_bp4d(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "bp4d", "tiny", "bp4d", seed=3, progress=False, workers=1)


@pytest.fixture(scope="session")
def tiny_disfa(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("synth") / "disfa", "tiny", "disfa", seed=3, progress=False, workers=1)
