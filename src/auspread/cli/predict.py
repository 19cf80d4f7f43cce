"""``auspread predict INPUTS... --model RUN_OR_CKPT``: per-frame AU occurrence for videos, images, folders, globs.

One table per input sequence in ``--out`` (``<name>.csv`` or ``.parquet``), a sidecar ``<name>.json`` recording
the model and the run, optionally ``<name>_timeline.png`` (``--plot``) and an overlay video (``--overlay``). A bad
input is reported in the closing summary and the others are still processed; the exit code is then 2.
See docs/predict.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from auspread.errors import AuspreadError, ConfigError


def register(app: typer.Typer) -> None:
    app.command("predict", no_args_is_help=True)(predict_cmd)


def predict_cmd(
    inputs: list[str] = typer.Argument(..., help="Video files, images, folders or globs (quote globs)."),
    model: Path = typer.Option(..., "--model", "-m", help="Run folder (uses checkpoints/best.pt) or checkpoint file."),
    out: Path = typer.Option(Path("predictions"), "--out", "-o", help="Output folder."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet (parquet needs pyarrow)."),
    plot: bool = typer.Option(False, "--plot", help="Also write <name>_timeline.png."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Write the video with face box and AU bars "
                                           "(with several inputs: <stem>_<name>.mp4 next to it)."),
    detect_every: int = typer.Option(10, "--detect-every", min=1,
                                     help="Full face detection every K frames, the face tracked in between "
                                          "(1: detect on every frame)."),
    track: bool = typer.Option(True, "--track/--no-track",
                               help="Track the face between detections (--no-track: interpolate between them)."),
    all_faces: bool = typer.Option(False, "--all-faces", help="Every face with a tracked face_id (default: the largest)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    no_detect: bool = typer.Option(False, "--no-detect", help="Inputs are already aligned face crops."),
    threshold: str = typer.Option("auto", "--threshold",
                                  help="AUxx_c = AUxx_p >= threshold. auto: the per-AU thresholds chosen on the "
                                       "model's validation subjects when it has them, else 0.5; val: require them; "
                                       "or a number for every AU (0.5: the papers' protocol)."),
    min_face: int = typer.Option(40, "--min-face", min=8, help="Smallest face side to detect, in pixels."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    amp: str = typer.Option("auto", "--amp", help="auto, off or bf16 (autocast for the AU model; auto: bf16 where "
                                                  "the device computes it natively, else fp32)."),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last",
                                                 help="Channels-last memory format (default: with bf16)."),
    compile_: str = typer.Option("auto", "--compile",
                                 help="auto, on or off: torch.compile the AU model's trunks (faster on long videos "
                                      "after a one-off compile of 20-60 s; auto: videos of 5,000 frames or more on a CPU)."),
    quantize: str = typer.Option("auto", "--quantize",
                                 help="auto, int8 or off: int8 trunks calibrated on the video's first chunks (about "
                                      "2x faster than compiled fp32 on a CPU without native bf16; auto: there, on "
                                      "videos of 5,000 frames or more; needs torchao: "
                                      "pip install 'auspread[quantize]')."),
    fps: float = typer.Option(30.0, "--fps", help="Nominal frame rate of image sequences (timestamps)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="torch intra-op threads (1 is often faster on a busy machine)."),
    prefetch: bool = typer.Option(True, "--prefetch/--no-prefetch",
                                  help="Decode and detect the next frames in a background thread."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Predict AU occurrence per frame (one row per decoded frame, OpenFace-style AUxx_c columns)."""
    from auspread.progress import progress_bar

    from auspread.engine.distributed import resolve_device
    from auspread.faces.detect import DetectorOptions
    from auspread.media import expand_inputs
    from auspread.predict.model import load_model, resolve_threshold
    from auspread.predict.options import PredictOptions
    from auspread.predict.pipeline import Predictor
    from auspread.predict.writers import to_frame, write_sidecar, write_table

    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"--format must be csv or parquet, got {fmt!r}")
    if amp not in ("auto", "off", "bf16"):
        raise ConfigError(f"--amp must be auto, off or bf16, got {amp!r}")
    if compile_ not in ("auto", "off", "on"):
        raise ConfigError(f"--compile must be auto, on or off, got {compile_!r}")
    if quantize not in ("auto", "int8", "off"):
        raise ConfigError(f"--quantize must be auto, int8 or off, got {quantize!r}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("--format parquet needs pyarrow: pip install 'auspread[parquet]'") from None
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    dev = resolve_device(device)
    bundle = load_model(model, dev)
    threshold, threshold_note = resolve_threshold(threshold, bundle)
    sources = expand_inputs(inputs, image_fps=fps)
    opts = PredictOptions(detect_every=detect_every, track=track, all_faces=all_faces, no_detect=no_detect, batch_size=batch_size,
                          threshold=threshold, amp=amp, channels_last=channels_last, prefetch=prefetch,
                          compile=compile_, quantize=quantize,
                          detector=DetectorOptions(min_face_size=min_face))
    predictor = Predictor(bundle, opts)
    ext = "parquet" if fmt == "parquet" else "csv"
    summary: list[tuple[str, str]] = []
    failed = 0
    for src in sources:
        t0 = time.perf_counter()
        bar = progress_bar(total=src.num_frames_hint() if src.kind == "images" else None, desc=src.name, unit="frame",
                           disable=not progress, leave=False, every=0)  # off a terminal: one line per file
        try:
            if src.kind == "video":
                src.probe()  # zero-byte / not-a-video files fail here, before any work
                bar.total = src.num_frames_hint()
            table = predictor.predict(src, progress=bar.update)
        except AuspreadError as e:
            bar.close()
            failed += 1
            summary.append((src.path, f"FAILED: {e}"))
            continue
        bar.close()
        secs = time.perf_counter() - t0
        df = to_frame(table, threshold, all_faces and not no_detect)
        table_path = write_table(df, out / f"{src.name}.{ext}", fmt)
        frames_ok = int(df.drop_duplicates("frame")["success"].sum()) if not all_faces else \
            int(df[df["success"] == 1]["frame"].nunique())
        info = {
            "auspread_version": _version(),
            "input": str(src.path), "kind": src.kind, "fps": src.fps,
            "frames": table.num_frames, "frames_with_face": frames_ok, "rows": len(df),
            "error": table.error,
            "model": bundle.description, "aus": list(bundle.aus),
            "options": opts.model_dump(mode="json"), "device": str(dev), "thresholds": threshold_note,
            "precision": {"amp": predictor.amp, "channels_last": predictor.channels_last,
                          "compiled": predictor.compile_status, "quantized": predictor.quantize_status},
            "face_search": table.face_search,
            "model_threads": predictor.thread_decision,
            "frame_numbering": "1-based (frame = decode index + 1), as OpenFace",
            "columns": list(df.columns), "seconds": round(secs, 3),
        }
        write_sidecar(out / f"{src.name}.json", info)
        if plot:
            from auspread.predict.plots import plot_timeline

            plot_timeline(df, out / f"{src.name}_timeline.png", title=f"{src.name} ({bundle.description.get('method', '')})",
                          threshold=threshold)
        if overlay is not None:
            from auspread.predict.overlay import write_overlay

            ov = overlay if len(sources) == 1 else overlay.with_name(f"{overlay.stem}_{src.name}.mp4")
            write_overlay(src, df, ov, threshold)
        status = f"{table.num_frames} frames, {frames_ok} with a face, {table.num_frames / max(secs, 1e-9):.1f} frames/s → {table_path}"
        if table.error:
            failed += 1
            status = f"INCOMPLETE ({table.error}); {status}"
        summary.append((src.path, status))
    typer.echo(f"{len(sources) - failed} of {len(sources)} inputs done", err=True)
    for path, status in summary:
        typer.echo(f"  {path}: {status}", err=True)
    if failed:
        raise AuspreadError(f"{failed} of {len(sources)} inputs failed or are incomplete (see the summary above)")


def _version() -> str:
    from auspread import __version__

    return __version__
