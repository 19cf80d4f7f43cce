"""``auspread synth OUT``: generate the synthetic face-video benchmark (BP4D or DISFA layout) or its preview."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def synth(
    out: Optional[Path] = typer.Argument(None, help="dataset folder to create (not needed with --preview)"),
    preset: str = typer.Option("small", "--preset", help="tiny | small | wide | bp4d-like | disfa-like"),
    fmt: Optional[str] = typer.Option(None, "--format", help="bp4d | disfa (default: the preset's, else bp4d)"),
    subjects: Optional[int] = typer.Option(None, "--subjects", help="number of subjects (round-robin over fold parts)"),
    tasks: Optional[int] = typer.Option(None, "--tasks", help="BP4D tasks per subject"),
    frames: Optional[int] = typer.Option(None, "--frames", help="mean frames per video"),
    size: Optional[int] = typer.Option(None, "--size", help="frame side in pixels"),
    seed: int = typer.Option(0, "--seed"),
    label_noise: Optional[float] = typer.Option(None, "--label-noise", help="chance an event boundary is shifted (0-1)"),
    workers: int = typer.Option(0, "--workers", help="processes (0 = automatic)"),
    force: bool = typer.Option(False, "--force", help="replace a non-empty OUT"),
    preview: Optional[Path] = typer.Option(None, "--preview", help="write a contact sheet PNG (+ _timeline.png) instead"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Generate a synthetic AU video dataset with exact ground truth (see docs/synthetic.md)."""
    from auspread.data.synth import generate, resolve_config
    from auspread.errors import ConfigError

    overrides = dict(subjects=subjects, tasks=tasks, frames=frames, size=size, label_noise=label_noise)
    if fmt is not None and fmt not in ("bp4d", "disfa"):
        raise ConfigError(f"--format must be bp4d or disfa, got {fmt!r}")
    if preview is not None:
        from auspread.data.synth.preview import write_preview

        cfg = resolve_config(preset, fmt, seed=seed, **overrides)
        sheet, tl = write_preview(cfg, preview)
        typer.echo(f"wrote {sheet} and {tl}")
        if out is None:
            return
    if out is None:
        raise ConfigError("give the output folder OUT (or --preview OUT.png)")
    path = generate(out, preset, fmt, seed=seed, force=force, progress=not quiet, workers=workers, **overrides)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
