"""The sparse-labelling loop (docs/label.md):

* ``auspread suggest-labels INPUTS --budget N [--model RUN] --out MANIFEST``: which frames to label;
* ``auspread label MANIFEST [--aus 1,2,4] [--port P]``: the local labelling page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from auspread.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("suggest-labels", no_args_is_help=True)(suggest_cmd)
    app.command("label", no_args_is_help=True)(label_cmd)


def _parse_aus(text: Optional[str]) -> list[int] | None:
    if not text:
        return None
    try:
        aus = [int(t.strip().upper().removeprefix("AU")) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--aus must be AU numbers like 1,2,4,12, got {text!r}") from None
    if not aus or len(set(aus)) != len(aus):
        raise ConfigError(f"--aus must list distinct AU numbers, got {text!r}")
    return aus


def suggest_cmd(
    inputs: list[str] = typer.Argument(..., help="Videos, frame folders, folders of videos, and at most one generic "
                                                 "manifest (.csv/.json) to extend."),
    budget: int = typer.Option(..., "--budget", "-n", min=1,
                               help="Number of frames to suggest (added to the manifest)."),
    out: Path = typer.Option(..., "--out", "-o", help="The manifest to write (.csv). An existing file is only ever "
                                                      "the input manifest, extended."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A trained run (or checkpoint): choose the frames "
                                         "it is least sure of that differ most from the labelled ones."),
    aus: Optional[str] = typer.Option(None, "--aus", help="AU columns of a new manifest (default: the 12 BP4D AUs)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first pick per video (without a model)."),
    per_second: float = typer.Option(5.0, "--per-second", help="Candidate frames scanned per second of video."),
    min_gap: float = typer.Option(1.0, "--min-gap", help="Seconds between two suggested (or listed) frames."),
    fps: float = typer.Option(25.0, "--fps", help="Frame rate of frame folders."),
    no_detect: bool = typer.Option(False, "--no-detect", help="Inputs are already aligned face crops (no detection)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, … (for --model)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Choose which frames to label: key frames spread over time and appearance, or (with --model) guided by it."""
    from auspread.labelling.plan import suggest_labels
    from auspread.labelling.suggest import WholeFrame

    scorer = None
    if model is not None:
        from auspread.engine.distributed import resolve_device
        from auspread.labelling.suggest import ModelScorer
        from auspread.predict.model import load_model
        from auspread.predict.options import PredictOptions

        scorer = ModelScorer(load_model(model, resolve_device(device)), PredictOptions(no_detect=no_detect))
    path, reports = suggest_labels(inputs, budget, out, scorer=scorer, aus=_parse_aus(aus), seed=seed,
                                   per_second=per_second, min_gap=min_gap, frame_fps=fps, progress=progress,
                                   detector=WholeFrame() if no_detect else None)
    picked = sum(len(r.picked) for r in reports)
    for r in reports:
        typer.echo(f"  {r.source}: {r.frames} frames, {r.with_face} of {r.scanned} scanned with a face, "
                   f"{len(r.picked)} suggested", err=True)
    if picked < budget:
        typer.echo(f"warning: only {picked} of the {budget} frames could be suggested (frames with a face, at least "
                   f"{min_gap:g} s apart, not already listed)", err=True)
    typer.echo(f"{picked} frames suggested → {path}\nnext: auspread label {path}", err=True)


def label_cmd(
    manifest: Path = typer.Argument(..., help="The manifest to fill in (written in place, answer by answer)."),
    aus: Optional[str] = typer.Option(None, "--aus", help="AUs to ask, e.g. 1,2,4,6,12 (default: every AU column)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
    browser: bool = typer.Option(True, "--browser/--no-browser", help="Open the page in the web browser."),
) -> None:
    """Label the manifest's frames on a local page (127.0.0.1 only); stop with Ctrl+C, restart to resume."""
    from auspread.labelling.server import make_server
    from auspread.labelling.session import LabelSession

    session = LabelSession(manifest, _parse_aus(aus))
    try:
        server = make_server(session, port)
    except OSError as e:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port} ({e.strerror or e}); choose another --port") from None
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    st = session.state()
    typer.echo(f"labelling {st['total']} frames of {session.manifest.path} ({st['answered']} answered) at {url}\n"
               "every answer is saved at once; Ctrl+C stops the server", err=True)
    if browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        session.close()
        typer.echo(f"stopped; {session.state()['answered']} of {st['total']} frames answered in "
                   f"{session.manifest.path}", err=True)
