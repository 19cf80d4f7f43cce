"""MDHR network: shapes on both datasets and several input sizes, region encoding, GAT mask, MFD, TCN, size."""

import itertools

import pytest
import torch

from auspread.aus import dataset_aus
from auspread.errors import ConfigError
from auspread.models.mdhr import (
    CrossRegionGAT,
    LinearBlock,
    MDHRNet,
    MultiScaleFacialDynamics,
    PatchConv2d,
    PerAUTemporalConv,
    RegionLayout,
    band_rows,
    base_adjacency,
    decode_region_classes,
    encode_region_classes,
    gat_adjacency,
)

BP4D = dataset_aus("BP4D").aus  # 1,2,4,6,7,10,12,14,15,17,23,24
DISFA = dataset_aus("DISFA").aus  # 1,2,4,6,9,12,25,26
REDUCED = dict(backbone="resnet18", width=32, mfd_channels=32)


def layout(ds):
    return RegionLayout.for_aus(BP4D if ds == "BP4D" else DISFA)


def labels_for(aus, active):
    return torch.tensor([[1.0 if a in active else 0.0 for a in aus]])


# --- shapes -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reduced_nets():
    torch.manual_seed(0)
    return {ds: MDHRNet(layout(ds), **REDUCED) for ds in ("BP4D", "DISFA")}


@pytest.mark.parametrize("ds,n_aus,classes", [("BP4D", 12, [16, 2, 8, 16]), ("DISFA", 8, [8, 4, 8])])
@pytest.mark.parametrize("size,grid", [(64, 2), (96, 3), (112, 4)])
def test_output_shapes_reduced(reduced_nets, ds, n_aus, classes, size, grid):
    net = reduced_nets[ds]
    pyr = net.backbone(torch.randn(6, 3, size, size))
    assert pyr.final.shape[-2:] == (grid, grid)  # grid derived from the input size (stride 32)
    out = net.forward_features(pyr, 2, 3)
    assert out.probs.shape == (2, 3, n_aus)
    assert [z.shape for z in out.aux_logits] == [(2, 3, c) for c in classes]
    assert out.active.shape == (2, 3, n_aus)
    assert torch.all((out.probs >= 0) & (out.probs <= 1))


def test_swin_stage_inputs_and_shapes():
    torch.manual_seed(0)
    net = MDHRNet(layout("DISFA"), backbone="swin_t", width=16, mfd_channels=16)
    assert net.backbone.stage_channels == (96, 192, 384, 768)
    pyr = net.backbone(torch.randn(2, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in pyr.maps] == [(96, 16, 16), (192, 8, 8), (384, 4, 4), (768, 2, 2)]
    assert tuple(pyr.final.shape[1:]) == (768, 2, 2)
    assert net.forward_features(pyr, 1, 2).probs.shape == (1, 2, 8)


def _official_r50_param_count(n_aus: int, group_sizes: list[int], region_linears: int) -> int:
    """Hand derivation from the official layer shapes (reference B.2–B.8), R50 without its fc."""
    lb = lambda i, o: i * o + o + 2 * o  # LinearBlock: Linear + BN1d  # noqa: E731
    resnet50_trunk = 23_508_032
    mfd = (256 * 2048 * 64 + 2048) + (512 * 2048 * 16 + 2048) + (1024 * 2048 * 4 + 2048) + (2048 * 2048 + 2048)
    mfd += 2048 * 512 + 512  # convcat
    mfd += 4 * 2 * 2048 + 2 * 512  # bn1-4, bn
    mfd += 4 * (2048 * 16 + 16) + 4 * 2 * 16 + (64 * 4 + 4)  # weight_1-4, wbn1-4, weight
    static = lb(2048, 512)
    lrm = (n_aus + region_linears) * lb(512, 512) + sum(512 * 2**n + 2**n for n in group_sizes)
    gat = 512 * 512 + 2 * 512 + 512
    tcn = n_aus * (512 * 5 + 512) + 2 * n_aus
    sc = n_aus * 512
    return resnet50_trunk + mfd + static + lrm + gat + tcn + sc


def test_resnet50_model_size_and_224_shapes():
    """The full model: 93,226,054 parameters on BP4D (the official code's "about 93 M"). The count must match the
    hand derivation exactly: every layer here has the official shape, so any difference is a real deviation."""
    torch.manual_seed(0)
    net = MDHRNet(layout("BP4D"))
    n = sum(p.numel() for p in net.parameters())
    expected = _official_r50_param_count(12, [4, 1, 3, 4], region_linears=4)
    print(f"MDHR ResNet-50 BP4D parameters: {n:,}")
    assert expected == 93_226_054
    assert n == expected
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(1, 2, 3, 224, 224))
    assert out.probs.shape == (1, 2, 12)
    assert [z.shape[-1] for z in out.aux_logits] == [16, 2, 8, 16]


