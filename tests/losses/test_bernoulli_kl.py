"""KS Eq. 1-2: per-AU Bernoulli KL, averaged over AUs and the batch (the Eq. 3 BCE's reduction), scaled by τ², target detached."""

import math

import pytest
import torch

from auspread.losses.bernoulli_kl import bernoulli_kl, bernoulli_kl_from_logits


def _kl(p: float, q: float) -> float:
    """Hand formula for one Bernoulli pair (0 log 0 = 0)."""
    a = 0.0 if p == 0 else p * math.log(p / q)
    b = 0.0 if p == 1 else (1 - p) * math.log((1 - p) / (1 - q))
    return a + b


def test_against_hand_computed_values():
    target = torch.tensor([[0.2, 0.9], [1.0, 0.5]])
    logits = torch.tensor([[0.0, math.log(9.0)], [0.0, 0.0]])  # σ = [0.5, 0.9], [0.5, 0.5]
    expected = ((_kl(0.2, 0.5) + _kl(0.9, 0.9)) + (_kl(1.0, 0.5) + _kl(0.5, 0.5))) / 4  # 2 clips x 2 AUs
    assert expected == pytest.approx((0.2 * math.log(0.4) + 0.8 * math.log(1.6) + math.log(2)) / 4)
    assert float(bernoulli_kl(target, logits)) == pytest.approx(expected, rel=1e-6)


def test_temperature_softens_the_student_and_scales_by_tau_squared():
    target = torch.tensor([[0.9]])
    logits = torch.tensor([[2 * math.log(3.0)]])  # σ(z / 2) = 0.75
    expected = 4.0 * (0.9 * math.log(0.9 / 0.75) + 0.1 * math.log(0.1 / 0.25))
    assert float(bernoulli_kl(target, logits, temperature=2.0)) == pytest.approx(expected, rel=1e-6)


def test_zero_when_equal_and_positive_otherwise():
    z = torch.randn(4, 12)
    assert float(bernoulli_kl(torch.sigmoid(z), z)) == pytest.approx(0.0, abs=1e-6)
    assert float(bernoulli_kl(torch.sigmoid(z + 1), z)) > 0


def test_from_logits_softens_the_teacher():
    t = torch.tensor([[math.log(4.0)]])  # σ = 0.8
    s = torch.tensor([[0.0]])
    assert float(bernoulli_kl_from_logits(t, s)) == pytest.approx(_kl(0.8, 0.5), rel=1e-6)


def test_target_is_detached_and_student_gets_gradient():
    teacher = torch.randn(3, 5, requires_grad=True)
    student = torch.randn(3, 5, requires_grad=True)
    bernoulli_kl_from_logits(teacher, student).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_shape_mismatch_and_bad_temperature_raise():
    with pytest.raises(ValueError):
        bernoulli_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        bernoulli_kl(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0)


def test_mean_over_aus_does_not_grow_with_the_number_of_aus():
    """The same per-AU disagreement costs the same whether there are 1 or 12 AUs (a sum would grow 12x)."""
    one = bernoulli_kl(torch.tensor([[0.8]]), torch.tensor([[0.0]]))
    twelve = bernoulli_kl(torch.full((1, 12), 0.8), torch.zeros(1, 12))
    assert float(twelve) == pytest.approx(float(one), rel=1e-6)
    assert float(one) == pytest.approx(_kl(0.8, 0.5), rel=1e-6)


def test_eq4_lambda_is_the_per_au_gradient_ratio_of_distillation_to_labels():
    """Eq. 4 weighs a network's distillation term by λ against its supervised BCE. With the two reductions equal
    (mean over AUs and samples), the gradient on every logit of λ·KL(p ‖ σ(z)) is exactly λ times that of BCE(z, y)
    when the soft target equals the label (unit class weights, τ = 1), whatever B and U are."""
    from auspread.losses.weighted_bce import weighted_bce_with_logits

    lam = 0.5
    g = torch.Generator().manual_seed(3)
    for b, u in ((4, 12), (3, 8), (1, 1)):
        y = (torch.rand(b, u, generator=g) < 0.4).float()
        target = y.clone()  # soft target = the label, e.g. a confident teacher that is right
        z1 = torch.randn(b, u, generator=g).requires_grad_()
        z2 = z1.detach().clone().requires_grad_()
        (lam * bernoulli_kl(target, z1)).backward()
        weighted_bce_with_logits(z2, y, torch.ones(u)).backward()
        torch.testing.assert_close(z1.grad, lam * z2.grad, rtol=1e-5, atol=1e-8)
