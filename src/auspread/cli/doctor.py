"""``auspread doctor``: the first command to run on a new (GPU) machine (docs/training.md, "Check a new machine")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer


def doctor(
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    methods: Optional[str] = typer.Option(None, "--methods", "-m", help="comma-separated methods (default: all)"),
    steps: int = typer.Option(3, "--steps", min=1, help="timed steps per method (after one first-epoch and one warm-up step)"),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=32, help="override the configs' image size (e.g. 32 for a fast CPU check)"),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="override the configs' data.num_workers"),
    loader_steps: Optional[int] = typer.Option(None, "--loader-steps", min=1, help="batches timed for the loader (default max(steps, 3 x workers))"),
    distributed: Optional[bool] = typer.Option(None, "--distributed/--no-distributed", help="also run one method as a 2-process torchrun (default: when there are 2 or more GPUs; on CPU it uses gloo)"),
    root: Optional[Path] = typer.Option(None, "--root", help="a BP4D-layout dataset to use instead of the generated synthetic one"),
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="folder for the synthetic data, frame store and scratch runs (default: a temporary folder, removed afterwards)"),
    overrides: Optional[List[str]] = typer.Option(None, "--set", help="key=value override for every method's config (repeatable), e.g. --set optim.batch_size=8"),
) -> None:
    """Check that this machine trains every method at the packaged real-data settings (`<method>_bp4d`): a few
    steps each on a small synthetic tree in the real BP4D layout, with the AMP, channels-last, fused optimiser and
    loader workers a real run resolves. Prints, per method, the step time, peak memory, the frames/s the step
    consumes and the frames/s the training loader delivers alone. With 2 or more GPUs it also runs one method as a
    2-process torchrun over NCCL. Random weights: it checks mechanics and speed, not accuracy.

    Example: auspread doctor --device cuda   |   fast CPU check: auspread doctor --device cpu --image-size 32 --steps 1
    """
    from auspread import doctor as doc
    from auspread.methods.base import method_names
    from auspread.engine import distributed as D
    from auspread.errors import ConfigError

    names = method_names()
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else names
    unknown = [m for m in chosen if m not in names]
    if unknown or not chosen:
        raise ConfigError(f"--methods: unknown method(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(names)}")
    dev = D.resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    world = D.env_world_size()
    dist = D.init_distributed(dev) if world > 1 else D.DistInfo()
    echo = typer.echo if dist.is_main else (lambda *_a, **_k: None)
    base, tmp = doc.make_workdir(workdir)
    try:
        def make_config(m: str, data_root: Path = Path(".")):
            return doc.method_config(m, data_root, base / "frames", base / "runs", device, image_size, workers,
                                     list(overrides or []))

        if root is None:  # one synthetic tree at the largest frame-store size of the chosen configs
            size = max(make_config(m).data.resolved_store_size for m in chosen)
            if dist.is_main:
                echo(f"generating a synthetic BP4D-layout tree ({doc.SYNTH_PRESET} preset, {size} px frames) in {base}")
                data_root = doc.synthetic_tree(base / "data", size)
            D.barrier()
            data_root = doc.synthetic_tree(base / "data", size)
        else:
            data_root = root
        import torch

        echo(f"device: {dev} — {doc.device_description(dev)}; torch {torch.__version__}; {world} process(es)")
        echo(doc.RANDOM_WEIGHTS)
        echo(f"data: {data_root}")
        checks = doc.run_checks(chosen, lambda m: make_config(m, data_root), steps, dist, loader_steps, echo)
        echo("")
        echo(doc.format_table(checks, dev))
        for line in doc.verdicts(checks):
            echo(line)
        failed = [c.method for c in checks if not c.ok]
        gpus = torch.cuda.device_count() if dev.type == "cuda" else 0
        if world == 1 and wants_two_processes(distributed, dev, gpus):
            failed += _two_processes(doc, checks, dev, data_root, base, steps, image_size, workers, overrides)
        if failed and dist.is_main:
            typer.echo(f"doctor: {len(failed)} check(s) failed: {', '.join(failed)} (tracebacks above)", err=True)
    finally:
        D.cleanup()
        if tmp is not None:  # each process its own temporary folder
            tmp.cleanup()
    if failed:
        raise typer.Exit(1)


def wants_two_processes(flag: Optional[bool], dev, gpus: int) -> bool:
    """``--distributed/--no-distributed`` as given; by default a 2-process check where there are 2 or more GPUs."""
    return flag if flag is not None else (dev.type == "cuda" and gpus >= 2)


def _two_processes(doc, checks, dev, data_root, base, steps, image_size, workers, overrides) -> list[str]:
    """Run the first method that passed as a 2-process torchrun (NCCL on GPUs, gloo on CPU); its name in a list
    when it fails."""
    ok = [c.method for c in checks if c.ok]
    if not ok:
        return []
    m = ok[0]
    backend = "NCCL" if dev.type == "cuda" else "gloo"
    typer.echo(f"\n2-process torchrun ({backend}) of {m}:")
    args = ["--device", dev.type, "--methods", m, "--steps", str(steps), "--root", str(data_root),
            "--workdir", str(base), "--no-distributed"]
    if image_size is not None:
        args += ["--image-size", str(image_size)]
    if workers is not None:
        args += ["--workers", str(workers)]
    for o in overrides or []:
        args += ["--set", o]
    rc, out = doc.run_torchrun(args)
    table = [line for line in out.splitlines() if not line.startswith(("device:", "weights:", "data:"))]
    typer.echo("\n".join(table).strip())
    if rc != 0:
        typer.echo(f"torchrun exited with code {rc}", err=True)
        return [f"{m} (2 processes, {backend})"]
    return []


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
