"""Off a terminal, progress is plain lines (one per epoch / per file), not redrawn bars (issue 20)."""

import io

import torch
from engine_fakes import FakeBatches, config, info, make_validate

from auspread.engine.config import config_to_dict
from auspread.engine.loop import Trainer, seed_everything
from auspread.engine.restore import build_method
from auspread.progress import PlainProgress, progress_bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_training_off_a_terminal_writes_one_readable_line_per_epoch(tmp_path, capsys):
    cfg = config(tmp_path, "optim.epochs=3")
    seed_everything(cfg.seed)
    t = Trainer(cfg, build_method(cfg, info(32)), FakeBatches(), make_validate(), tmp_path / "run", torch.device("cpu"),
                progress=True, checkpoint_extra={"config": config_to_dict(cfg)})
    t.fit()  # 3 epochs × 6 steps
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("supervised:")]
    assert "\r" not in err and len(lines) == 3, err
    for e, line in enumerate(lines, 1):
        assert f"{6 * e}/18 step" in line and f"epoch {e}/3 loss" in line


def test_plain_lines_every_unit_per_file_or_per_update():
    out = io.StringIO()
    with progress_bar(total=100, desc="video.mp4", unit="frame", every=0, file=out) as bar:
        for _ in range(100):
            bar.update(1)
    assert out.getvalue().count("\n") == 1 and out.getvalue().startswith("video.mp4: 100/100 frame (100%)")
    out = io.StringIO()
    assert list(progress_bar(range(3), desc="test", unit="video", file=out)) == [0, 1, 2]
    assert [l.split(",")[0] for l in out.getvalue().splitlines()] == ["test: 1/3 video (33%)", "test: 2/3 video (67%)",
                                                                      "test: 3/3 video (100%)"]
    out = io.StringIO()
    progress_bar(total=10, every=5, disable=True, file=out).update(10)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar():
    from tqdm import tqdm

    tty = _Tty()
    bar = progress_bar(total=3, desc="x", file=tty)
    assert isinstance(bar, tqdm) and not isinstance(bar, PlainProgress)
    bar.close()
    assert isinstance(progress_bar(total=3, file=io.StringIO()), PlainProgress)
