"""Why Knowledge-Spreader's heads stay at the base rates longer than a frame classifier (issue 5 diagnosis).

Trains one head path at a time with the weighted BCE of KS Eq. 3 on the *same* batches (KS's key-frame clips of
`bp4d-like` fold 1 at 5% labels, 16 clips per step, 64 px, bf16, AdamW 1e-3), and prints the mean loss every 60
steps. Variants:

  A  supervised counterpart: ResNet-18 -> global average pooling -> linear (configs/supervised_synthetic.yaml)
  B  KS Spatial Teacher path: ResNet-18 A -> AU decoupler -> S_a transformer -> per-AU heads (sa_bce alone)
  C  KS Spatial Student path on the key frame: ResNet-18 B -> student S_b^m (m shifts every step) -> head
  D  ResNet-18 A -> AU decoupler -> mean over the AU tokens -> linear
  E  B without the final LayerNorm of the encoder
  F  ResNet-18 A -> AU decoupler -> per-AU heads on each AU's own token (no encoder)
  H  E with the SIL ablation's MLP encoder (run with the override method.sil=mlp)
  G  F with the per-AU head weights initialised like nn.Linear (uniform ±1/sqrt(W)) instead of trunc-normal 0.02
  I  ResNet-18 A -> AU decoupler -> all U tokens flattened -> one linear layer (every AU reads every token)
  K  B with the per-AU head weights initialised like G
  L  E (no final LayerNorm) with the per-AU head weights initialised like G
  P  G with a LayerNorm over each AU token's W channels before the heads (no encoder)
  R  K with the decoupler's ReLU removed (tokens = GAP of BN(conv), signed)
  S  K with a linear token embedding Linear(W, W) after the decoupler (ViT's patch projection)
  T  L (no final LayerNorm, G's head init) with each encoder block's residual branches zero-initialised
     (attention out_proj and second feed-forward linear: weight and bias 0, so the encoder starts as the identity)
  U  T with the final LayerNorm kept
  V  K with every LayerNorm of the encoder removed (both per block and the final one)
  W  V with the default head initialisation (trunc-normal 0.02), i.e. B with no LayerNorm in the encoder
  C1 C with one Spatial Student for every key position (student 0 always)
  CL C with each Spatial Student a single Linear(C, W) (no hidden layer, no dropout) before its head
  CD C without the students' dropout
  TB Temporal Teacher T_b at the key position: the whole clip through branch B (students, T_b), T_b's BCE alone
  TB1 TB with one Spatial Student shared by every clip position
  TBL TB with CL's one-layer students
  CB C with BatchNorm1d after each student's first linear layer (Linear -> BN -> ReLU -> Dropout -> Linear)
  CN C with BatchNorm1d on the pooled backbone-B features before the students (a BNNeck)
  CU C with the paper's U-dimensional student output read as the logits (Linear(C, hidden) -> ReLU -> Dropout ->
     Linear(hidden, U), no separate head): "the dimension of each output feature for Spatial Student is U"
  AB A's head on KS's own ResNet-18 B: pooled backbone-B features -> one linear layer (the C variants' trunk)
  AB2 AB with two stacked linear layers Linear(C, W) -> Linear(W, U) (one head, trained every step)
  ABM AB with an MLP head Linear(C, 256) -> ReLU -> Linear(256, U) (one head, no dropout)
  ABN ABM with a LayerNorm over the pooled features first (centred inputs for the hidden layer)
  ABG ABM with GELU instead of ReLU

    python benchmarks/diag_ks_heads.py A 480        # about 2 min on one core; then B, C, D, E; H with method.sil=mlp
    DIAG_LR=3e-4 DIAG_WARMUP=100 python benchmarks/diag_ks_heads.py B 480     # other learning rate / linear warm-up
    DIAG_AMP=off python benchmarks/diag_ks_heads.py B 480                     # fp32 instead of bf16 autocast
    DIAG_HEAD_LR_SCALE=0.3 python benchmarks/diag_ks_heads.py C 480           # heads at 0.3 × the trunks' lr
    DIAG_DEAD=1 python benchmarks/diag_ks_heads.py ABM 480                    # + fraction of dead ReLU units
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import auspread.engine.data as ED
from auspread.data.labels import sparsify
from auspread.data.sampling import TrainBatches
from auspread.engine.config import load_config
from auspread.engine.run import build_method
from auspread.losses.weighted_bce import weighted_bce_with_logits

REPO = Path(__file__).resolve().parent.parent


CLIP: dict = {}  # the current batch's clip frames, for the T_b variants (set by the loop)


def _one_layer_students(net) -> None:
    for s in net.students:
        s.mlp = torch.nn.Linear(net.backbone_b.out_channels, net.width)


def head_path(variant: str, ks, info):
    """(trainable module, forward(key_frames, m) -> logits) of one variant."""
    net = ks.net
    if variant in ("CL", "TBL"):
        _one_layer_students(net)
    if variant == "CU":
        for s in net.students:
            s.mlp[3] = torch.nn.Linear(s.mlp[0].out_features, info.num_aus)
        return ks, lambda key, m: net.students[m].mlp(net.features_b(key))
    if variant == "AB":
        head = torch.nn.Linear(net.backbone_b.out_channels, info.num_aus)
        return torch.nn.ModuleList([net.backbone_b, head]), lambda key, m: head(net.features_b(key))
    if variant in ("AB2", "ABM", "ABN", "ABG"):  # two-layer heads on ResNet-B, one head for every step
        c, w = net.backbone_b.out_channels, net.width
        act = torch.nn.GELU() if variant == "ABG" else torch.nn.ReLU()
        head = (torch.nn.Sequential(torch.nn.Linear(c, w), torch.nn.Linear(w, info.num_aus)) if variant == "AB2" else
                torch.nn.Sequential(torch.nn.Linear(c, 256), act, torch.nn.Linear(256, info.num_aus)))
        if variant == "ABN":
            head = torch.nn.Sequential(torch.nn.LayerNorm(c), *head)
        return torch.nn.ModuleList([net.backbone_b, head]), lambda key, m: head(net.features_b(key))
    if variant == "CB":
        for s in net.students:
            s.mlp = torch.nn.Sequential(s.mlp[0], torch.nn.BatchNorm1d(s.mlp[0].out_features), *s.mlp[1:])
    if variant == "CN":
        neck = torch.nn.BatchNorm1d(net.backbone_b.out_channels)
        return (torch.nn.ModuleList([ks, neck]), lambda key, m: net.students[m](neck(net.features_b(key)))[1])
    if variant == "CD":
        for s in net.students:
            s.mlp[2].p = 0.0
    if variant in ("C1", "TB1"):
        net.students = torch.nn.ModuleList([net.students[0]] * net.clip_len)
    if variant in ("TB", "TB1", "TBL"):
        return ks, lambda key, m: net.forward_branch_b(CLIP["frames"])[2][:, m]
    if variant in ("C1", "CL", "CD", "CB"):
        return ks, lambda key, m: net.students[m](net.features_b(key))[1]
    if variant == "A":
        scfg = load_config(REPO / "configs/supervised_synthetic.yaml", ["data.synth_preset=bp4d-like"])
        torch.manual_seed(0)
        model = build_method(scfg, info)
        return model, lambda key, m: model.logits(key)
    if variant in ("V", "W"):
        for layer in net.spatial_teacher.blocks.layers:
            layer.norm1, layer.norm2 = torch.nn.Identity(), torch.nn.Identity()
    if variant in ("T", "U"):
        for layer in net.spatial_teacher.blocks.layers:
            for lin in (layer.self_attn.out_proj, layer.linear2):
                torch.nn.init.zeros_(lin.weight)
                torch.nn.init.zeros_(lin.bias)
    if variant in ("E", "H", "L", "T", "V", "W"):
        net.spatial_teacher.norm = torch.nn.Identity()
    if variant in ("G", "K", "L", "P", "R", "S", "T", "U", "V"):
        bound = 1.0 / net.width ** 0.5
        torch.nn.init.uniform_(net.au_head_weight, -bound, bound)
        torch.nn.init.uniform_(net.au_head_bias, -bound, bound)
    if variant == "R":
        dec = net.decoupler
        dec.forward = lambda fmap: dec.bn(dec.conv(fmap)).mean(dim=(2, 3)).view(fmap.shape[0], dec.num_aus, dec.width)
    if variant == "S":
        embed = torch.nn.Linear(net.width, net.width)
        return torch.nn.ModuleList([ks, embed]), lambda key, m: net.spatial_head(embed(net.features_a(key)))
    if variant in ("B", "E", "H", "K", "L", "R", "T", "U", "V", "W"):
        return ks, lambda key, m: net.spatial_head(net.features_a(key))
    if variant == "C":
        return ks, lambda key, m: net.students[m](net.features_b(key))[1]
    if variant in ("F", "G"):
        def per_au_heads(key, m):
            tokens = net.features_a(key)  # (k, U, W): each AU's logit from its own token only, no encoder
            return torch.einsum("kuw,uw->ku", tokens, net.au_head_weight) + net.au_head_bias
        return ks, per_au_heads
    if variant == "D":
        head = torch.nn.Linear(net.width, info.num_aus)
        return torch.nn.ModuleList([net.backbone_a, net.decoupler, head]), lambda key, m: head(net.features_a(key).mean(1))
    if variant == "P":
        norm = torch.nn.LayerNorm(net.width)

        def normed_per_au_heads(key, m):
            tokens = norm(net.features_a(key))
            return torch.einsum("kuw,uw->ku", tokens, net.au_head_weight) + net.au_head_bias
        return torch.nn.ModuleList([ks, norm]), normed_per_au_heads
    if variant == "I":
        head = torch.nn.Linear(net.num_aus * net.width, info.num_aus)
        return (torch.nn.ModuleList([net.backbone_a, net.decoupler, head]),
                lambda key, m: head(net.features_a(key).flatten(1)))
    raise SystemExit(f"unknown variant {variant!r} (A, AB, B, C, C1, CB, CU, CL, CD, CN, D, E, F, G, H, I, K, L, P, R, S, T, TB, TB1, TBL, U, V, W)")


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    variant, steps = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    cfg = load_config(REPO / "configs/ks_synthetic.yaml",
                      ["data.synth_preset=bp4d-like", "data.fold=1", "data.labels=5%", "optim.batch_size=16"] + sys.argv[3:])
    splits = ED.split_index(ED.read_index(cfg.data, progress=False), cfg.data, 0)
    sparse = sparsify(splits.train, cfg.data.labels, cfg.data.label_seed)
    info = ED.dataset_info(sparse.index, cfg.data)
    store = ED.open_store(splits.train, cfg.data, progress=False)
    torch.manual_seed(0)
    ks = build_method(cfg, info)
    batches = TrainBatches(splits.train, sparse.key_frames, store, ks.data_spec(), cfg.data, 16, seed=0)
    model, forward = head_path(variant, ks, info)
    model.train()
    dead: list[float] = []  # fraction of ReLU units of the heads that are zero for every sample of the batch
    if os.environ.get("DIAG_DEAD"):
        trunk = {id(m) for m in ks.net.backbone_a.modules()} | {id(m) for m in ks.net.backbone_b.modules()}
        for mod in model.modules():
            if isinstance(mod, torch.nn.ReLU) and id(mod) not in trunk:
                mod.register_forward_hook(lambda mod, i, o: dead.append(float((o.flatten(0, -2) <= 0).all(0).float().mean())))
    lr, warmup = float(os.environ.get("DIAG_LR", "1e-3")), int(os.environ.get("DIAG_WARMUP", "0"))
    # DIAG_HEAD_LR_SCALE: the parameters outside the ResNet trunks (heads, students, encoders) at lr × this scale
    trunk_ids = {id(p) for p in ks.net.backbone_a.parameters()} | {id(p) for p in ks.net.backbone_b.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    head_scale = float(os.environ.get("DIAG_HEAD_LR_SCALE", "1"))
    groups = [{"params": [p for p in params if id(p) in trunk_ids]},
              {"params": [p for p in params if id(p) not in trunk_ids], "lr": lr * head_scale}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    losses: list[float] = []
    t0, step, epoch = time.time(), 0, 0
    while step < steps:
        batches.set_epoch(epoch)
        epoch += 1
        for i in range(len(batches)):
            if step >= steps:
                break
            b = batches.batch(i)
            ar = torch.arange(b["frames"].shape[0])
            key, y = b["frames"][ar, b["key_pos"]], b["labels"][ar, b["key_pos"]]
            CLIP["frames"] = b["frames"]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=os.environ.get("DIAG_AMP", "bf16") == "bf16"):
                z = forward(key, int(b["key_pos"][0]))
            loss = weighted_bce_with_logits(z.float(), y, info.class_weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % 60 == 0:
                extra = f" dead {np.mean(dead[-60:]):.2f}" if dead else ""
                print(variant, step, round(float(np.mean(losses[-60:])), 4), f"{time.time() - t0:.0f}s{extra}", flush=True)


if __name__ == "__main__":
    main()
