"""``auspread train``, ``auspread eval`` and ``auspread cv``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import List, Optional

import typer
import yaml

from auspread.errors import ConfigError

# The README main job: `auspread train` with no --config runs this packaged config (Knowledge-Spreader at 5% labels
# on the `small` synthetic preset, auspread/resources/configs/ks_synthetic.yaml).
MAIN_JOB = "ks_synthetic.yaml"


def _main_job_defaults() -> dict:
    text = resources.files("auspread.resources").joinpath("configs", MAIN_JOB).read_text()
    return yaml.safe_load(text) or {}


def _config(config: Optional[Path], overrides: List[str], method: Optional[str] = None):
    """The run config: ``--config`` (a file or a packaged name), else the method's packaged synthetic config when
    ``--method`` is given, else the README main job; then the overrides."""
    from auspread.engine.config import load_config, packaged_configs

    if config is None and method is not None and f"{method}_synthetic" in packaged_configs():
        config = Path(f"{method}_synthetic")
    base = None if config is not None else _main_job_defaults()
    return load_config(config, list(overrides or []), base=base)


def _shortcuts(overrides, method, labels, fold, dataset, root) -> list[str]:
    """``--method ks --labels 5% --fold 2 --dataset bp4d --root DIR`` → the equivalent key=value overrides
    (placed first, so explicit key=value overrides still win)."""
    extra = []
    if method is not None:
        extra.append(f"method.name={method}")
    if labels is not None:
        extra.append(f"data.labels={labels}")
    if fold is not None:
        extra.append(f"data.fold={fold}")
    if dataset is not None:
        extra.append(f"data.dataset={dataset}")
    if root is not None:
        extra.append(f"data.root={root}")
    return [*extra, *(overrides or [])]


_METHOD_OPT = typer.Option(None, "--method", "-m", help="method name (shortcut for method.name=...; without --config uses the method's packaged synthetic config)")
_LABELS_OPT = typer.Option(None, "--labels", help="label regime, e.g. 5% or every:9 (shortcut for data.labels=...)")
_FOLD_OPT = typer.Option(None, "--fold", help="standard fold 1, 2 or 3 (shortcut for data.fold=...)")
_DATASET_OPT = typer.Option(None, "--dataset", help="synthetic, bp4d, bp4d+, disfa, lists, generic or prepared")
_ROOT_OPT = typer.Option(None, "--root", help="dataset folder (shortcut for data.root=...)")


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _print_summary(s) -> None:
    from auspread.evaluation.report import format_table

    if s.test_scores is not None:
        typer.echo("")
        typer.echo(format_table(s.test_scores, title=f"test F1 per AU (%), best epoch {s.best_epoch}, selected on {s.selected_on}"))
    lab = s.labels or {}
    if "ratio_used" in lab:
        typer.echo(f"\nlabels {lab['requested']}: {lab['key_frames']} key frames of {lab['train_labelled_frames']} labelled "
                   f"training frames ({100 * lab['ratio_used']:.2f}% used); validation: {lab['val_labelled_frames_seen']} "
                   f"of {lab['val_labelled_frames']} labelled frames seen (data.val_labels={lab['val_labels']})")
    val = "-" if s.val_f1 is None else f"{100 * s.val_f1:.1f}"
    typer.echo(f"\nval mean F1 {val} | test mean F1 {100 * s.test_f1:.1f} | {s.train_fps:.0f} training frames/s | "
               f"{s.epochs} epochs in {s.seconds / 60:.1f} min")
    if s.test_f1_all_positive is not None:
        verdict = "above" if s.test_f1 > s.test_f1_all_positive else "NOT above"
        typer.echo(f"the trivial all-positive predictor scores {100 * s.test_f1_all_positive:.1f} on the same frames: "
                   f"this model is {verdict} it")
    if s.test_f1_val_thresholds is not None:
        typer.echo(f"with per-AU thresholds chosen on the validation subjects (used by `auspread predict`): test mean "
                   f"F1 {100 * s.test_f1_val_thresholds:.1f} (results/thresholds.json)")
    typer.echo(f"results: {s.run_dir / 'results'}")
    typer.echo(str(s.run_dir))


def _methods_epilog() -> str:
    try:
        from auspread.methods.base import method_names

        return "Methods (method.name=...): " + ", ".join(method_names()) + ". Options: docs/training.md."
    except Exception:  # a method module being broken must not break the whole CLI
        return "Options: docs/training.md."


def register(app: typer.Typer) -> None:
    @app.command("train", epilog=_methods_epilog())
    def train(
        overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides, e.g. optim.lr=0.001 data.labels=5%"),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML run config or packaged name, e.g. ks_bp4d (default: the README main job, ks_synthetic)"),
        resume: Optional[Path] = typer.Option(None, "--resume", help="continue a killed run folder from its last.pt"),
        pretrained: Optional[str] = typer.Option(None, "--pretrained", help="backbone weights: imagenet or a torchvision name (IMAGENET1K_V1; from the torch cache, downloaded there if online, else a clear error), a local .pth, an auspread checkpoint, an `auspread pretrain` trunk.pt or run folder, or pretrain:auto (docs/methods/pretraining.md)"),
        method: Optional[str] = _METHOD_OPT,
        labels: Optional[str] = _LABELS_OPT,
        fold: Optional[int] = _FOLD_OPT,
        dataset: Optional[str] = _DATASET_OPT,
        root: Optional[Path] = _ROOT_OPT,
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
    ) -> None:
        """Train a method and evaluate its best (validation-selected) checkpoint on the test subjects.

        Examples: auspread train --method ks --labels 5%   |   auspread train -c ks_bp4d --root /data/BP4D --fold 2

        With no arguments (the README main job): Knowledge-Spreader at 5% labels on the `small` synthetic preset
        (generated once and cached).
        Multi-process: torchrun --nproc_per_node=N -m auspread train ...
        """
        from auspread.engine import distributed as D
        from auspread.engine.run import run_training

        overrides = _shortcuts(overrides, method, labels, fold, dataset, root)
        if pretrained is not None:
            overrides = [*(overrides or []), f"pretrained={pretrained}"]
        if resume is not None:
            if overrides or config is not None:
                raise ConfigError("--resume continues a run with its saved config; do not pass --config or overrides")
            from auspread.engine.checkpoint import LAST, load_checkpoint
            from auspread.engine.config import build_config, saved_run_config
            from auspread.engine.run import check_run_dir

            cfg = build_config(saved_run_config(load_checkpoint(check_run_dir(resume, need=LAST) / "checkpoints" / LAST)["config"]))
        else:
            cfg = _config(config, overrides or [], method)
        try:
            summary = run_training(cfg, progress=not quiet, resume=resume)
        finally:
            D.cleanup()
        if _is_main():
            _print_summary(summary)

    @app.command("eval")
    def evaluate(
        run: Path = typer.Argument(..., help="a run folder (printed by `auspread train`)"),
        data: Optional[List[str]] = typer.Option(None, "--data", help="data override key=value (repeatable), e.g. --data root=/other/BP4D"),
        split: str = typer.Option("test", "--split", help="test, val or train (all frames of those subjects)"),
        out: Optional[Path] = typer.Option(None, "--out", help="results folder (default RUN/results)"),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Evaluate a run's best checkpoint (rebuilt from the checkpoint alone): per-AU F1 table and result files."""
        from auspread.engine.run import evaluate_run
        from auspread.evaluation.report import format_table

        r = evaluate_run(run, data_overrides=list(data or []), split=split, progress=not quiet, out_dir=out)
        typer.echo(format_table(r.scores, title=f"{split} F1 per AU (%)"))
        typer.echo(f"\nmean F1 {100 * r.scores.mean_f1:.1f} | mean accuracy {100 * r.scores.mean_accuracy:.1f}")
        if r.scores_at_thresholds is not None:
            typer.echo(f"mean F1 at the per-AU thresholds chosen on the validation subjects: "
                       f"{100 * r.scores_at_thresholds.mean_f1:.1f}" + (" (chosen on these frames: optimistic)" if split == "val" else ""))
        typer.echo(str(r.out_dir))

    @app.command("calibrate")
    def calibrate(
        run: Path = typer.Argument(..., help="a finished run folder"),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Choose per-AU decision thresholds on a run's validation subjects and store them with its best checkpoint.

        Training does this at its end; this command adds them to runs trained before it did. Each AU's threshold
        is the one with the best F1 on the validation subjects (never the test subjects); `auspread predict` then
        uses them, and `auspread eval` reports F1 at them beside the protocol's 0.5 (docs/training.md, "Decision thresholds")."""
        from auspread.engine.run import calibrate_run
        from auspread.evaluation.report import format_table

        r = calibrate_run(run, progress=not quiet)
        typer.echo(format_table(r.test_scores_at_thresholds, title="test F1 per AU (%) at the validation thresholds"))
        typer.echo(f"\nthresholds ({r.thresholds.source}): {r.thresholds.describe()}")
        typer.echo(f"test mean F1 {100 * r.test_scores_at_thresholds.mean_f1:.1f} at them, "
                   f"{100 * r.test_scores.mean_f1:.1f} at the protocol's 0.5")
        typer.echo(str(r.run_dir / "results" / "thresholds.json"))

    @app.command("cv")
    def cv(
        overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides"),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML run config or packaged name, e.g. ks_bp4d (default: the README main job, ks_synthetic)"),
        folds: str = typer.Option("1,2,3", "--folds", help="comma-separated folds"),
        method: Optional[str] = _METHOD_OPT,
        labels: Optional[str] = _LABELS_OPT,
        dataset: Optional[str] = _DATASET_OPT,
        root: Optional[Path] = _ROOT_OPT,
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Train and test the three standard folds; one table with each fold and the mean (cv.md, cv.csv)."""
        from auspread.engine import distributed as D
        from auspread.engine.run import run_cv

        try:
            fs = tuple(int(f) for f in folds.split(",") if f.strip())
        except ValueError:
            raise ConfigError(f"--folds must look like 1,2,3, got {folds!r}") from None
        if not fs or any(f not in (1, 2, 3) for f in fs):
            raise ConfigError(f"--folds must be among 1, 2, 3, got {folds!r}")
        cfg = _config(config, _shortcuts(overrides, method, labels, None, dataset, root), method)
        try:
            res = run_cv(cfg, fs, progress=not quiet)
        finally:
            D.cleanup()
        if _is_main():
            typer.echo("")
            typer.echo(res.table.round(1).to_string())
            typer.echo(str(res.cv_dir))
