"""KS §3.1.3 (TPL): shuffling, the order labels of L_self, and the pseudo-label filter rule."""

import math

import pytest
import torch

from auspread.losses.temporal_shuffle import random_non_identity_permutations, shuffle_tokens, temporal_order_loss, tpl_keep


@pytest.mark.parametrize("n", [2, 3, 5])
def test_permutations_are_valid_and_never_identity(n):
    g = torch.Generator().manual_seed(0)
    perms = random_non_identity_permutations(200, n, generator=g)
    assert perms.shape == (200, n)
    assert torch.equal(perms.sort(dim=1).values, torch.arange(n).expand(200, n))
    assert not (perms == torch.arange(n)).all(dim=1).any()
    if n == 2:
        assert (perms == torch.tensor([1, 0])).all()


def test_needs_two_frames():
    with pytest.raises(ValueError):
        random_non_identity_permutations(3, 1)


def test_shuffle_tokens_gathers_frames():
    tokens = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    perms = torch.tensor([[2, 0, 1], [1, 2, 0]])
    out = shuffle_tokens(tokens, perms)
    for i in range(2):
        for j in range(3):
            assert torch.equal(out[i, j], tokens[i, perms[i, j]])


def test_order_loss_labels_original_1_and_shuffled_0():
    # σ(ln 3) = 0.75 for the original (target 1); σ(0) = 0.5 for the shuffled one (target 0)
    orig, shuf = torch.tensor([math.log(3.0)]), torch.tensor([0.0])
    expected = 0.5 * (-math.log(0.75) - math.log(0.5))
    assert float(temporal_order_loss(orig, shuf)) == pytest.approx(expected, rel=1e-6)
    # confident and right -> ~0; confident and wrong -> large
    assert float(temporal_order_loss(torch.tensor([20.0]), torch.tensor([-20.0]))) < 1e-6
    assert float(temporal_order_loss(torch.tensor([-20.0]), torch.tensor([20.0]))) > 19


def test_filter_keeps_clips_judged_original():
    keep = tpl_keep(torch.tensor([-1.0, 0.0, 2.0, -0.01]))
    assert keep.tolist() == [False, True, True, False]
    assert tpl_keep(torch.tensor([1.0]), threshold=0.8).tolist() == [False]  # σ(1) = 0.73
