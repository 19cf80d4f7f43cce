"""Knowledge-Spreader networks (KS §3.1.1, §6.1): shapes for BP4D (12 AUs) and DISFA (8), the split between
cacheable per-frame features and heads, the MLP ablation, and the trainable parameter count (paper: ~25M)."""

import pytest
import torch
from torch import nn

from auspread.models.ks import KSNet, count_trainable, mean_prob_logit

SIZE = 32


def _net(num_aus: int, n: int = 3, **kw) -> KSNet:
    torch.manual_seed(0)
    return KSNet(num_aus, clip_len=n, width=16, heads=4, depth=1, student_hidden=32, **kw)


@pytest.mark.parametrize("num_aus", [12, 8])  # BP4D, DISFA
def test_output_shapes(num_aus):
    net = _net(num_aus).eval()
    frames = torch.randn(2, 3, 3, SIZE, SIZE)
    out = net(frames, torch.tensor([1, 1]))
    assert out.sa_logits.shape == (2, num_aus)
    assert out.student_logits.shape == (2, 3, num_aus)
    assert out.tb_logits.shape == (2, 3, num_aus)
    assert out.student_tokens.shape == (2, 3, 16)
    assert net.order_logit(out.tb_hidden).shape == (2,)
    assert net.features_a(frames[:, 0]).shape == (2, num_aus, 16)  # U AU-specific tokens, no class token
    assert net(frames, None).sa_logits is None


def test_forward_equals_cached_feature_path():
    """forward() and the per-frame features + heads used by dense inference compute the same thing."""
    net = _net(12).eval()
    frames = torch.randn(2, 3, 3, SIZE, SIZE)
    with torch.no_grad():
        out = net(frames, torch.tensor([0, 2]))
        feats = net.features_b(frames.flatten(0, 1)).view(2, 3, -1)
        tokens = torch.stack([net.student(j).token(feats[:, j]) for j in range(3)], 1)
        tb, _ = net.temporal_head(tokens)
        sa = net.spatial_head(net.features_a(torch.stack([frames[0, 0], frames[1, 2]])))
    torch.testing.assert_close(out.tb_logits, tb)
    torch.testing.assert_close(out.sa_logits, sa)
    torch.testing.assert_close(out.student_tokens, tokens)


def test_student_j_sees_frame_j_only():
    net = _net(8).eval()
    frames = torch.randn(1, 3, 3, SIZE, SIZE)
    changed = frames.clone()
    changed[0, 2] = torch.randn(3, SIZE, SIZE)
    with torch.no_grad():
        a, b = net(frames, None), net(changed, None)
    torch.testing.assert_close(a.student_logits[0, :2], b.student_logits[0, :2])
    assert not torch.allclose(a.student_logits[0, 2], b.student_logits[0, 2])
    assert not torch.allclose(a.tb_logits[0, 0], b.tb_logits[0, 0])  # T_b mixes frames


def test_student_dropout_is_noise_in_training_only():
    net = _net(8, student_dropout=0.5)
    feats = torch.randn(4, net.backbone_b.out_channels)
    net.train()
    assert not torch.equal(net.students[0].token(feats), net.students[0].token(feats))
    net.eval()
    assert torch.equal(net.students[0].token(feats), net.students[0].token(feats))


def test_shared_students_are_one_set_of_weights_with_a_dropout_draw_per_position():
    """students="shared" (issue 17): every clip position reads the same weights, so a frame gets the same token at
    any position in eval mode; in training each position draws its own dropout mask; per_position (the paper) has
    n different students."""
    shared, own = _net(8, n=3, students="shared", student_dropout=0.5), _net(8, n=3)
    assert len(shared.students) == 1 and len(own.students) == 3
    feats = torch.randn(2, 1, shared.backbone_b.out_channels).expand(2, 3, -1)  # the same frame at every position
    shared.eval()
    with torch.no_grad():
        tokens, logits = shared.student_outputs(feats)
    torch.testing.assert_close(tokens[:, 0], tokens[:, 2])
    own.eval()
    with torch.no_grad():
        own_tokens, _ = own.student_outputs(feats)
    assert not torch.allclose(own_tokens[:, 0], own_tokens[:, 2])
    shared.train()
    with torch.no_grad():
        noisy, _ = shared.student_outputs(feats)
    assert not torch.equal(noisy[:, 0], noisy[:, 2])
    assert not torch.equal(shared.all_student_tokens(feats[:, 0])[0], shared.all_student_tokens(feats[:, 0])[0])
    shared.eval()  # dense inference computes the shared token once; it equals each position's own forward
    with torch.no_grad():
        dense = shared.all_student_tokens(feats[:, 0])
    assert dense.shape == (3, 2, tokens.shape[-1])
    for j in range(3):
        torch.testing.assert_close(dense[j], tokens[:, j])
    with pytest.raises(ValueError, match="per_position"):
        _net(8, students="one")


