"""``auspread doctor``'s CPU path: every requested method trains a few steps at its packaged BP4D settings on a
synthetic BP4D-layout tree, a failing method is reported while the others still run, and the output says the
weights are random."""

import math
from auspread import doctor as doc
from cli_runner import run_cli

FAST = ["--device", "cpu", "--image-size", "32", "--steps", "1", "--workers", "0"]


def table_rows(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("method "))
    return {l.split()[0]: l.split() for l in lines[start + 1:] if l.strip() and not l.startswith(" ")}


def test_method_config_is_the_packaged_bp4d_config_with_random_weights(tmp_path):
    cfg = doc.method_config("ks", tmp_path / "data", tmp_path / "frames", tmp_path / "runs", "cpu")
    assert cfg.pretrained is None  # the packaged config says imagenet; the doctor never claims it
    assert cfg.data.dataset == "bp4d" and cfg.data.image_size == 224 and cfg.data.num_workers == 4
    assert cfg.optim.amp == "auto" and cfg.optim.batch_size == 16 and cfg.method.clip_len == 5
    small = doc.method_config("mdhr", tmp_path, tmp_path, tmp_path, "cpu", image_size=32, workers=0)
    assert small.data.image_size == 32 and small.data.resolved_store_size == 37 and small.data.num_workers == 0


def doctor(args, capsys, monkeypatch):
    """``auspread doctor ARGS`` through the real entry point: (exit code, stdout, stderr)."""
    import sys

    from auspread.cli import main

    monkeypatch.setattr(sys, "argv", ["auspread", "doctor", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_doctor_cpu_two_methods(tmp_path, capsys, monkeypatch):
    code, out, err = doctor([*FAST, "--methods", "supervised,ks", "--workdir", tmp_path], capsys, monkeypatch)
    assert code == 0, err
    assert "weights: random initialisation" in out and "tiny-bp4d-37px" in out
    rows = table_rows(out)
    assert set(rows) == {"supervised", "ks"}
    for name, frames in (("supervised", 64), ("ks", 160)):  # the packaged batches: 64 frames; 16+16 clips of 5
        r = rows[name]
        assert r[1] == "1" and r[2] in ("bf16", "fp32") and r[4] == "32" and int(r[5]) == frames
        step_ms, mem, step_fps, loader_fps = (float(v.replace(",", "")) for v in (r[6], r[7], r[8], r[9]))
        assert step_ms > 0 and mem > 0 and loader_fps > 0
        assert math.isclose(step_fps, frames / (step_ms / 1000), rel_tol=0.01)
        assert r[10] == "0" and r[11] == "loader"


def test_doctor_reports_a_failure_and_runs_the_others(tmp_path, capsys, monkeypatch):
    real = doc.check_method

    def broken_ks(cfg, **kw):
        if cfg.method.name == "ks":
            raise RuntimeError("CUDA error: out of memory (simulated)")
        return real(cfg, **kw)

    monkeypatch.setattr(doc, "check_method", broken_ks)
    code, out, err = doctor([*FAST, "--methods", "ks,supervised", "--workdir", tmp_path], capsys, monkeypatch)
    assert code == 1
    rows = table_rows(out)
    assert rows["ks"][2] == "FAILED" and "out of memory" in out
    assert rows["supervised"][2] in ("bf16", "fp32") and float(rows["supervised"][6]) > 0  # it still ran
    assert "1 check(s) failed: ks" in err


def test_unknown_method_is_a_clear_error(capsys):
    code, err = run_cli(["doctor", "--device", "cpu", "--methods", "nope"], capsys)
    assert code == 2 and "unknown method(s) nope" in err


def test_loader_verdict():
    fast = doc.MethodCheck("ks", frames_per_step=160, step_seconds=0.1, loader_fps=800.0, loader_workers=4)
    assert math.isclose(fast.step_fps, 1600) and math.isclose(fast.loader_ratio, 0.5)
    (line,) = doc.verdicts([fast])
    assert "data.augment_on=device" in line and "4 workers" in line
    two = doc.MethodCheck("ks", world_size=2, frames_per_step=160, step_seconds=0.1, loader_fps=800.0)
    assert math.isclose(two.loader_ratio, 1.0) and doc.verdicts([two]) == []  # per process: 800 vs 800
    assert doc.verdicts([doc.MethodCheck("ks", error="boom")]) == []


def test_two_process_check_where_there_are_two_gpus():
    import torch

    from auspread.cli.doctor import wants_two_processes

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert wants_two_processes(None, cuda, 2) and wants_two_processes(None, cuda, 8)
    assert not wants_two_processes(None, cuda, 1) and not wants_two_processes(None, cpu, 0)
    assert wants_two_processes(True, cpu, 0) and not wants_two_processes(False, cuda, 4)


def test_two_process_check_launches_torchrun_over_nccl_on_gpus(tmp_path, capsys, monkeypatch):
    """Faked GPUs: the first method that passed runs under torchrun on the same data; a failure is named."""
    import torch

    from auspread.cli.doctor import _two_processes

    calls = []

    def fake_torchrun(args, nproc=2, timeout=3600):
        calls.append(args)
        return (1, "supervised: FAILED (NCCL error)\n") if len(calls) > 1 else (0, "data: x\nsupervised  2  bf16\n")

    monkeypatch.setattr(doc, "run_torchrun", fake_torchrun)
    checks = [doc.MethodCheck("ks", error="boom"), doc.MethodCheck("supervised")]
    cuda = torch.device("cuda", 0)
    assert _two_processes(doc, checks, cuda, tmp_path / "d", tmp_path, 3, None, 8, ["optim.batch_size=8"]) == []
    args = calls[0]
    for pair in (["--device", "cuda"], ["--methods", "supervised"], ["--root", str(tmp_path / "d")],
                 ["--workers", "8"], ["--set", "optim.batch_size=8"]):
        i = args.index(pair[0])
        assert args[i:i + 2] == pair
    assert "--no-distributed" in args
    out = capsys.readouterr().out
    assert "2-process torchrun (NCCL) of supervised" in out and "supervised  2  bf16" in out and "data: x" not in out
    failed = _two_processes(doc, checks, cuda, tmp_path / "d", tmp_path, 3, None, None, None)
    assert failed == ["supervised (2 processes, NCCL)"]
    assert "--workers" not in calls[1]


def test_torchrun_command_is_two_local_processes():
    cmd = doc.torchrun_command(["--methods", "ks"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=2" in cmd
    assert cmd[-4:] == ["auspread", "doctor", "--methods", "ks"]


def test_doctor_trains_with_augmentation_on_the_device(tmp_path, capsys, monkeypatch):
    """FixMatch (weak and strong views, a nested unlabelled batch) through the engine's step with data.augment_on=device."""
    code, out, err = doctor([*FAST, "--methods", "fixmatch", "--workdir", tmp_path, "--set", "optim.batch_size=2",
                             "--set", "data.augment_on=device"], capsys, monkeypatch)
    assert code == 0, err
    r = table_rows(out)["fixmatch"]
    assert r[11] == "device" and int(r[5]) == 2 + 2 * 7  # 2 labelled + 14 unlabelled clips of 1 frame
