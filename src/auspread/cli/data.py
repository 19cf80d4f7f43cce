"""``auspread data inspect PATH``: what a dataset copy holds, as the readers see it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from auspread.errors import AuspreadError

data_app = typer.Typer(help="Inspect datasets (BP4D, BP4D+, DISFA, list-file crop trees, generic manifests).",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def _parse_opts(items: list[str]) -> dict:
    """``["threshold=1", "aus=[1,2]", "camera=right"]`` → options; values are JSON when they parse as JSON."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def inspect_report(index, folds_file: Path | None = None) -> dict:
    """The JSON report of ``data inspect``: index summary plus per-AU counts and per-subject fold membership."""
    from auspread.data.folds import NUM_FOLDS, fold_test_part, subject_parts

    y = index.all_labels()
    known = (y >= 0).sum(0)
    pos = (y == 1).sum(0)
    rep = index.summary()
    subjects = index.subjects()
    parts, source = subject_parts(index.dataset, subjects, folds_file)
    test_fold_of_part = {fold_test_part(k): k for k in range(1, NUM_FOLDS + 1)}
    rep.update({
        "known_cells": int(known.sum()),
        "positive_cells": int(pos.sum()),
        "unlabelled_frames": int(len(y) - rep["labelled_frames"]),
        "per_au": [{"au": int(a), "known": int(k), "positive": int(p),
                    "base_rate": None if k == 0 else round(float(p / k), 4)} for a, k, p in zip(index.aus, known, pos)],
        "fps": index.fps,
        "skipped_frames": int(sum(v.meta.get("skipped_frames", 0) for v in index.videos)),
        "with_landmarks": int(sum(v.landmarks is not None for v in index.videos)),
        "fold_source": source,
        "subject_folds": {
            s: {"part": parts[s], "test_fold": test_fold_of_part[parts[s]],
                "videos": sum(v.subject == s for v in index.videos),
                "frames": int(sum(len(v) for v in index.videos if v.subject == s))}
            for s in subjects
        },
    })
    return rep


def _table(rep: dict) -> str:
    lines = [
        f"dataset   {rep['dataset']}   ({rep['root']})",
        f"subjects  {rep['subjects']}   videos {rep['videos']}   frames {rep['frames']}   fps {rep['fps']:g}",
        f"labelled  {rep['labelled_frames']} frames with ≥1 known AU, {rep['unlabelled_frames']} without; "
        f"{rep['unknown_cells']} unknown cells",
    ]
    if rep["skipped_frames"]:
        lines.append(f"skipped   {rep['skipped_frames']} frames without an image")
    lines.append("pixels    aligned face crops" if rep["face_crops"] else
                 "pixels    full camera frames (training uses their `auspread prepare` face crops)")
    if rep["frames_without_face"]:
        lines.append(f"no face   {rep['frames_without_face']} frames (kept, unlabelled in training)")
    lines += ["", f"{'AU':<6}{'known':>10}{'positive':>10}{'base rate':>11}"]
    for r in rep["per_au"]:
        rate = "-" if r["base_rate"] is None else f"{r['base_rate']:.3f}"
        lines.append(f"AU{r['au']:<4}{r['known']:>10}{r['positive']:>10}{rate:>11}")
    lines += ["", f"folds ({rep['fold_source']}): subject → part (test of fold)"]
    by_part: dict[int, list[str]] = {}
    for s, d in rep["subject_folds"].items():
        by_part.setdefault(d["part"], []).append(s)
    for part in sorted(by_part):
        fold = next(d["test_fold"] for d in rep["subject_folds"].values() if d["part"] == part)
        lines.append(f"  part{part} (fold {fold} test): {', '.join(by_part[part])}")
    return "\n".join(lines)


@data_app.command("inspect")
def inspect(
    path: Path = typer.Argument(..., help="Dataset root, list-file crop tree, or generic manifest (.csv/.json)."),
    dataset: str = typer.Option("auto", "--dataset", "-d", help="auto | bp4d | bp4d+ | disfa | lists | generic | prepared"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    option: list[str] = typer.Option([], "--option", "-o", help="Reader option KEY=VALUE (e.g. threshold=1, camera=right, aus=[1,2])."),
    folds: Path | None = typer.Option(None, "--folds", help="User folds file (part1/part2/part3 subject lists)."),
) -> None:
    """Subjects, videos, frames, labelled/unknown counts, per-AU base rates and fold membership."""
    from auspread.data.readers import read_dataset

    try:
        opts = _parse_opts(option)
        index = read_dataset(dataset, path, **opts)
        rep = inspect_report(index, folds)
    except AuspreadError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.exit_code)
    if as_json:
        typer.echo(json.dumps(rep, default=_json_default))
    else:
        typer.echo(_table(rep))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)
