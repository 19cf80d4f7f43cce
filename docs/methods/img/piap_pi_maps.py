"""Draw PIAP-DF's predefined PI maps (auspread.models.piap.AU_REGIONS) on a synthetic neutral face.

    python docs/methods/img/piap_pi_maps.py [--size 256] [--out docs/methods/img/piap_pi_maps.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from auspread.data.synth.config import resolve_config
from auspread.data.synth.face import render_neutral
from auspread.data.synth.generator import make_subject
from auspread.models.piap import AU_REGIONS, PIMapSpec, pi_maps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", default=str(Path(__file__).with_name("piap_pi_maps.png")))
    a = ap.parse_args()
    cfg = resolve_config("tiny")
    face = render_neutral(make_subject(cfg, "F001"), a.size)
    aus = sorted(AU_REGIONS)
    maps = pi_maps(torch.tensor(face.landmarks, dtype=torch.float32)[None], a.size, PIMapSpec(aus))[0]
    cols = 5
    rows = -(-len(aus) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows))
    for ax, au, m in zip(axes.ravel(), aus, maps):
        ax.imshow(face.image)
        ax.imshow(m.numpy(), cmap="Reds", alpha=0.6 * m.numpy(), vmin=0, vmax=1)
        ax.scatter(face.landmarks[:, 0], face.landmarks[:, 1], s=1, c="blue")
        ax.set_title(f"AU{au}")
        ax.axis("off")
    for ax in axes.ravel()[len(aus):]:
        ax.axis("off")
    fig.suptitle("PIAP-DF predefined PI maps (red) from iBUG-68 landmarks (blue)")
    fig.tight_layout()
    fig.savefig(a.out, dpi=80)
    print(a.out)


if __name__ == "__main__":
    main()