def test_mlp_ablation_has_no_attention_and_same_shapes():
    net = _net(12, sil="mlp").eval()
    assert not any(isinstance(m, nn.MultiheadAttention) for m in net.modules())
    assert any(isinstance(m, nn.MultiheadAttention) for m in _net(12).modules())
    out = net(torch.randn(2, 3, 3, SIZE, SIZE), torch.tensor([0, 0]))
    assert out.sa_logits.shape == (2, 12) and out.tb_logits.shape == (2, 3, 12)


@pytest.mark.parametrize("sil", ["transformer", "mlp"])
def test_encoder_norm_none_removes_every_layernorm_of_the_encoders(sil):
    def norms(m):
        return sum(isinstance(x, nn.LayerNorm) for x in m.modules())

    with_norm, without = _net(12, sil=sil), _net(12, sil=sil, encoder_norm="none").eval()
    assert norms(with_norm.spatial_teacher) > 0 and norms(with_norm.temporal_teacher) > 0
    assert norms(without.spatial_teacher) == 0 and norms(without.temporal_teacher) == 0
    # the encoder now sees the scale of its AU tokens: scaling them changes S_a's logits (a per-token LayerNorm
    # at the input of every block and at the end would hide a common scale from the heads)
    tok = without.features_a(torch.randn(2, 3, SIZE, SIZE)).detach() + 0.5
    assert not torch.allclose(without.spatial_head(tok), without.spatial_head(3 * tok), atol=1e-3)
    out = without(torch.randn(2, 3, 3, SIZE, SIZE), torch.tensor([0, 0]))
    assert out.sa_logits.shape == (2, 12) and out.tb_logits.shape == (2, 3, 12)
    # eval (PyTorch's fused inference path would re-apply norms) equals train mode when dropout is off
    plain = _net(12, sil=sil, encoder_norm="none", encoder_dropout=0.0)
    with torch.no_grad():
        ev = plain.eval().spatial_teacher(tok)
        tr = plain.train().spatial_teacher(tok)
    torch.testing.assert_close(ev, tr)
    with pytest.raises(ValueError, match="encoder norm"):
        _net(12, sil=sil, encoder_norm="batch")


def test_au_head_init_options():
    """trunc-normal 0.02 (default) vs nn.Linear's uniform ±1/sqrt(W) for S_a's per-AU head (weights and bias)."""
    default, linear = _net(12), _net(12, au_head_init="linear")
    assert default.au_head_weight.std() < 0.03 and torch.all(default.au_head_bias == 0)
    bound = 16**-0.5
    for p in (linear.au_head_weight, linear.au_head_bias):
        assert p.abs().max() <= bound and p.abs().max() > 0.8 * bound  # fills the range, not stuck near zero
    assert linear.au_head_weight.std() > 0.1
    with pytest.raises(ValueError, match="au_head_init"):
        _net(12, au_head_init="xavier")


def test_temporal_embedding_makes_t_b_order_aware():
    net = _net(12).eval()
    tokens = torch.randn(1, 3, 16)
    with torch.no_grad():
        a, _ = net.temporal_head(tokens)
        b, _ = net.temporal_head(tokens[:, [2, 1, 0]])
    assert not torch.allclose(a[0, 0], b[0, 2], atol=1e-5)


def test_width_must_divide_heads_and_clip_len():
    with pytest.raises(ValueError):
        KSNet(12, clip_len=5, width=12, heads=8)  # the paper's W = U = 12 with 8 heads
    with pytest.raises(ValueError):
        KSNet(12, clip_len=1)


def test_mean_prob_logit_is_the_logit_of_the_mean_probability():
    a = torch.tensor([-60.0, -3.0, 0.0, 2.0, 60.0])
    b = torch.tensor([60.0, 1.0, 0.0, -5.0, 60.0])
    z = mean_prob_logit(a, b)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(torch.sigmoid(z), 0.5 * (torch.sigmoid(a) + torch.sigmoid(b)))


def test_trainable_parameter_count_default_bp4d():
    """Paper §6.7: about 25M trainable parameters with two ResNet-18s."""
    net = KSNet(12, clip_len=5)
    count = count_trainable(net)
    backbones = count_trainable(net.backbone_a) + count_trainable(net.backbone_b)
    print(f"KS trainable parameters (BP4D, defaults): {count:,} (backbones {backbones:,})")
    assert 22_000_000 < backbones < 23_000_000
    assert 20_000_000 < count < 30_000_000