def test_resnet50_disfa_model_size():
    """DISFA's official model has no region LinearBlocks and 3 Aux heads (8, 4, 8 classes): 91,090,984 parameters."""
    net = MDHRNet(layout("DISFA"))
    n = sum(p.numel() for p in net.parameters())
    print(f"MDHR ResNet-50 DISFA parameters: {n:,}")
    assert n == _official_r50_param_count(8, [3, 2, 3], region_linears=0) == 91_090_984


def test_disfa_has_no_region_linears_by_default():
    a = MDHRNet(layout("DISFA"), **REDUCED)
    b = MDHRNet(layout("BP4D"), **REDUCED)
    assert all(isinstance(m, torch.nn.Identity) for m in a.local.region_linears)
    assert all(isinstance(m, LinearBlock) for m in b.local.region_linears)


# --- auxiliary class encoding ----------------------------------------------------------------------------------
def test_aux_encoding_hand_examples():
    bp, di = layout("BP4D"), layout("DISFA")
    assert encode_region_classes(labels_for(BP4D, {10, 12}), bp).tolist() == [[0, 0, 4, 8]]
    # up = (1,2,4,7): AU1+AU7 → 1001b = 9; mid = (6) → 1; down1 = (12,14,15): 14+15 → 011b = 3; down2 = (10,17,23,24): 24 → 1
    assert encode_region_classes(labels_for(BP4D, {1, 7, 6, 14, 15, 24}), bp).tolist() == [[9, 1, 3, 1]]
    # DISFA up = (1,2,4): AU2 → 010b = 2; mid = (6,9): AU9 → 01b = 1; down = (12,25,26): 25+26 → 011b = 3
    assert encode_region_classes(labels_for(DISFA, {2, 9, 25, 26}), di).tolist() == [[2, 1, 3]]
    # an unknown label makes only its own region unknown
    y = labels_for(BP4D, {10, 12})
    y[0, BP4D.index(14)] = -1
    assert encode_region_classes(y, bp).tolist() == [[0, 0, -1, 8]]


def test_aux_decoding_inverts_encoding_for_every_combination():
    bp = layout("BP4D")
    ys = torch.tensor(list(itertools.product([0.0, 1.0], repeat=12)))
    assert torch.equal(decode_region_classes(encode_region_classes(ys, bp), bp), ys)


# --- cross-regional graph ----------------------------------------------------------------------------------------
def test_gat_mask_from_a_given_prediction():
    di = layout("DISFA")  # groups up (1,2,4), mid (6,9), down (12,25,26)
    # aux prediction: up → class 4 (100b: AU1), mid → 0, down → 3 (011b: AU25, AU26)
    logits = [torch.eye(8)[[4]] * 5, torch.eye(4)[[0]] * 5, torch.eye(8)[[3]] * 5]
    classes = torch.stack([z.argmax(-1) for z in logits], -1)
    active = decode_region_classes(classes, di)
    assert active.tolist() == [[1, 0, 0, 0, 0, 0, 1, 1]]
    adj = gat_adjacency(base_adjacency(di, "active_cross"), active)[0]
    # row i: self-loop + the predicted-active AUs (1, 25, 26) outside i's own region
    #           AU1 2  4  6  9  12 25 26
    expected = [[1, 0, 0, 0, 0, 0, 1, 1],  # AU1 (up): AU25, AU26
                [0, 1, 0, 0, 0, 0, 1, 1],  # AU2 (up): AU1 is in its own region → no edge
                [0, 0, 1, 0, 0, 0, 1, 1],  # AU4 (up)
                [1, 0, 0, 1, 0, 0, 1, 1],  # AU6 (mid): AU1, AU25, AU26
                [1, 0, 0, 0, 1, 0, 1, 1],  # AU9 (mid)
                [1, 0, 0, 0, 0, 1, 0, 0],  # AU12 (down): AU1 only
                [1, 0, 0, 0, 0, 0, 1, 0],  # AU25 (down)
                [1, 0, 0, 0, 0, 0, 0, 1]]  # AU26 (down)
    assert adj.tolist() == expected


