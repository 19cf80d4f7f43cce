import math

import pytest
import torch

from auspread.losses.instance_contrastive import nt_xent


def _tcl_reference(a, b, tau):
    """The authors' formula: full sum of exp(cos/τ) minus the self term e^{1/τ}."""
    s = torch.cat([a, b])
    s = s / s.norm(dim=1, keepdim=True)
    e = torch.exp(s @ s.t() / tau)
    n = a.shape[0]
    pos = torch.cat([torch.diagonal(e, n), torch.diagonal(e, -n)])
    return torch.mean(-torch.log(pos / (e.sum(1) - math.exp(1 / tau))))


def test_one_pair_has_zero_loss():
    a = torch.tensor([[0.3, 0.9]])
    assert nt_xent(a, torch.tensor([[0.8, 0.1]]), 0.5).item() == pytest.approx(0.0, abs=1e-7)


def test_two_orthogonal_pairs_hand_computed():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # every anchor: positive cos 1, two negatives cos 0 -> -log(e / (e + 2)) at tau = 1
    assert nt_xent(a, a.clone(), 1.0).item() == pytest.approx(math.log(1 + 2 / math.e), rel=1e-6)


def test_matches_authors_formula_on_probability_vectors():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(5, 4, generator=g), torch.rand(5, 4, generator=g)
    assert nt_xent(a, b, 0.5).item() == pytest.approx(_tcl_reference(a, b, 0.5).item(), rel=1e-5)


def test_empty_batch_is_zero():
    assert nt_xent(torch.zeros(0, 3), torch.zeros(0, 3)).item() == 0.0
