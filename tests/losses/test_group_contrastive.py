import torch

from auspread.losses.group_contrastive import group_contrastive, group_keys
from auspread.losses.instance_contrastive import nt_xent


def test_groups_are_au_patterns():
    p = torch.tensor([[0.9, 0.1], [0.8, 0.4], [0.1, 0.9], [0.6, 0.7]])
    assert group_keys(p) == [(1, 0), (1, 0), (0, 1), (1, 1)]


def test_group_means_matched_by_pattern():
    fast = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.7, 0.8]])  # groups (1,0)x2, (0,1), (1,1)
    slow = torch.tensor([[0.3, 0.6], [0.7, 0.2], [0.6, 0.1]])  # groups (0,1), (1,0)x2; no (1,1)
    expected = nt_xent(torch.tensor([[0.85, 0.15], [0.1, 0.9]]), torch.tensor([[0.65, 0.15], [0.3, 0.6]]), 0.5)
    assert torch.allclose(group_contrastive(fast, slow, 0.5), expected)


def test_no_shared_group_gives_zero_and_gradient_only_reaches_slow():
    fast = torch.tensor([[0.9, 0.9]])
    slow = torch.tensor([[0.1, 0.1]], requires_grad=True)
    assert group_contrastive(fast, slow).item() == 0.0
    fast = torch.tensor([[0.9, 0.1], [0.1, 0.9]], requires_grad=True)
    slow = torch.tensor([[0.8, 0.3], [0.2, 0.7]], requires_grad=True)
    group_contrastive(fast.detach(), slow).backward()
    assert fast.grad is None and slow.grad.abs().sum() > 0


def test_embeddings_grouped_by_the_au_patterns_of_given_probabilities():
    fast_e = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    slow_e = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    fast_p = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])  # groups (1,0): rows 0,1; (0,1): row 2
    slow_p = torch.tensor([[0.1, 0.7], [0.6, 0.4]])  # (0,1): row 0; (1,0): row 1
    got = group_contrastive(fast_e, slow_e, 0.5, fast_p, slow_p)
    expected = nt_xent(torch.tensor([[0.5, 1.0, 0.0], [0.0, 0.0, 3.0]]), torch.tensor([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]]), 0.5)
    assert torch.allclose(got, expected)