def test_bp4d_down1_and_down2_are_different_regions():
    base = base_adjacency(layout("BP4D"), "cross")
    i10, i12, i17 = BP4D.index(10), BP4D.index(12), BP4D.index(17)
    assert base[i12, i10] == 1 and base[i10, i12] == 1 and base[i10, i17] == 0


def test_gat_attends_only_along_edges():
    torch.manual_seed(0)
    di = layout("DISFA")
    gat = CrossRegionGAT(8, base_adjacency(di, "active_cross"))
    active = torch.tensor([[1.0, 0, 0, 0, 0, 0, 1, 1]])
    x = torch.rand(1, 8, 8)
    y = gat(x, active)
    x2 = x.clone()
    x2[0, 3] += 1.0  # AU6: inactive → no edge into AU12 (node 5), but node 5 attends to AU1 (node 0)
    y2 = gat(x2, active)
    assert torch.allclose(y[0, 5], y2[0, 5])
    x3 = x.clone()
    x3[0, 0] += 1.0
    assert not torch.allclose(gat(x3, active)[0, 5], y[0, 5])


def test_network_gates_the_graph_with_its_own_aux_prediction():
    torch.manual_seed(0)
    net = MDHRNet(layout("BP4D"), **REDUCED)
    out = net(torch.randn(1, 2, 3, 64, 64))
    classes = torch.stack([z.argmax(-1) for z in out.aux_logits], -1)
    assert torch.equal(out.active, decode_region_classes(classes, net.layout))


# --- bands, MFD, TCN ---------------------------------------------------------------------------------------------
def test_band_rows_scaled_from_seven_rows():
    assert [band_rows(b, 7) for b in ("up", "mid", "down")] == [(0, 3), (2, 5), (4, 7)]
    assert [band_rows(b, 14) for b in ("up", "mid", "down")] == [(0, 6), (4, 10), (8, 14)]
    assert [band_rows(b, 4) for b in ("up", "mid", "down")] == [(0, 2), (1, 3), (2, 4)]
    assert [band_rows(b, 2) for b in ("up", "mid", "down")] == [(0, 1), (0, 2), (1, 2)]
    assert [band_rows(b, 1) for b in ("up", "mid", "down")] == [(0, 1)] * 3


@pytest.mark.parametrize("k,T", [(1, 3), (2, 6), (5, 16), (5, 4)])
def test_temporal_average_matches_zero_padded_window(k, T):
    mfd = MultiScaleFacialDynamics((4, 8, 16, 32), k=k, width=8, mid_channels=8)
    B = 2
    d = torch.randn(B * (T - 1), 3, 1, 1)
    got = mfd.temporal_average(d, B, T).reshape(B, T, 3)
    dd = d.reshape(B, T - 1, 3)
    for t in range(T):
        idx = [j for j in range(t - k, t + k) if 0 <= j < T - 1]  # differences t-k .. t+k-1, zeros elsewhere
        want = dd[:, idx].sum(1) / (2 * k)
        assert torch.allclose(got[:, t], want, atol=1e-6)


def test_k1_example_by_hand():
    mfd = MultiScaleFacialDynamics((4, 8, 16, 32), k=1, width=8, mid_channels=8)
    d = torch.tensor([2.0, 4.0]).reshape(2, 1, 1, 1)  # B=1, T=3: D0 = 2, D1 = 4
    assert mfd.temporal_average(d, 1, 3).flatten().tolist() == [1.0, 3.0, 2.0]


@pytest.mark.parametrize("fusion", ["adaptive", "sum", "concat"])
def test_fusion_variants_and_scale_subsets(fusion):
    torch.manual_seed(0)
    mfd = MultiScaleFacialDynamics((4, 8, 16, 32), scales=(2, 4), mid_channels=8, width=6, k=2, fusion=fusion)
    maps = [torch.randn(6, c, s, s) for c, s in zip((4, 8, 16, 32), (12, 6, 3, 2))]  # odd sizes: padded to 16/8/4
    out = mfd(maps, 2, 3, (2, 2))
    assert out.shape == (6, 6, 2, 2)
    assert mfd.out_conv.in_channels == (16 if fusion == "concat" else 8)
    if fusion == "adaptive":
        feats = [torch.rand(6, 8, 2, 2) for _ in range(2)]
        w = mfd.scale_weights(feats)
        assert w.shape == (6, 2, 2, 2) and torch.allclose(w.sum(1), torch.ones(6, 2, 2))


