"""Suite-wide test settings."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models and a shared 2-core machine: one torch thread per test process avoids oversubscription
    (measured: MTCNN ~6x and training steps up to 20x slower with 2 threads under parallel load)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
