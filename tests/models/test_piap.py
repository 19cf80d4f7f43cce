"""PIAP-DF networks: predefined PI maps from known landmarks, DW-UNet, encoders, decoder."""

import math

import pytest
import torch

from auspread.errors import ConfigError
from auspread.models.piap import (AU_REGIONS, IBUG_MIRROR, DWUNet, Encoder, PI2Net, PIAPNet, PIDecoder, PIMapSpec,
                                  face_frame, grayscale, pi_maps)

BP4D = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)


def _face(size: int = 64) -> torch.Tensor:
    """The synthetic generator's neutral landmarks of one subject (frontal, upright), (68, 2) pixels."""
    from auspread.data.synth.config import resolve_config
    from auspread.data.synth.face import neutral_landmarks
    from auspread.data.synth.generator import make_subject

    return torch.tensor(neutral_landmarks(make_subject(resolve_config("tiny"), "F001"), size), dtype=torch.float32)


def _at(maps, aus, au, xy):
    x, y = (int(round(float(v))) for v in xy)
    return float(maps[aus.index(au), y, x])


def test_mirror_table_is_an_involution_of_ibug68():
    assert sorted(IBUG_MIRROR) == list(range(68))
    assert all(IBUG_MIRROR[IBUG_MIRROR[i]] == i for i in range(68))
    assert IBUG_MIRROR[36] == 45 and IBUG_MIRROR[48] == 54 and IBUG_MIRROR[8] == 8


def test_face_frame_upright_and_mirrored():
    lm = _face()
    ex, ey, s = face_frame(lm)
    assert ex[0] > 0.99 and ey[1] > 0.99  # x to the subject's left eye (image right), y towards the chin
    assert float(s) == pytest.approx(float((lm[42:48].mean(0) - lm[36:42].mean(0)).norm()))
    flipped = lm.clone()
    flipped[:, 0] = 63 - flipped[:, 0]
    ex2, ey2, _ = face_frame(flipped)
    assert ex2[0] < -0.99 and ey2[1] > 0.99  # mirrored: "down" still points to the chin


def test_pixels_inside_and_outside_regions():
    lm = _face(64)
    aus = list(BP4D)
    maps = pi_maps(lm[None], 64, PIMapSpec(aus))[0]
    assert maps.shape == (12, 64, 64) and set(maps.unique().tolist()) <= {0.0, 1.0}
    mouth_centre = (lm[51] + lm[57]) / 2
    brow_up = lm[20] + torch.tensor([0.0, -3.0])  # just above the inner brow
    chin = (lm[57] + lm[8]) / 2
    assert _at(maps, aus, 23, mouth_centre) == 1 and _at(maps, aus, 24, mouth_centre) == 1
    assert _at(maps, aus, 23, brow_up) == 0
    assert _at(maps, aus, 1, brow_up) == 1 and _at(maps, aus, 1, chin) == 0
    assert _at(maps, aus, 17, chin) == 1 and _at(maps, aus, 17, mouth_centre) == 0
    assert _at(maps, aus, 12, lm[48]) == 1 and _at(maps, aus, 12, lm[54]) == 1  # both lip corners (bilateral)
    assert _at(maps, aus, 12, lm[27]) == 0


def test_disk_area_matches_radius():
    lm = _face(128)
    maps = pi_maps(lm[None], 128, PIMapSpec([14]))[0, 0]
    s = float(face_frame(lm)[2])
    r = AU_REGIONS[14].shapes[0].r * s
    expected = 2 * 16 / 2 * r * r * math.sin(2 * math.pi / 16)  # two 16-gons inscribed in circles of radius r
    assert float(maps.sum()) == pytest.approx(expected, rel=0.1)


def test_maps_follow_a_horizontal_flip():
    lm = _face(64)
    aus = list(BP4D)
    spec = PIMapSpec(aus)
    flipped = lm.clone()
    flipped[:, 0] = 63 - flipped[:, 0]  # pixel centres at integers: x -> W - 1 - x, same landmark identities
    a = pi_maps(lm[None], 64, spec)[0]
    b = pi_maps(flipped[None], 64, spec)[0]
    agree = (a.flip(-1) == b).float().mean()
    assert agree > 0.995  # only pixels exactly on a polygon edge may differ


def test_batched_maps_equal_single_maps():
    lm = _face(48)
    lm2 = lm * 0.8 + 4
    spec = PIMapSpec([1, 12, 25, 26])
    both = pi_maps(torch.stack([lm, lm2]), 48, spec)
    assert torch.equal(both[1], pi_maps(lm2[None], 48, spec)[0])
    assert not torch.equal(both[0], both[1])


