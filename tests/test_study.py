import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from auspread import study as S
from auspread.errors import ConfigError, RunError

from study_fakes import failing_runner, fake_runner

TESTS = Path(__file__).parent


def spec(**kw):
    d = dict(methods=["supervised", "pseudo-label", "fixmatch"], labels=["1", "5", "100"], folds=[1], seeds=[0],
             base={"data": {"dataset": "synthetic", "synth_preset": "tiny"}}, overrides=[])
    d.update(kw)
    return S.StudySpec(**d)


def keys(out: Path) -> list[str]:
    return [json.loads(l)["key"] for l in (out / "results.jsonl").read_text().splitlines() if l.strip()]


def calls(out: Path) -> list[str]:
    p = out / "calls.log"
    return p.read_text().split() if p.exists() else []


def test_cells_and_configs(tmp_path):
    sp = spec(overrides=["optim.epochs=2", "fixmatch:method.confidence=0.9"], seeds=[0, 1])
    cells = sp.cells()
    assert len(cells) == 3 * 3 * 2 and len({c.key for c in cells}) == len(cells)
    assert sp.labels == ["1%", "5%", "100%"]
    fm = next(c for c in cells if c.method == "fixmatch" and c.labels == "5%" and c.seed == 1)
    cfg = S.cell_config_dict(sp, fm, tmp_path / "runs")
    assert cfg["method"]["name"] == "fixmatch" and cfg["method"]["confidence"] == 0.9
    assert cfg["data"]["labels"]["every"] == 20 and cfg["seed"] == 1 and cfg["optim"]["epochs"] == 2
    assert cfg["name"] == fm.key and Path(cfg["out_dir"]) == tmp_path / "runs"
    pl = next(c for c in cells if c.method == "pseudo-label")
    assert S.cell_config_dict(sp, pl, tmp_path)["method"]["confidence"] == 0.95  # the fixmatch-only override did not leak


def test_method_section_of_configs_dir(tmp_path):
    (tmp_path / "pseudo-label_synthetic.yaml").write_text(
        "method:\n  name: pseudo-label\n  confidence: 0.8\noptim:\n  epochs: 99\n")
    sp = spec(configs_dir=str(tmp_path))
    cell = next(c for c in sp.cells() if c.method == "pseudo-label")
    cfg = S.cell_config_dict(sp, cell, tmp_path / "runs")
    assert cfg["method"]["confidence"] == 0.8 and cfg["method"]["ramp_end"] == 0.4
    assert cfg["optim"]["epochs"] != 99  # only the method section is taken
    # options given for this method in the shared --config win over the configs folder
    sp = spec(configs_dir=str(tmp_path), base={"method": {"name": "pseudo-label", "ramp_end": 0.2}})
    cfg = S.cell_config_dict(sp, cell, tmp_path / "runs")
    assert (cfg["method"]["confidence"], cfg["method"]["ramp_end"]) == (0.8, 0.2)
    fm = next(c for c in sp.cells() if c.method == "fixmatch")
    assert S.cell_config_dict(sp, fm, tmp_path / "runs")["method"]["name"] == "fixmatch"


def test_bad_inputs_are_clear():
    with pytest.raises(ConfigError, match="unknown method"):
        spec(methods=["nope"])
    with pytest.raises(ConfigError, match="labels"):
        spec(labels=["150"])


def test_interrupted_study_does_not_redo_finished_cells(tmp_path):
    out = tmp_path / "study"
    n = {"calls": 0}

    def dies_on_fourth(cfg, run_dir):
        n["calls"] += 1
        if n["calls"] == 4:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the 4th cell
        return fake_runner(cfg, run_dir)

    with pytest.raises(KeyboardInterrupt):
        S.run_study(spec(), out, runner=dies_on_fourth, progress=False)
    first = keys(out)
    assert len(first) == 3
    S.run_study(spec(), out, runner=fake_runner, progress=False)
    again = calls(out)
    assert len(again) == 3 + 6  # 3 before the interrupt, then only the 6 unfinished cells
    assert not set(first) & set(again[3:])
    assert Counter(keys(out)) == Counter(c.key for c in spec().cells())
    # a third start has nothing to do
    S.run_study(spec(), out, runner=fake_runner, progress=False)
    assert len(calls(out)) == 9


