import torch

from auspread.models.tcl import TCLNet, temporal_shift


def test_temporal_shift_moves_channel_blocks_by_one_frame():
    # one clip of 3 frames, 8 channels, 1x1: value = 10*frame + channel
    x = torch.tensor([[10.0 * t + c for c in range(8)] for t in range(3)]).view(3, 8, 1, 1)
    y = temporal_shift(x, 3, shift_div=4).view(3, 8)
    # channels 0-1 see the next frame (0 at the end), 2-3 the previous (0 at the start), 4-7 unchanged
    assert y[0, :2].tolist() == [10, 11] and y[2, :2].tolist() == [0, 0]
    assert y[0, 2:4].tolist() == [0, 0] and y[1, 2:4].tolist() == [2, 3]
    assert torch.equal(y[:, 4:], x.view(3, 8)[:, 4:])
    assert torch.equal(temporal_shift(x, 1), x)


def test_tclnet_shapes_and_temporal_context():
    torch.manual_seed(0)
    net = TCLNet(3, shift=True).eval()
    clip = torch.randn(2, 4, 3, 32, 32)
    out = net(clip)
    assert out.shape == (2, 4, 3)
    # with shifts, a frame's output depends on its neighbours; without, it does not
    other = clip.clone()
    other[:, 1] = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(net(other)[:, 0], out[:, 0])
    flat = TCLNet(3, shift=False).eval()
    assert torch.allclose(flat(other)[:, 0], flat(clip)[:, 0], atol=1e-5)


def test_mobilenet_v2_trunk_shifts_in_every_residual_inverted_block():
    """TSM's placement for MobileNetV2: the first convolution of each block with a residual connection (10 of 17)."""
    torch.manual_seed(0)
    net = TCLNet(3, backbone="mobilenet_v2", shift=True).eval()
    assert len(net._shifts) == 10
    clip = torch.randn(1, 4, 3, 32, 32)
    assert net(clip).shape == (1, 4, 3)  # (sets the shifts' clip length to 4)
    other = clip.clone()
    other[:, 1] = torch.randn(1, 3, 32, 32)
    first_block = net.backbone.features[:4]  # up to the first residual block (a random trunk's signal fades deeper)
    a, b = first_block(clip[0]), first_block(other[0])
    assert (a[0] - b[0]).abs().max() > 1e-4  # frame 0 sees frame 1 through the shift
    flat = TCLNet(3, backbone="mobilenet_v2", shift=False).eval()
    assert not flat._shifts
    assert torch.allclose(flat.backbone.features[:4](clip[0])[0], flat.backbone.features[:4](other[0])[0], atol=1e-6)