def test_unknown_au_and_bad_shapes_are_clear_errors():
    with pytest.raises(ConfigError, match="AU\\[99\\]"):
        PIMapSpec([1, 99])
    with pytest.raises(ValueError, match="68, 2"):
        pi_maps(torch.zeros(1, 66, 2), 32, PIMapSpec([1]))


def test_networks_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 40)
    gen = DWUNet(5, width=4)
    assert gen(x).shape == (2, 5, 32, 40)
    enc = Encoder(5, "small", width=4)
    f = enc(torch.randn(2, 5, 64, 64))
    assert f.shape == (2, 64, 2, 2) and enc.out_channels == 64
    dec = PIDecoder(64, 5, width=4)
    assert dec(f, (64, 64)).shape == (2, 5, 64, 64)
    net = PIAPNet(5, "small", 4, decoder=True)
    out = net(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 5) and out.features.shape == (2, 64) and out.maps.shape == (2, 5, 64, 64)
    pi2 = PI2Net(gen, 5, "small", 4)
    assert pi2(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert grayscale(torch.ones(1, 3, 2, 2)).flatten().tolist() == pytest.approx([1.0] * 4)


def test_efficientnet_b1_with_12_input_channels():
    enc = Encoder(12, "efficientnet_b1", pretrained=None)
    assert enc.trunk[0][0].in_channels == 12 and enc.out_channels == 1280
    enc.eval()
    with torch.no_grad():
        assert enc(torch.randn(1, 12, 64, 64)).shape == (1, 1280, 2, 2)


def test_resnet18_encoder_with_12_input_channels_keeps_the_stride():
    enc = Encoder(12, "resnet18").eval()
    assert enc.trunk.stem[0].in_channels == 12 and enc.out_channels == 512
    with torch.no_grad():
        assert enc(torch.randn(1, 12, 64, 64)).shape == (1, 512, 2, 2)


def test_stochastic_depth_option_reaches_every_efficientnet_block():
    from torchvision.ops import StochasticDepth

    def probs(enc):
        return [m.p for m in enc.modules() if isinstance(m, StochasticDepth)]

    default, off = probs(Encoder(3, "efficientnet_b1")), probs(Encoder(3, "efficientnet_b1", stochastic_depth=0.0))
    assert len(default) == len(off) > 10
    assert max(default) == pytest.approx(0.2 * (len(default) - 1) / len(default))  # torchvision's linear rule
    assert all(p == 0.0 for p in off)
    net = PIAPNet(5, "efficientnet_b1", 16, decoder=False, stochastic_depth=0.1)
    assert max(probs(net)) == pytest.approx(0.1 * (len(default) - 1) / len(default))


def test_dw_unet_uses_depthwise_convolutions():
    gen = DWUNet(12, width=16)
    convs = [m for m in gen.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    depthwise = [m for m in convs if m.groups == m.in_channels > 1]
    assert len(depthwise) == len(convs) - 1  # every 3x3 convolution but the 3-channel stem is depthwise
    from auspread.models.piap import DWSeparable

    blocks = [m for m in gen.modules() if isinstance(m, DWSeparable)]
    dw = sum(b[0].weight.numel() + b[3].weight.numel() for b in blocks)
    plain = sum(9 * b[0].in_channels * b[3].out_channels for b in blocks)  # the same UNet with full 3x3 convs
    assert dw / plain < 0.15  # the paper: "reduces the number of parameters and calculations by 90%"


def test_66_point_landmarks_become_68():
    from auspread.models.piap import to_68_points

    lm68 = _face(64)
    lm66 = torch.cat([lm68[:60], lm68[61:64], lm68[65:68]])  # Multi-PIE 66: no inner mouth corners
    out = to_68_points(lm66[None])[0]
    assert out.shape == (68, 2)
    keep = [i for i in range(68) if i not in (60, 64)]
    assert torch.equal(out[keep], lm68[keep])
    assert torch.equal(out[60], lm68[48]) and torch.equal(out[64], lm68[54])
    assert to_68_points(lm68) is lm68
    with pytest.raises(ValueError, match="got 5"):
        to_68_points(torch.zeros(5, 2))


def test_dw_unet_half_resolution_keeps_the_output_size():
    gen = DWUNet(3, width=4, input_stride=2)
    assert gen(torch.randn(2, 3, 33, 40)).shape == (2, 3, 33, 40)