@pytest.mark.parametrize("workers", [1, 2])
def test_a_cell_another_process_is_running_is_skipped_not_restarted(tmp_path, capsys, workers):
    """Two `auspread study` processes on one folder: the second skips the cell the first holds (it must not delete
    that half-written run), runs the others, and a later start finishes the skipped one."""
    out = tmp_path / "study"
    sp = spec(labels=["5"])
    busy = sp.cells()[1]
    held = S._lock_cell(out / "runs", busy.key)  # "another process" is running this cell
    assert held is not None
    (out / "runs" / busy.key).mkdir(parents=True)
    (out / "runs" / busy.key / "partial").write_text("in progress")
    S.run_study(sp, out, runner=fake_runner, progress=False, workers=workers)
    assert busy.key not in keys(out) and len(keys(out)) == 2
    assert (out / "runs" / busy.key / "partial").is_file()
    assert "skipped: another process is running them" in capsys.readouterr().err
    held.close()
    S.run_study(sp, out, runner=fake_runner, progress=False)
    assert Counter(keys(out)) == Counter(c.key for c in sp.cells())


def test_killed_process_resumes_without_redoing_cells(tmp_path):
    out = tmp_path / "study"
    code = ("import sys; sys.path.insert(0, %r); from auspread import study as S; from study_fakes import fake_runner; "
            "sp = S.StudySpec(methods=['supervised','pseudo-label','fixmatch'], labels=['1','5','100'], folds=[1], "
            "seeds=[0], base={}, overrides=[]); S.run_study(sp, %r, runner=fake_runner, progress=False)") % (str(TESTS), str(out))
    env = dict(os.environ, FAKE_RUNNER_DELAY="0.4")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if (out / "results.jsonl").exists() and len(keys(out)) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = keys(out)
    assert 2 <= len(done_before) < 9
    started_before = len(calls(out))
    S.run_study(spec(base={}), out, runner=fake_runner, progress=False)
    rerun = calls(out)[started_before:]
    assert not set(done_before) & set(rerun)  # finished cells are never run again
    assert Counter(keys(out)) == Counter(c.key for c in spec().cells())  # each cell recorded exactly once


def test_torn_last_line_is_ignored_and_closed(tmp_path):
    p = tmp_path / "results.jsonl"
    S.append_result(p, {"key": "a", "test_f1": 0.5})
    with open(p, "a") as f:
        f.write('{"key": "b", "test_')  # a write cut by a kill
    assert [r["key"] for r in S.load_results(p)] == ["a"]
    S.append_result(p, {"key": "c", "test_f1": 0.7})
    assert [r["key"] for r in S.load_results(p)] == ["a", "c"]


def test_failed_cells_are_reported_and_retried(tmp_path):
    out = tmp_path / "study"
    with pytest.raises(RunError, match="3 of 9 cells failed"):
        S.run_study(spec(), out, runner=failing_runner, progress=False)
    assert len(keys(out)) == 6
    S.run_study(spec(), out, runner=fake_runner, progress=False)
    assert len(calls(out)) == 6 + 3 + 3 - 3  # 6 good + 3 failed attempts, then only the 3 failed cells again
    assert len(keys(out)) == 9


def test_parallel_workers_record_every_cell_once(tmp_path):
    out = tmp_path / "study"
    S.run_study(spec(methods=["supervised", "tcl"], labels=["5", "100"]), out, workers=2, runner=fake_runner,
                progress=False, report=False)
    assert sorted(keys(out)) == sorted(c.key for c in spec(methods=["supervised", "tcl"], labels=["5", "100"]).cells())