def test_static_clip_dynamics_depend_only_on_the_clip_border():
    """Identical frames → every difference is 0, but the padded zeros of Eq. 3 stand in for *projected* features
    (conv bias → BN → ReLU ≠ 0), so positions whose window holds fewer in-clip differences differ: the clip-level
    zero padding of the official code (reference B.10.4). k = 2, T = 4: positions 0 and 3 see 2 differences,
    positions 1 and 2 see 3."""
    torch.manual_seed(0)
    mfd = MultiScaleFacialDynamics((4, 8, 16, 32), mid_channels=8, width=6, k=2).eval()
    with torch.no_grad():
        for m in mfd.proj:
            m.bias.fill_(0.5)
    maps = [torch.randn(1, c, s, s).expand(4, c, s, s) for c, s in zip((4, 8, 16, 32), (16, 8, 4, 2))]
    out = mfd(maps, 1, 4, (2, 2))
    assert torch.allclose(out[0], out[3]) and torch.allclose(out[1], out[2])
    assert not torch.allclose(out[0], out[1])


def test_tcn_is_per_au_with_a_five_frame_receptive_field():
    torch.manual_seed(0)
    tcn = PerAUTemporalConv(3, 4).eval()
    x = torch.randn(1, 9, 3, 4)
    y = tcn(x).reshape(1, 9, 3, 4)
    x2 = x.clone()
    x2[0, 4, 1] += 1.0  # AU 1 at frame 4
    d = (tcn(x2).reshape(1, 9, 3, 4) - y).abs().sum(-1)[0]  # (T, N)
    assert torch.all(d[:, [0, 2]] == 0)  # other AUs untouched
    assert torch.all(d[[0, 1, 7, 8], 1] == 0)  # frames beyond ±2 untouched


@pytest.mark.parametrize("r", [1, 2, 8])
def test_patch_conv_equals_conv2d(r):
    torch.manual_seed(0)
    p = PatchConv2d(3, 5, kernel_size=r, stride=r)
    c = torch.nn.Conv2d(3, 5, kernel_size=r, stride=r)
    c.load_state_dict(p.state_dict())
    x = torch.randn(2, 3, 2 * r, 3 * r, requires_grad=True)
    y = p(x)
    assert y.shape == (2, 5, 2, 3) and torch.allclose(y, c(x), atol=1e-5)
    (gp,) = torch.autograd.grad(y.square().sum(), x)
    (gc,) = torch.autograd.grad(c(x).square().sum(), x)
    assert torch.allclose(gp, gc, atol=1e-4)


def test_grouped_linear_block_equals_separate_blocks():
    torch.manual_seed(0)
    g = LinearBlock(5, 3, groups=2).eval()
    x = torch.randn(4, 7, 5)
    y = g(x)
    assert y.shape == (4, 7, 2, 3)
    for i in range(2):
        s = LinearBlock(5, 3).eval()
        s.fc.weight.data = g.fc.weight.data[3 * i : 3 * i + 3]
        s.fc.bias.data = g.fc.bias.data[3 * i : 3 * i + 3]
        assert torch.allclose(s(x), y[:, :, i])


# --- ablations ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags",
    [dict(mfd=False), dict(afe=False), dict(aux=False, edges="cross"), dict(crm=False), dict(tcn=False),
     dict(mfd=False, afe=False, aux=False, crm=False, tcn=False), dict(edges="full"), dict(edges="local")],
)
def test_ablations_run_and_remove_their_module(flags):
    torch.manual_seed(0)
    net = MDHRNet(layout("BP4D"), **REDUCED, **flags)
    out = net(torch.randn(1, 3, 3, 64, 64))
    assert out.probs.shape == (1, 3, 12) and torch.all((out.probs >= 0) & (out.probs <= 1))
    assert (net.mfd is None) == (flags.get("mfd") is False)
    assert (net.crm is None) == (flags.get("crm") is False)
    assert (net.tcn is None) == (flags.get("tcn") is False)
    assert (out.aux_logits == []) == (flags.get("aux") is False)
    (out.probs.sum() + sum(z.sum() for z in out.aux_logits)).backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []  # no dead modules (DDP-safe)


def test_gated_edges_need_aux():
    with pytest.raises(ConfigError, match="aux"):
        MDHRNet(layout("BP4D"), **REDUCED, aux=False)


def test_layout_fallback_to_anatomical_regions():
    lay = RegionLayout.for_aus((1, 4, 6, 12, 25))
    assert [(g.band, g.aus) for g in lay.groups] == [("up", (1, 4)), ("mid", (6,)), ("down", (12, 25))]
    with pytest.raises(ConfigError):
        RegionLayout.for_aus((1, 4, 6), "BP4D")
