"""``auspread prepare RAW [OUT] --dataset ...``: raw dataset → aligned 256×256 face crops + index (see
``auspread.faces.prepare`` and docs/predict.md). Without ``OUT`` the crops go where ``auspread train`` looks for
them (:func:`auspread.data.readers.prepared.default_prepared_dir`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("prepare", no_args_is_help=True)(prepare_cmd)


def prepare_cmd(
    raw: Path = typer.Argument(..., help="Dataset root (BP4D, BP4D+, DISFA) or a generic manifest / its folder."),
    out: Optional[Path] = typer.Argument(None, help="Output folder (created; rerunning resumes). Default: the "
                                                    "folder `auspread train` looks in for this dataset's face crops."),
    dataset: str = typer.Option("auto", "--dataset", "-d", help="bp4d, bp4d+, disfa, generic, lists or auto."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Parallel worker processes (one video each)."),
    size: int = typer.Option(256, "--size", min=32, max=1024, help="Crop side in pixels."),
    aligned: Optional[bool] = typer.Option(None, "--aligned/--detect",
                                           help="Inputs are already aligned crops (skip detection). "
                                                "Default: auto (synthetic benchmark trees are aligned)."),
    min_face: int = typer.Option(40, "--min-face", min=8, help="Smallest face side to detect, in pixels."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    option: list[str] = typer.Option([], "--option", "-o", help="Reader option KEY=VALUE (e.g. camera=right)."),
    landmarks: str = typer.Option("dataset", "--landmarks",
                                  help="Landmarks_68 source: 'dataset' (the input's own 68/66 points, if any) or "
                                       "'mediapipe' (68 points from MediaPipe's face landmarker on every crop; "
                                       'pip install "auspread[landmarks]").'),
    landmark_model: Optional[Path] = typer.Option(None, "--landmark-model",
                                                  help="face_landmarker.task (default: the cache, fetched if absent)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Detect (MTCNN), align (5-point similarity) and crop every frame; frames without a face are kept and listed."""
    from auspread.data.readers import probe_dataset, reader_name
    from auspread.faces.detect import DetectorOptions
    from auspread.faces.prepare import REPORT_NAME, PrepareOptions, prepare_dataset

    name = reader_name(dataset)
    if name == "auto":
        name = probe_dataset(raw)
    opts_kw = {}
    for item in option:
        k, sep, v = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        try:
            opts_kw[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            opts_kw[k.strip()] = v
    if landmarks not in ("dataset", "mediapipe"):
        from auspread.errors import ConfigError

        raise ConfigError(f"--landmarks {landmarks!r}: expected 'dataset' or 'mediapipe'")
    if out is None:
        from auspread.data.readers import read_dataset
        from auspread.data.readers.prepared import default_prepared_dir

        out = default_prepared_dir(read_dataset(name, raw, **opts_kw), name)
        typer.echo(f"output: {out}", err=True)
    opts = PrepareOptions(size=size, aligned=aligned, workers=workers, batch_size=batch_size,
                          detector=DetectorOptions(min_face_size=min_face), landmarks=landmarks,
                          landmark_model=landmark_model)
    rep = prepare_dataset(raw, out, name, opts, progress=progress, reader_options=opts_kw)
    typer.echo(f"{rep['videos_done']} videos, {rep['frames']} frames, {rep['frames_without_face']} without a face "
               f"(kept, aligned with the nearest face's transform; listed in {out / REPORT_NAME})", err=True)