def test_report_tables_and_curves(tmp_path):
    out = tmp_path / "study"
    sp = spec(methods=["supervised", "pseudo-label", "fixmatch", "tcl", "ks"], labels=["1", "5", "20", "100"], seeds=[0, 1])
    S.run_study(sp, out, runner=fake_runner, progress=False)
    md = (out / "report.md").read_text()
    assert "| method | 1% | 5% | 20% | 100% |" in md
    # ks is best at every ratio; 1% F1 of ks = 0.52 + 0 + mean(0, 0.01) = 52.5, 5%: +0.05*log10(5) -> 56.0; std 0.7
    assert "| ks | **52.5 ± 0.7** | **56.0 ± 0.7** | **59.0 ± 0.7** | **62.5 ± 0.7** |" in md
    assert "| method | AU1 | AU2 | avg |" in md and "### 100% labels" in md
    assert "Cells finished: **40 of 40**" in md
    assert "all-positive predictor (every AU always on) scores **38.0**" in md
    assert "Training precision and CPU: precision not recorded on CPU not recorded (40 cells)." in md
    assert "For reference" not in md  # the tiny preset is not BP4D-like: no paper numbers to compare with
    html = (out / "report.html").read_text()
    assert "<table>" in html and "f1_vs_labels.png" in html
    png = (out / "f1_vs_labels.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # the report can be re-rendered on its own, and an empty study says so
    assert S.write_report(out)["md"].is_file()
    with pytest.raises(Exception, match="no finished cell"):
        S.write_report(tmp_path / "empty")


def test_cli_report_and_argument_errors(tmp_path):
    from typer.testing import CliRunner

    from auspread.cli import app

    out = tmp_path / "study"
    S.run_study(spec(), out, runner=fake_runner, progress=False, report=False)
    assert not (out / "report.md").exists()
    res = CliRunner().invoke(app, ["study", "report", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.md").is_file() and str(out / "f1_vs_labels.png") in res.output
    res = CliRunner().invoke(app, ["study", "--methods", "supervised", "oops"])
    assert res.exit_code != 0 and "key=value" in str(res.exception)
    res = CliRunner().invoke(app, ["study", "--methods", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "unknown method" in str(res.exception)


@pytest.mark.slow
def test_one_real_cell_through_the_engine(tmp_path):
    """A real (tiny) cell: trained, tested, recorded; a restart does not train it again."""
    out = tmp_path / "study"
    sp = spec(methods=["supervised"], labels=["100"],
              base={"data": {"dataset": "synthetic", "synth_preset": "tiny", "image_size": 32},
                    "optim": {"epochs": 1, "batch_size": 4, "steps_per_epoch": 2, "amp": "off"}})
    recs = S.run_study(sp, out, progress=False)
    assert len(recs) == 1 and 0.0 <= recs[0]["test_f1"] <= 1.0 and len(recs[0]["per_au"]) == 12
    assert recs[0]["precision"] == "off" and recs[0]["cpu"].endswith("bf16")  # what the report names
    run_dir = Path(recs[0]["run_dir"])
    assert (run_dir / "results" / "summary.json").is_file()
    stamp = (run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns
    S.run_study(sp, out, progress=False)
    assert (run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp
    assert len(keys(out)) == 1
    assert "| supervised |" in (out / "report.md").read_text()


def test_report_quotes_the_paper_for_bp4d_like_data(tmp_path):
    out = tmp_path / "study"
    sp = spec(methods=["supervised", "fixmatch", "ks"], labels=["1", "5"],
              base={"data": {"dataset": "synthetic", "synth_preset": "bp4d-like"}})
    S.run_study(sp, out, runner=fake_runner, progress=False)
    md = (out / "report.md").read_text()
    assert "paper's numbers on real BP4D" in md
    assert "| fixmatch | 49.9 | 59.2 |" in md and "| ks | **59.9** | **63.9** |" in md  # supplement Table 1


def test_report_names_a_preset_given_as_an_override(tmp_path):
    out = tmp_path / "study"
    sp = spec(methods=["supervised", "fixmatch"], labels=["5"], overrides=["data.synth_preset=bp4d-like", "supervised:method.dropout=0.1"])
    S.run_study(sp, out, runner=fake_runner, progress=False)
    md = (out / "report.md").read_text()
    assert "synthetic (bp4d-like preset)" in md
    assert "paper's numbers on real BP4D" in md


def test_report_counts_the_cells_of_its_own_command(tmp_path):
    """A second command on the same folder (one more method) reports its own cells as finished, and says that the
    tables also hold the earlier command's cells."""
    out = tmp_path / "study"
    S.run_study(spec(methods=["supervised", "fixmatch"], labels=["5", "100"]), out, runner=fake_runner, progress=False)
    S.run_study(spec(methods=["tcl"], labels=["5"]), out, runner=fake_runner, progress=False)
    md = (out / "report.md").read_text()
    assert "Cells finished: **1 of 1**; the tables also show 4 cells of earlier commands on this folder." in md
    assert "| tcl |" in md and "| fixmatch |" in md


def _finished_run(folder: Path, sp, cell, **changes) -> Path:
    """A run folder as the engine leaves it, trained outside the study with ``cell``'s configuration (+ changes)."""
    from auspread.engine.config import apply_overrides, build_config, dump_yaml

    cfg = S.cell_config_dict(sp, cell, folder.parent)
    cfg = apply_overrides(cfg, [f"{k}={v}" for k, v in changes.items()])
    (folder / "results").mkdir(parents=True)
    (folder / "config.yaml").write_text(dump_yaml(build_config(cfg)))
    (folder / "results" / "summary.json").write_text(json.dumps(
        {"test_f1": 0.5, "val_f1": 0.51, "test_per_au": {"AU1": 0.6}, "seconds": 60.0, "selected_on": "val",
         "run_dir": str(folder), "test_f1_all_positive": 0.4}))
    return folder


def test_an_adopted_run_is_recorded_without_training(tmp_path):
    from auspread.study.runner import adopt_run

    sp, out = spec(labels=["5", "100"]), tmp_path / "study"
    cell = next(c for c in sp.cells() if c.method == "supervised" and c.labels == "5%")
    # where and how fast it ran do not matter
    run = _finished_run(tmp_path / "elsewhere" / "sup-l5", sp, cell, name="sup-l5", threads=2, out_dir=tmp_path,
                        **{"optim.channels_last": "false", "optim.fused": "false"})  # runs saved before session 19
    link = adopt_run(sp, cell, run, out)
    assert link.resolve() == run.resolve() and adopt_run(sp, cell, run, out) == link  # idempotent
    S.run_study(sp, out, runner=fake_runner, progress=False, train=False)
    assert keys(out) == [cell.key] and calls(out) == []  # recorded, nothing trained
    rec = S.load_results(out / "results.jsonl")[0]
    assert rec["test_f1"] == 0.5 and rec["seconds"] == 60.0
    assert "Cells finished: **1 of 6**" in (out / "report.md").read_text()
    S.run_study(sp, out, runner=fake_runner, progress=False)  # a normal start trains the other five only
    assert sorted(calls(out)) == sorted(c.key for c in sp.cells() if c.key != cell.key)


@pytest.mark.parametrize("change,match", [({"seed": 1}, "seed: run 1 vs study 0"),
                                          ({"optim.lr": 0.5}, "optim.lr"),
                                          ({"data.labels": "100%"}, "data.labels")])
def test_a_run_of_another_configuration_is_refused(tmp_path, change, match):
    from auspread.study.runner import adopt_run

    sp, out = spec(labels=["5"]), tmp_path / "study"
    cell = next(c for c in sp.cells() if c.method == "supervised")
    run = _finished_run(tmp_path / "other", sp, cell, **change)
    with pytest.raises(ConfigError, match=match):
        adopt_run(sp, cell, run, out)
    assert not (out / "runs" / cell.key).exists()


def _without_val_labels(run: Path) -> None:
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    del cfg["data"]["val_labels"]  # saved before the option existed: validation subjects kept every label
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_a_run_saved_before_a_default_changed_is_not_adopted_or_resumed(tmp_path, capsys):
    from auspread.study.runner import adopt_run, run_cell

    sp, out = spec(labels=["5"]), tmp_path / "study"
    cell = next(c for c in sp.cells() if c.method == "supervised")
    run = _finished_run(tmp_path / "old", sp, cell)
    _without_val_labels(run)
    with pytest.raises(ConfigError, match="data.val_labels: run 'all' vs study 'ratio'"):
        adopt_run(sp, cell, run, out)
    with pytest.raises(ConfigError, match="data.val_labels: run 'all' vs study 'ratio'"):  # a cell's own folder
        run_cell(S.cell_config_dict(sp, cell, tmp_path), str(run))
    # cells recorded before: kept, with a warning that they were selected on every validation label
    S.append_result(out / "results.jsonl", {"key": cell.key, "method": cell.method, "labels": cell.labels,
                                            "ratio": 5.0, "fold": 1, "seed": 0, "test_f1": 0.5})
    S.run_study(sp, out, runner=fake_runner, progress=False)
    assert "1 finished cell(s) were trained with other validation labels" in capsys.readouterr().err


def test_an_unfinished_run_is_refused(tmp_path):
    from auspread.study.runner import adopt_run

    sp = spec(labels=["5"])
    cell = sp.cells()[0]
    run = _finished_run(tmp_path / "r", sp, cell)
    (run / "results" / "summary.json").unlink()
    with pytest.raises(ConfigError, match="not a finished run"):
        adopt_run(sp, cell, run, tmp_path / "study")


def test_per_au_columns_in_numeric_order():
    rec = {"key": "k", "method": "ks", "ratio": 5.0, "test_f1": 0.5, "per_au": {"AU1": 0.1, "AU10": 0.2, "AU2": 0.3}}
    assert S.summarise([rec], ["ks"])["aus"] == ["AU1", "AU2", "AU10"]


def test_report_names_each_cells_precision_and_cpu(tmp_path):
    """bf16 and fp32 cells, or cells of two machines, are told apart; an older record without them is read from its
    run folder's summary.json."""
    out = tmp_path / "study"

    def runner(cfg, run_dir):
        r = fake_runner(cfg, run_dir)
        if cfg["method"]["name"] == "supervised":  # an old record: the machine only in the run's summary.json
            (Path(run_dir) / "results").mkdir(parents=True)
            (Path(run_dir) / "results" / "summary.json").write_text(json.dumps({"precision": "off", "cpu": "EPYC"}))
            return r
        return {**r, "precision": "bf16", "cpu": "Xeon, 2 CPUs, native bf16"}

    S.run_study(spec(labels=["5"]), out, runner=runner, progress=False)
    md = (out / "report.md").read_text()
    assert ("Training precision and CPU: bf16 on Xeon, 2 CPUs, native bf16 (2 cells); fp32 on EPYC (1 cell)."
            in md), md


def test_report_adds_the_validation_threshold_table_when_cells_have_it(tmp_path):
    """F1 at validation-chosen thresholds: from the record, else from the run's summary.json (a cell calibrated
    after it was recorded); a cell without it shows –, and a study where none has it shows no such table."""
    out = tmp_path / "study"

    def runner(cfg, run_dir):
        r = fake_runner(cfg, run_dir)
        name = cfg["method"]["name"]
        if name == "supervised":
            return {**r, "test_f1_val_thresholds": 0.61}
        if name == "pseudo-label":  # calibrated later: only in its summary.json
            (Path(run_dir) / "results").mkdir(parents=True)
            (Path(run_dir) / "results" / "summary.json").write_text(json.dumps({"test_f1_val_thresholds": 0.55}))
        return r

    S.run_study(spec(labels=["5"]), out, runner=runner, progress=False)
    md = (out / "report.md").read_text()
    assert "per-AU thresholds chosen on each run's validation subjects" in md
    assert "| supervised | **61.0** |" in md and "| pseudo-label | 55.0 |" in md and "| fixmatch | – |" in md
    plain = tmp_path / "plain"
    S.run_study(spec(labels=["5"]), plain, runner=fake_runner, progress=False)
    assert "validation subjects and applied" not in (plain / "report.md").read_text()
    width = lambda png: int.from_bytes(png.read_bytes()[16:20], "big")  # noqa: E731 (PNG IHDR width)
    assert width(out / "f1_vs_labels.png") == 2 * width(plain / "f1_vs_labels.png")  # a second panel for them
