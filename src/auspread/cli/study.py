"""``auspread study``: methods × label ratios × folds × seeds, resumable, with a report (``auspread.study``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from auspread.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("study", context_settings={"allow_interspersed_args": True})
    def study(
        args: Optional[List[str]] = typer.Argument(None, help="key=value overrides for every cell (method:key=value for one "
                                                   "method's cells), or `report DIR` to re-render a study's report"),
        methods: str = typer.Option("ks,supervised,pseudo-label,fixmatch,tcl", "--methods", "-m", help="comma-separated methods"),
        labels: str = typer.Option("1,2,5,10,20,50,100", "--labels", "-l", help="label ratios in percent (or every:k), comma-separated"),
        folds: str = typer.Option("1", "--folds", help="comma-separated folds, e.g. 1,2,3"),
        seeds: str = typer.Option("0", "--seeds", help="comma-separated seeds"),
        workers: int = typer.Option(1, "--workers", "-j", min=1, help="cells run at once, each in its own process"),
        out: Path = typer.Option(Path("runs/study"), "--out", "-o", help="study folder (results.jsonl, runs/, report)"),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML run config shared by every cell (data, optim, ...)"),
        configs: Optional[Path] = typer.Option(None, "--configs", help="folder with <method>_<dataset>.yaml whose method "
                                               "section sets each method's options (e.g. the repository's configs/)"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    ) -> None:
        """Run a grid of training runs and write a report (mean-F1 table, per-AU tables, F1-vs-labels curves).

        Killed and started again with the same command, it skips the cells already in DIR/results.jsonl and resumes
        a half-trained cell from its last checkpoint. `auspread study report DIR` re-renders DIR/report.{md,html}.
        """
        from auspread import study as S

        args = list(args or [])
        if args and args[0] == "report":
            if len(args) != 2:
                raise ConfigError("usage: auspread study report DIR")
            paths = S.write_report(Path(args[1]))
            for p in paths.values():
                typer.echo(str(p))
            return
        bad = [a for a in args if "=" not in a]
        if bad:
            raise ConfigError(f"unexpected argument(s) {' '.join(bad)}: overrides look like key=value "
                              f"(or use `auspread study report DIR`)")
        spec = S.StudySpec(methods=S.parse_list(methods), labels=S.parse_list(labels), folds=S.parse_list(folds, int),
                           seeds=S.parse_list(seeds, int), base=S.load_base(config), overrides=args,
                           configs_dir=str(configs) if configs else None)
        records = S.run_study(spec, out, workers=workers, progress=not quiet)
        summary = S.summarise(records, spec.methods)
        typer.echo("")
        typer.echo(S.mean_f1_table(summary, "md"))
        typer.echo(f"\nreport: {out / 'report.md'} (and report.html, f1_vs_labels.png)")
