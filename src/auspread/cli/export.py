"""``auspread export RUN --format torchscript|onnx [--out FILE]``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from auspread.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        run: Path = typer.Argument(..., help="a run folder (printed by `auspread train`)"),
        fmt: str = typer.Option("torchscript", "--format", "-f", help="torchscript or onnx"),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="output file (default RUN/export/<method>-<dataset>.pt|.onnx)"),
        check: bool = typer.Option(True, "--check/--no-check", help="compare the exported model with the original"),
    ) -> None:
        """Export a run's light inference model: (k, 3, H, W) normalised frames -> (k, U) AU probabilities.

        Only methods with a self-contained per-frame model can be exported (e.g. supervised, piap-df: the student's
        RGB AU encoder, no landmarks needed).
        """
        from auspread.export import export_run

        if fmt not in ("torchscript", "onnx"):
            raise ConfigError(f"--format must be torchscript or onnx, got {fmt!r}")
        r = export_run(run, fmt, out, check=check)
        typer.echo(f"input: (k, 3, {r.image_size}, {r.image_size}) normalised frames; output: (k, {len(r.aus)}) "
                   f"probabilities of AU {', '.join(map(str, r.aus))}")
        typer.echo("decision thresholds: " + ("per AU, chosen on the run's validation subjects: "
                                              + ", ".join(f"AU{a} {t:.2f}" for a, t in zip(r.aus, r.thresholds))
                                              if r.thresholds else "none chosen (use 0.5)") + f" ({r.sidecar.name})")
        if r.max_abs_diff is not None:
            typer.echo(f"check: max |exported - original| = {r.max_abs_diff:.2e}")
        typer.echo(str(r.path))
