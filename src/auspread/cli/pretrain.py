"""``auspread pretrain``: self-supervised pretraining of a trunk on a fold's unlabelled training frames
(docs/methods/pretraining.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def pretrain(
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, e.g. recipe.arch=resnet50 data.image_size=64 optim.epochs=30"),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML pretraining config (recipe, data, optim, probe)"),
    quick: bool = typer.Option(False, "--quick", help="smoke preset: tiny synthetic data at 32 px, 24 steps"),
    probe: bool = typer.Option(False, "--probe", help="then a linear probe (frozen trunk) on data.labels: validation mean F1, pretrained vs random weights"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue a killed run folder (cache entries resume by themselves)"),
    fold: Optional[int] = typer.Option(None, "--fold", help="standard fold 1, 2 or 3 (data.fold)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="synthetic, bp4d, bp4d+, disfa, lists, generic or prepared"),
    root: Optional[Path] = typer.Option(None, "--root", help="dataset folder (data.root)"),
    labels: Optional[str] = typer.Option(None, "--labels", help="label ratio of the linear probe, e.g. 5% (data.labels)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Pretrain a method's trunk (SimCLR with within-video negatives) on the frames of the fold's training subjects,
    labels unused; print the trunk file, which any method takes as pretrained=<file> (or pretrained=pretrain:auto).

    Without out_dir=... the run lives in the cache ($AUSPREAD_CACHE/pretrain/<dataset>-f<fold>-<size>px-<arch>-<key>):
    the same command again prints the cached trunk, or resumes a killed run.
    Examples: auspread pretrain --quick --probe   |   auspread pretrain data.synth_preset=bp4d-like --probe --labels 5%
    Multi-process: torchrun --nproc_per_node=N -m auspread pretrain ...
    """
    from auspread.engine import distributed as D
    from auspread.errors import ConfigError
    from auspread.pretrain.config import load_pretrain_config
    from auspread.pretrain.run import linear_probe, run_pretrain

    extra = [f"data.{k}={v}" for k, v in (("fold", fold), ("dataset", dataset), ("root", root), ("labels", labels))
             if v is not None]
    if resume is not None and (overrides or config is not None or quick):
        raise ConfigError("--resume continues a run with its saved config; do not pass --config, --quick or overrides")
    cfg = load_pretrain_config(config, [*extra, *(overrides or [])], quick=quick)
    try:
        s = run_pretrain(cfg, progress=not quiet, resume=resume)
    finally:
        D.cleanup()
    import os

    if os.environ.get("RANK", "0") != "0":
        return
    if s.cached:
        typer.echo(f"cached trunk (pretrained before: {s.steps} steps, {s.train_seconds / 60:.1f} min)")
    else:
        typer.echo(f"pretrained {s.epochs} epochs, {s.steps} steps in {s.train_seconds / 60:.1f} min of training "
                   f"({'fp32' if s.precision == 'off' else s.precision}); loss {s.loss_first:.3f} (first epoch) -> "
                   f"{s.loss_last:.3f} (last)")
    if probe:
        if resume is not None:  # the run's own config
            from auspread.engine.config import read_yaml_mapping
            from auspread.pretrain.config import build_pretrain_config

            cfg = build_pretrain_config(read_yaml_mapping(s.run_dir / "config.yaml"))
        res = {"pretrained": linear_probe(cfg, s.trunk, progress=not quiet), "random": linear_probe(cfg, None, progress=not quiet)}
        p = res["pretrained"]
        typer.echo(f"linear probe at labels {cfg.data.labels}, {p.train_frames} labelled frames, validation mean F1: "
                   f"pretrained {100 * p.f1:.1f} | random weights {100 * res['random'].f1:.1f} | "
                   f"all-positive predictor {100 * p.all_positive_f1:.1f}; ROC-AUC (threshold-free, 0.5 = nothing): "
                   f"pretrained {p.roc_auc:.3f} | random weights {res['random'].roc_auc:.3f}")
        from auspread.io import atomic_write_text

        atomic_write_text(s.run_dir / "probe.json", json.dumps({k: v.to_dict() for k, v in res.items()}, indent=2))
    typer.echo(str(s.trunk))


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
