"""Pictures of the generator: a contact sheet (each AU at intensity 0/3/5 on a few subjects) and a timeline plot
of one video's ground-truth AU intensities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from auspread.aus import action_unit
from auspread.data.synth.config import SynthConfig
from auspread.data.synth.effects import GENERATED_AUS
from auspread.data.synth.generator import make_subject, pick_subjects, plan_videos, simulate_video, subject_assets
from auspread.data.synth.render import warp_expression
from auspread.io import atomic_path


def contact_sheet(cfg: SynthConfig, n_subjects: int = 3, size: int = 128, levels: tuple[float, ...] = (0, 3, 5)) -> Image.Image:
    """Rows = AUs, columns = subjects × intensities (intensity 0 = the person's own resting face)."""
    subjects = pick_subjects(cfg.format, n_subjects)
    assets = []
    for sid in subjects:
        subj = make_subject(cfg, sid)
        a, _ = subject_assets(cfg, subj, size=size)
        rest = np.array([subj.resting.get(x, 0.0) for x in GENERATED_AUS], np.float32)
        assets.append((a, rest))
    label_w, head_h, gap = 150, 18, 6
    W = label_w + len(subjects) * (len(levels) * size + gap)
    H = head_h + len(GENERATED_AUS) * size
    sheet = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for si, sid in enumerate(subjects):
        for li, lv in enumerate(levels):
            d.text((label_w + si * (len(levels) * size + gap) + li * size + 4, 3), f"{sid} I={lv:g}", fill=(0, 0, 0))
    for r, au in enumerate(GENERATED_AUS):
        y = head_h + r * size
        name = action_unit(au).name
        d.text((4, y + size // 2 - 12), f"AU{au}", fill=(0, 0, 0))
        d.text((4, y + size // 2 + 2), name if au != 45 else "Blink (distractor)", fill=(60, 60, 60))
        for si, (a, rest) in enumerate(assets):
            w = np.repeat(rest[None] / 5.0, len(levels), 0)
            for li, lv in enumerate(levels):
                w[li, GENERATED_AUS.index(au)] += lv / 5.0 * cfg.effect_gain
            imgs = warp_expression(a, w)
            for li in range(len(levels)):
                im = Image.fromarray((np.clip(imgs[li], 0, 1) * 255 + 0.5).astype(np.uint8))
                sheet.paste(im, (label_w + si * (len(levels) * size + gap) + li * size, y))
    return sheet


def timeline(cfg: SynthConfig, video: int = 0, out: str | Path | None = None):
    """Matplotlib figure of one video's AU intensities (benchmark AUs of the format + AU45)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plan = plan_videos(cfg)[video]
    inten, episodes = simulate_video(cfg, plan)
    aus = [a for a in GENERATED_AUS if a != 45] + [45]
    t = np.arange(plan.n_frames) / cfg.fps
    fig, axes = plt.subplots(len(aus), 1, figsize=(10, 0.45 * len(aus) + 1), sharex=True)
    thr = 1 if cfg.format == "bp4d" else 2
    for ax, au in zip(axes, aus):
        y = inten[:, GENERATED_AUS.index(au)]
        ax.fill_between(t, y, color="tab:blue" if au != 45 else "tab:gray", alpha=0.7, lw=0)
        ax.axhline(thr, color="tab:red", lw=0.5, ls="--")
        ax.set_ylim(0, 5)
        ax.set_yticks([])
        ax.set_ylabel(f"AU{au}", rotation=0, ha="right", va="center", fontsize=8)
    for ep in episodes:
        if ep["start"] < t[-1]:
            axes[0].text(max(ep["start"], 0), 5.6, ep["name"], fontsize=7, clip_on=False)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"{plan.video_id}: ground-truth intensities (0-5); dashed = occurrence threshold {thr}", fontsize=9)
    fig.tight_layout()
    if out is not None:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
    return fig


def write_preview(cfg: SynthConfig, out: str | Path) -> tuple[Path, Path]:
    """Write ``OUT.png`` (contact sheet) and ``OUT_timeline.png``; returns both paths."""
    out = Path(out)
    sheet = contact_sheet(cfg, size=max(64, min(cfg.size, 160)))
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    tl = out.with_name(out.stem + "_timeline.png")
    timeline(cfg, 0, tl)
    return out, tl
