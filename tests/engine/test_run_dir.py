"""Concurrent runs never share a run folder (issue 20): the folder is claimed with an exclusive mkdir."""

import json
import multiprocessing as mp
import threading

from engine_fakes import config

from auspread.engine.logging import RunLogger, read_metrics
from auspread.engine.run import _new_run_dir, claim_run_dir

N = 8


def test_claim_takes_next_suffix_when_taken(tmp_path):
    (tmp_path / "run").mkdir()  # an existing folder, even empty, is never shared
    assert claim_run_dir(tmp_path / "run") == tmp_path / "run-2"
    assert claim_run_dir(tmp_path / "run") == tmp_path / "run-3"
    assert claim_run_dir(tmp_path / "sub" / "new") == tmp_path / "sub" / "new"


def test_threads_starting_together_get_own_folders_and_metrics(tmp_path):
    cfg = config(tmp_path, "name=same")
    gate = threading.Barrier(N)
    dirs = [None] * N

    def run(i):
        gate.wait()
        d = _new_run_dir(cfg)
        dirs[i] = d
        log = RunLogger(d, tensorboard=False)
        for step in range(5):
            log.log("train", step, 1, {"run": i})

    threads = [threading.Thread(target=run, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(dirs)) == N
    for i, d in enumerate(dirs):
        recs = read_metrics(d)
        assert [r["run"] for r in recs] == [i] * 5


def _claim_in_process(out_dir, gate, queue, i):
    cfg = config(out_dir)  # the same arguments in every process: the default name carries a timestamp
    gate.wait()
    d = _new_run_dir(cfg)
    (d / "metrics.jsonl").write_text(json.dumps({"run": i}) + "\n")
    queue.put(str(d))


def test_eight_processes_started_together_end_in_eight_folders(tmp_path):
    ctx = mp.get_context("fork")  # cheap: the parent has already imported torch
    gate, queue = ctx.Barrier(N), ctx.Queue()
    procs = [ctx.Process(target=_claim_in_process, args=(tmp_path, gate, queue, i)) for i in range(N)]
    for p in procs:
        p.start()
    dirs = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(dirs)) == N
    runs = sorted(json.loads(open(f"{d}/metrics.jsonl").read())["run"] for d in dirs)
    assert runs == list(range(N))
