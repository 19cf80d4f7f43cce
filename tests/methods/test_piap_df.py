"""PIAP-DF: stage scheduling, each stage's training on fake batches, Discrete Feedback, inference/export."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from auspread.engine.config import OptimConfig
from auspread.engine.loop import LRSchedule, optimizer_factory
from auspread.errors import ConfigError
from auspread.methods.base import StepContext
from auspread.methods.piap_df import PIAPDF, PIAPDFOptions, discrete_feedback_step

from . import fakes

SIZE = 32
SMALL = dict(encoder="small", width=4, generator_width=4, decoder_width=4, dropout=0.0)
ONE = dict(pi1=1, pi2=1, person=1, main=1, df=1)


def _method(variant="piap-df", **kw) -> PIAPDF:
    torch.manual_seed(0)
    opts = PIAPDFOptions(variant=variant, **{**SMALL, "stage_epochs": ONE, **kw})
    return PIAPDF(opts, fakes.info(SIZE))


def _landmarks(b: int) -> torch.Tensor:
    """A plausible face layout scaled to SIZE (the synthetic generator's neutral landmarks)."""
    from auspread.data.synth.config import resolve_config
    from auspread.data.synth.face import neutral_landmarks
    from auspread.data.synth.generator import make_subject

    lm = torch.tensor(neutral_landmarks(make_subject(resolve_config("tiny"), "F001"), SIZE), dtype=torch.float32)
    return lm.expand(b, 1, 68, 2).clone()


def _batch(seed=0, b=4, mu=0.0):
    g = torch.Generator().manual_seed(seed)
    batch = fakes.batch(g, b, 1, mu=mu, size=SIZE)
    batch["landmarks"] = _landmarks(b)
    batch["subject"] = torch.tensor([0, 1] * (b // 2))
    if mu:
        batch["unlabelled"]["landmarks"] = _landmarks(int(mu * b))
    return batch


def _ctx(m: PIAPDF, epoch: int, step: int, opts) -> StepContext:
    return StepContext(epoch=epoch, step=step, batch_in_epoch=step, steps_per_epoch=100, epochs=m.total_epochs,
                       device=torch.device("cpu"), optimizers=opts)


# --- stage scheduling ------------------------------------------------------------------------------------------
def test_variants_run_the_stages_of_table3_in_order():
    m = _method("piap-df", stage_epochs=dict(pi1=1, pi2=2, person=1, main=3, df=2))
    assert m.stages == ("pi1", "pi2", "person", "main", "df") and m.total_epochs == 9
    assert [m.stage_of(e) for e in range(9)] == ["pi1", "pi2", "pi2", "person", "main", "main", "main", "df", "df"]
    assert m.schedule_restarts() == [1, 3, 4, 7]
    assert [m.selectable_epoch(e) for e in range(1, 10)] == [False] * 7 + [True] * 2  # only the df stage
    spec = m.data_spec()
    assert spec.landmarks and spec.unlabelled_ratio == 1.0 and spec.unlabelled_from_epoch == 7
    assert _method("pi-2").stages == ("pi1", "pi2") and not hasattr(_method("pi-2"), "main")
    assert _method("pi-3").stages == ("pi1", "pi2", "main") and _method("pi-3").main.decoder is not None
    ap = _method("ap")
    assert ap.stages == ("person", "main") and ap.main.decoder is None and not ap.data_spec().landmarks
    df = _method("df")
    assert df.stages == ("main", "df") and df.use_pi is False and df.use_ap is False
    assert _method("piap").stages == ("pi1", "pi2", "person", "main")
    assert _method("baseline").data_spec().unlabelled_ratio == 0


def test_epoch_mismatch_is_a_clear_config_error():
    m = _method("pi-3")
    opts = m.configure_optimizers(optimizer_factory(OptimConfig(lr=0.01)))
    ctx = _ctx(m, 0, 0, opts)
    ctx.epochs = 20
    with pytest.raises(ConfigError, match="optim.epochs=3"):
        m.train_step(_batch(), ctx)


def test_schedule_restarts_at_each_stage():
    m = _method("pi-3", stage_epochs=dict(pi1=1, pi2=1, main=2))
    opts = m.configure_optimizers(optimizer_factory(OptimConfig(lr=1.0, epochs=4)))
    sched = LRSchedule(OptimConfig(lr=1.0, epochs=4, schedule="cosine"), 10, opts, m.schedule_restarts())
    f = [sched.factor(s) for s in range(40)]
    assert f[0] == f[10] == f[20] == 1.0  # each stage starts at the full rate
    assert f[9] < 0.05 and f[19] < 0.05 and f[30] == pytest.approx(0.5)


# --- each stage trains (loss falls on a fixed batch) -------------------------------------------------------------
@pytest.mark.parametrize("stage", ["pi1", "pi2", "person", "main", "df"])
def test_each_stage_reduces_its_loss(stage):
    m = _method("piap-df")
    opts = m.configure_optimizers(optimizer_factory(OptimConfig(optimizer="adam", lr=3e-3, weight_decay=0.0)))
    epoch = m.stage_start[stage]
    batch = _batch(1, b=8, mu=1.0 if stage == "df" else 0.0)
    losses = []
    m.train()
    for step in range(8):
        out = m.train_step(batch, _ctx(m, epoch, step, opts))
        assert out.loss is None and out.logs["stage"] == m.stages.index(stage)
        losses.append(out.logs["loss"])
    assert sum(losses[-2:]) / 2 < losses[0], losses


def test_main_stage_reports_the_active_terms_and_freezes_targets():
    m = _method("piap")
    opts = m.configure_optimizers(optimizer_factory(OptimConfig(lr=0.01)))
    gen_before = copy.deepcopy(m.generator.state_dict())
    person_before = copy.deepcopy(m.person.state_dict())
    m.train()
    out = m.train_step(_batch(), _ctx(m, m.stage_start["main"], 0, opts))
    assert {"l_au", "l_pi", "l_ap"} <= set(out.logs)
    w = m.options.weights
    expected = (w.au * out.logs["l_au"] + w.pi * out.logs["l_pi"] + w.ap * out.logs["l_ap"]) / (w.au + w.pi + w.ap)
    assert out.logs["loss"] == pytest.approx(expected, rel=1e-5)
    for k, v in m.generator.state_dict().items():  # frozen: weights and BN statistics unchanged
        assert torch.equal(v, gen_before[k]), k
    for k, v in m.person.state_dict().items():
        assert torch.equal(v, person_before[k]), k


@pytest.mark.parametrize("variant, term, weight", [("pi-3", "l_pi", 0.3), ("ap", "l_ap", 0.1)])
def test_pi3_and_ap_main_stages_are_eq3_and_eq5(variant, term, weight):
    """Eq. 3 (PI-3): L = α L_AU + (1 − α) L_PI; Eq. 5 (AP): L = β L_AU + (1 − β) L_AP; α (β) = au / (au + pi (ap))."""
    m = _method(variant, weights={"au": 0.6, "pi": 0.3, "ap": 0.1})
    opts = m.configure_optimizers(optimizer_factory(OptimConfig(lr=0.01)))
    m.train()
    out = m.train_step(_batch(), _ctx(m, m.stage_start["main"], 0, opts))
    assert term in out.logs and not ({"l_pi", "l_ap"} - {term}) & set(out.logs)
    a = 0.6 / (0.6 + weight)
    assert out.logs["loss"] == pytest.approx(a * out.logs["l_au"] + (1 - a) * out.logs[term], rel=1e-5)


def test_df_stage_copies_the_main_model_into_the_teacher_first():
    m = _method("df")
    opts = m.configure_optimizers(optimizer_factory(OptimConfig(lr=1e-12, momentum=0.0, weight_decay=0.0)))
    with torch.no_grad():
        for p in m.main.parameters():
            p.add_(1.0)
    assert not bool(m.df_ready)
    m.train_step(_batch(mu=1.0), _ctx(m, m.stage_start["df"], 0, opts))
    assert bool(m.df_ready)
    for (k, a), b in zip(m.main.state_dict().items(), m.teacher.state_dict().values()):
        if a.dtype.is_floating_point and "running" not in k:
            assert torch.equal(a, b), k


def test_person_weights_replace_the_person_stage(tmp_path):
    src = _method("ap")
    path = tmp_path / "person.pt"
    torch.save(src.person.state_dict(), path)
    m = _method("piap", person_weights=path)
    assert "person" not in m.stages
    for k, v in src.person.encoder.state_dict().items():
        assert torch.equal(m.person.encoder.state_dict()[k], v)
    with pytest.raises(ConfigError, match="not found"):
        _method("ap", person_weights=tmp_path / "missing.pt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="no person encoder"):
        _method("ap", person_weights=tmp_path / "bad.pt")


# --- Discrete Feedback on a toy problem ----------------------------------------------------------------------------
def _toy(w_teacher: float, feedback: str, enabled: bool = True, scaler=None):
    """1-D logistic teacher and student (one weight each, no bias) on symmetric separable data: y = [x > 0]."""
    x = torch.linspace(-2, 2, 16).view(-1, 1)
    y = (x > 0).float()
    teacher, student = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        teacher.weight.fill_(w_teacher)
        student.weight.fill_(0.0)
    t_opt = torch.optim.SGD(teacher.parameters(), lr=0.5)
    s_opt = torch.optim.SGD(student.parameters(), lr=0.5)
    r = discrete_feedback_step(teacher, student, lambda out, lab, split: F.binary_cross_entropy_with_logits(out, lab),
                               lambda out: (out > 0).float(), x, x, y, t_opt, s_opt, enabled, feedback=feedback,
                               scaler=scaler)
    return float(teacher.weight.detach()), r


@pytest.mark.parametrize("feedback", ["gradient", "loss_change"])
def test_teacher_moves_towards_pseudo_labels_that_helped_the_student(feedback):
    # right teacher (w > 0): its pseudo-labels are the truth, the student's labelled loss falls -> feedback 1
    w_help, r_help = _toy(0.5, feedback)
    w_help_off, r_off = _toy(0.5, feedback, enabled=False)  # sigma = 0: only the teacher's labelled gradient
    assert r_help.fb > 0 and r_help.fb_discrete == 1.0 and r_off.fb_discrete == 0.0
    assert w_help > w_help_off  # reinforced: more confident in the pseudo-labels that helped
    # wrong teacher (w < 0): inverted pseudo-labels, the student's labelled loss rises -> feedback -0.1
    w_hurt, r_hurt = _toy(-0.5, feedback)
    w_hurt_off, _ = _toy(-0.5, feedback, enabled=False)
    assert r_hurt.fb < 0 and r_hurt.fb_discrete == -0.1
    assert w_hurt > w_hurt_off  # pushed away from the pseudo-labels that hurt (towards the truth)
    # on symmetric data the two feedback moves are mirror images scaled by h: 1 vs -0.1
    assert (w_hurt - w_hurt_off) == pytest.approx(0.1 * (w_help - w_help_off), rel=1e-4)


def test_disabled_feedback_is_the_labelled_update_only():
    w, _ = _toy(0.5, "gradient", enabled=False)
    x = torch.linspace(-2, 2, 16).view(-1, 1)
    wt = torch.tensor([[0.5]], requires_grad=True)
    F.binary_cross_entropy_with_logits(x @ wt.T, (x > 0).float()).backward()
    assert w == pytest.approx(0.5 - 0.5 * float(wt.grad), rel=1e-6)


# --- fp16 gradient scaling (GPUs without native bf16) ------------------------------------------------------------
@pytest.mark.parametrize("feedback", ["gradient", "loss_change"])
def test_df_step_through_a_grad_scaler_is_the_unscaled_step(feedback):
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)
    w_plain, r_plain = _toy(0.5, feedback)
    w_scaled, r_scaled = _toy(0.5, feedback, scaler=scaler)
    assert w_scaled == pytest.approx(w_plain, rel=1e-5) and r_scaled.fb == pytest.approx(r_plain.fb, rel=1e-5)
    assert scaler.get_scale() == 2048.0  # one update after the step, both optimisers' gradients finite


def test_stage_updates_step_through_the_context_scaler():
    """A stage's update with ctx.scaler equals the plain update (gradients unscaled before SGD steps), and the scale
    is updated once per step."""
    batch = _batch(1, b=4)
    after = []
    for scaler in (None, torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)):
        m = _method("baseline", stage_epochs={"main": 1})
        opts = m.configure_optimizers(optimizer_factory(OptimConfig(optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.0)))
        m.train()
        m.train_step(batch, StepContext(epoch=0, step=0, batch_in_epoch=0, steps_per_epoch=1, epochs=m.total_epochs,
                                        device=torch.device("cpu"), optimizers=opts, scaler=scaler))
        after.append(torch.cat([p.detach().flatten() for p in m.main.parameters()]))
        if scaler is not None:
            assert scaler.get_scale() == 2048.0
    assert torch.allclose(after[0], after[1], rtol=1e-4, atol=1e-6)


# --- inference -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["piap-df", "pi-2"])
def test_inference_model_is_light_and_matches_predict(variant):
    m = _method(variant).eval()
    x = torch.randn(3, 3, SIZE, SIZE)
    probs = m.predict_frames(x)
    assert probs.shape == (3, 3) and float(probs.min()) >= 0 and float(probs.max()) <= 1
    light = m.export_module()
    assert torch.allclose(light(x), probs, atol=1e-6)
    n_light = sum(p.numel() for p in light.parameters())
    if variant == "piap-df":  # only the student's encoder and head: no teacher, decoder, generator or person net
        expected = sum(p.numel() for p in m.main.encoder.parameters()) + sum(p.numel() for p in m.main.head.parameters())
        assert n_light == expected
        with torch.no_grad():
            m.teacher.head.weight.add_(1.0)  # the teacher is not the inference model
        assert torch.allclose(m.predict_frames(x), probs)
    else:  # PI-2 infers through its generator and 12-channel encoder (no landmarks)
        assert n_light == sum(p.numel() for p in m.pi2.parameters())


# --- end to end: `auspread train --method piap-df` on the tiny synthetic preset, resumed between stages ----------------
TINY = ["method.name=piap-df", "method.encoder=small", "pretrained=null", "method.width=4", "method.generator_width=4",
        "method.decoder_width=4", "method.stage_epochs={pi1: 1, pi2: 1, person: 1, main: 1, df: 1}",
        "data.synth_preset=tiny", "data.image_size=32", "optim.optimizer=adam", "optim.lr=0.001", "optim.epochs=5",
        "optim.batch_size=8", "optim.steps_per_epoch=2", "threads=1"]


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_train_all_stages_on_tiny_and_resume_between_stages(tmp_path):
    import json
    import sys

    from auspread.cli import main
    from auspread.engine.checkpoint import load_checkpoint
    from auspread.engine.config import load_config
    from auspread.engine.loop import TrainHooks
    from auspread.engine.run import run_training

    argv = sys.argv
    sys.argv = ["auspread", "train", "-q", *TINY, f"out_dir={tmp_path}", "name=full"]
    try:
        main()  # `auspread train method.name=piap-df ...` through the command line
    finally:
        sys.argv = argv
    full_dir = tmp_path / "full"
    full = json.loads((full_dir / "results" / "summary.json").read_text())
    recs = [json.loads(line) for line in (full_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert [r["stage"] for r in epochs] == [0, 1, 2, 3, 4]  # pi1, pi2, person, main, df in order
    assert [("val_f1" in r) for r in epochs] == [False] * 4 + [True]  # only the final stage is validated/selected
    assert full["best_epoch"] == 5 and 0 <= full["test_f1"] <= 1
    assert any(r["kind"] == "train" and "fb_discrete" in r for r in recs)
    from auspread.export import export_run

    exported = export_run(full_dir, "torchscript")  # the trained student's light encoder
    assert exported.path.is_file() and exported.max_abs_diff < 1e-5

    def kill(epoch, rec):
        if epoch == 4:  # after the main stage, before Discrete Feedback
            raise _Killed

    cfg = load_config(full_dir / "config.yaml", ["name=killed"])  # the same run as the CLI's
    with pytest.raises(_Killed):
        run_training(cfg, progress=False, hooks=TrainHooks(after_epoch=kill))
    run = tmp_path / "killed"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 4
    resumed = run_training(cfg, progress=False, resume=run)
    assert resumed.epochs == 5 and resumed.best_epoch == 5
    a = load_checkpoint(full_dir / "checkpoints" / "best.pt")["model"]
    b = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
    assert bool(b["df_ready"])
    for k in a:
        assert torch.equal(a[k], b[k]), k  # the resumed run repeats the uninterrupted one exactly
    assert resumed.test_f1 == pytest.approx(full["test_f1"], abs=1e-12)


def test_init_weights_loads_the_main_encoder_of_another_run(tmp_path):
    from auspread.engine.checkpoint import save_checkpoint

    src = _method("piap")
    with torch.no_grad():
        for p in src.main.encoder.parameters():
            p.add_(0.5)
    save_checkpoint(tmp_path / "best.pt", {"model": src.state_dict()})
    m = _method("baseline", init_weights=tmp_path / "best.pt")
    for k, v in src.main.encoder.state_dict().items():
        assert torch.equal(m.main.encoder.state_dict()[k], v), k
    with pytest.raises(ConfigError, match="not found"):
        _method("baseline", init_weights=tmp_path / "none.pt")
    with pytest.raises(ConfigError, match="pi-2"):
        _method("pi-2", init_weights=tmp_path / "best.pt")


def test_stochastic_depth_needs_an_efficientnet_encoder():
    with pytest.raises(ConfigError, match="EfficientNet encoders only"):
        _method("baseline", stochastic_depth=0.0)  # SMALL's encoder is "small"
    with pytest.raises(ConfigError, match="EfficientNet encoders only"):
        _method("baseline", stochastic_depth=0.1, encoder="resnet18")


def test_df_draws_unlabelled_clips_from_bp4d_uncoded_frames(tmp_path):
    """§4.1.1/§3.3: x_u includes BP4D's uncoded frames. With data.uncoded_frames=true the reader indexes the
    images without a label row (labels −1); they never become key frames, so with 100% labels they are exactly the
    df stage's unlabelled pool; validation and test keep only coded frames."""
    import numpy as np

    from auspread.data.labels import sparsify
    from auspread.data.readers.bp4d import coded_only
    from auspread.data.sampling import TrainBatches
    from auspread.data.synth.generator import generate
    from auspread.engine.config import DataConfig
    from auspread.engine.data import read_index, split_index
    from tests.data.test_sampling import PixelStore

    root = generate(tmp_path / "synth", preset="tiny", subjects=6, tasks=1, frames=16, size=32, seed=0, progress=False)
    dc = DataConfig(dataset="synthetic", root=root, image_size=32, store_size=32, uncoded_frames=True)
    index = read_index(dc, progress=False)
    coded = read_index(DataConfig(dataset="synthetic", root=root), progress=False)
    assert index.num_frames > coded.num_frames
    assert [len(v) for v in coded_only(index)] == [len(v) for v in coded]
    splits = split_index(index, dc, seed=0)
    for ev in (splits.val, splits.test):
        assert all(not v.meta.get("uncoded_frames") and (v.labels >= 0).any(1).all() for v in ev)
    m = _method()
    spec = m.data_spec()
    train = splits.train
    uncoded = [np.isin(v.frame_numbers, [f for a, b in v.meta.get("uncoded_frames", []) for f in range(a, b + 1)])
               for v in train]
    assert sum(u.sum() for u in uncoded) > 0 and all((v.labels[u] < 0).all() for v, u in zip(train, uncoded))
    tb = TrainBatches(train, sparsify(train, 1, 0).key_frames, PixelStore(train), spec, dc, batch_size=4, seed=0)
    tb.set_epoch(m.stage_start["df"])
    drawn = set()
    for step in range(len(tb)):
        u = tb.batch(step)["unlabelled"]
        for v, t in zip(u["video"].tolist(), u["frame"][:, 0].tolist()):
            assert uncoded[v][t], (train.videos[v].video_id, t)
            drawn.add((v, t))
    assert len(drawn) >= 4
