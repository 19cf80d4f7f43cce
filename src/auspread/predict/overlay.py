"""``--overlay OUT.mp4``: the input video with the face box and live AU bars (PyAV encode, H.264 if available,
else MPEG-4 Part 2). Written atomically. Frames are re-decoded lazily; nothing is held in memory."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from auspread.evaluation.thresholds import per_au
from auspread.io import atomic_path
from auspread.media import Source


def _codec() -> str:
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def draw_frame(img: np.ndarray, rows: pd.DataFrame, codes: list[str], threshold: float | Sequence[float] = 0.5) -> np.ndarray:
    """Draw every face box of ``rows`` and, for the first face, one bar per AU (orange when ≥ its threshold)."""
    thr = per_au(threshold, len(codes))
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    h = img.shape[0]
    bar_h = max(6, min(14, (h - 10) // max(1, len(codes))))
    first = True
    for _, r in rows.iterrows():
        if r["success"] != 1:
            d.text((5, 5), "no face", fill=(255, 60, 60))
            continue
        x, y, w, hh = (float(r[k]) for k in ("face_x", "face_y", "face_w", "face_h"))
        d.rectangle([x, y, x + w, y + hh], outline=(0, 255, 0), width=2)
        if "face_id" in rows.columns and not pd.isna(r["face_id"]):
            d.text((x + 2, y + 2), f"id {int(r['face_id'])}", fill=(0, 255, 0))
        if not first:
            continue
        first = False
        for j, c in enumerate(codes):
            p = r[f"{c}_p"]
            top = 5 + j * bar_h
            d.rectangle([40, top, 140, top + bar_h - 2], outline=(200, 200, 200))
            if not pd.isna(p):
                d.rectangle([40, top, 40 + 100 * float(p), top + bar_h - 2],
                            fill=(255, 140, 0) if p >= thr[j] else (80, 160, 255))
            d.text((5, top - 1), c, fill=(255, 255, 255))
    return np.asarray(im)


def write_overlay(source: Source, df: pd.DataFrame, path: str | Path, threshold: float | Sequence[float] = 0.5) -> Path:
    import av

    codes = [c[:-2] for c in df.columns if c.endswith("_p")]
    by_frame = {int(k): g for k, g in df.groupby("frame")}
    path = Path(path)
    fps = Fraction(source.fps).limit_denominator(1001) if source.fps > 0 else Fraction(30)
    with atomic_path(path) as tmp:
        out = av.open(str(tmp), mode="w", format="mp4")
        stream = None
        try:
            try:
                for f in source.frames():
                    img = f.image
                    if img is None:  # an unreadable image of a sequence: a black frame keeps the timing
                        if stream is None:
                            continue
                        img = np.zeros((stream.height, stream.width, 3), np.uint8)
                    if stream is None:
                        h, w = img.shape[:2]
                        stream = out.add_stream(_codec(), rate=fps)
                        stream.width, stream.height = max(2, w - w % 2), max(2, h - h % 2)
                        stream.pix_fmt = "yuv420p"
                    rows = by_frame.get(f.index + 1)
                    if rows is not None:
                        img = draw_frame(img, rows, codes, threshold)
                    if img.shape[0] < stream.height or img.shape[1] < stream.width:  # image sequences may vary
                        img = np.asarray(Image.fromarray(img).resize((stream.width, stream.height)))
                    img = np.ascontiguousarray(img[: stream.height, : stream.width])
                    for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                        out.mux(pkt)
            except Exception as e:  # a decode error was already reported by the prediction pass
                from auspread.errors import DataError

                if not isinstance(e, DataError):
                    raise
            if stream is not None:
                for pkt in stream.encode():
                    out.mux(pkt)
        finally:
            out.close()
    from auspread.io import publish

    return publish(path)
