"""The method contract (``auspread.methods.base``), checked on every registered method (issue 20): a training step on a
batch shaped by the method's own ``data_spec()``, whole-video prediction, a state-dict round trip and export."""

import math

import pytest
import torch
from torch import nn

from auspread.engine.config import OptimConfig
from auspread.engine.loop import optimizer_factory
from auspread.errors import ConfigError
from auspread.methods import get_method, method_names
from auspread.methods.base import Method, StepContext

from . import fakes

SIZE = 32
# small networks so that every method runs in seconds on one core; a method not listed runs with its defaults
TINY = {
    "ks": dict(clip_len=3, width=16, heads=4, depth=1, student_hidden=32),
    "mdhr": dict(backbone="resnet18", width=32, mfd_channels=32, clip_len=4, k=2),
    "piap-df": dict(encoder="small", width=4, generator_width=4, decoder_width=4, dropout=0.0,
                    stage_epochs=dict(pi1=1, pi2=1, person=1, main=1, df=1)),
}
T = 11  # frames of the predicted video: not a multiple of any chunk size below nor of any clip length above
CHUNKS = (4, 4, 3)


def _package_methods() -> list[str]:
    """Every method registered by the package itself; test doubles registered by other test modules (e.g. the
    predict tests' tiny model, which may be imported first at collection time) are not part of the contract."""
    return [n for n in method_names() if get_method(n).__module__.startswith("auspread.methods.")]


def _trunk_field(name: str) -> str | None:
    """The option naming a method's torchvision trunk (``backbone``; PIAP-DF's ``encoder``), if it has one."""
    fields = get_method(name).Options.model_fields
    return next((f for f in ("backbone", "encoder") if f in fields), None)


# every method with its default trunk, and every method that takes a torchvision trunk with MobileNetV2
CASES = [(n, None) for n in _package_methods()] + [(n, "mobilenet_v2") for n in _package_methods() if _trunk_field(n)]


def _method(name: str, seed: int = 0, trunk: str | None = None) -> Method:
    cls = get_method(name)
    torch.manual_seed(seed)
    options = dict(TINY.get(name, {}))
    if trunk is not None:
        options[_trunk_field(name)] = trunk
    return cls(cls.Options(**options), fakes.info(SIZE))


def _landmarks(b: int, n: int) -> torch.Tensor:
    from auspread.data.synth.config import resolve_config
    from auspread.data.synth.face import neutral_landmarks
    from auspread.data.synth.generator import make_subject

    lm = torch.tensor(neutral_landmarks(make_subject(resolve_config("tiny"), "F001"), SIZE), dtype=torch.float32)
    return lm.expand(b, n, *lm.shape).clone()


def _clips(g: torch.Generator, b: int, spec, labelled: bool) -> dict:
    n = spec.clip_len
    frames, truth = fakes.clips(g, b, n, SIZE)
    key = torch.randint(0, n, (b,), generator=g) if labelled else torch.full((b,), -1)
    labels = torch.full_like(truth, -1.0)
    if labelled:
        labels[torch.arange(b), key] = truth[torch.arange(b), key]
    out = {"frames": frames, "labels": labels, "key_pos": key, "true_labels": truth,
           "subject": torch.arange(b) % fakes.info().num_subjects, "video": torch.arange(b),
           "frame": torch.arange(n).repeat(b, 1)}
    if spec.strong_view:
        out["strong"] = frames + 0.5 * torch.randn(frames.shape, generator=g)
    if spec.landmarks:
        out["landmarks"] = _landmarks(b, n)
    return out


def batch_for(spec, epoch: int, b: int = 2, seed: int = 0) -> dict:
    """A batch as ``auspread.data.sampling`` would build it for ``spec`` in ``epoch``."""
    g = torch.Generator().manual_seed(seed)
    out = _clips(g, b, spec, labelled=True)
    if spec.unlabelled_ratio > 0 and epoch >= spec.unlabelled_from_epoch:
        out["unlabelled"] = _clips(g, max(1, round(spec.unlabelled_ratio * b)), spec, labelled=False)
    return out


def _is_detector(name: str) -> bool:
    return getattr(get_method(name), "is_detector", True)


def _predict(m: Method) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(T, 3, SIZE, SIZE, generator=g)
    return m.eval().predict_video(iter(frames.split(list(CHUNKS))), T)


def test_the_registry_holds_the_seven_methods():
    assert {"ks", "supervised", "mdhr", "piap-df", "pseudo-label", "fixmatch", "tcl"} <= set(method_names())


@pytest.mark.parametrize("name,trunk", CASES)
def test_train_step_gives_a_finite_loss_and_float_logs(name, trunk):
    m = _method(name, trunk=trunk).train()
    spec = m.data_spec()
    epoch = spec.unlabelled_from_epoch  # the first epoch with every part of the batch
    epochs = max(epoch + 1, getattr(m, "total_epochs", 0))
    optimizers = m.configure_optimizers(optimizer_factory(OptimConfig(lr=0.01)))
    ctx = StepContext(epoch=epoch, step=epoch * 10, batch_in_epoch=0, steps_per_epoch=10, epochs=epochs,
                      device=torch.device("cpu"), optimizers=optimizers if m.manual_optimization else [])
    out = m.train_step(batch_for(spec, epoch), ctx)
    assert out.logs and all(type(v) is float for v in out.logs.values()), out.logs
    if m.manual_optimization:
        assert out.loss is None or torch.isfinite(out.loss).all()
    else:
        assert out.loss is not None and out.loss.ndim == 0 and math.isfinite(float(out.loss.detach()))
        out.loss.backward()
        assert any(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("name,trunk", CASES)
def test_predict_video_state_dict_and_export(name, trunk):
    m = _method(name, trunk=trunk)
    if _is_detector(name):
        p = _predict(m)
        assert p.shape == (T, len(fakes.AUS)) and torch.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    other = _method(name, seed=1, trunk=trunk)
    other.load_state_dict(m.state_dict())
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in other.state_dict().items())
    if _is_detector(name):
        assert torch.equal(_predict(other), p)
    if hasattr(m.options, "class_weights"):
        want = fakes.info().class_weights if m.options.class_weights else torch.ones(len(fakes.AUS))
        assert torch.equal(m.class_weights, want) and "class_weights" in m.state_dict()
    try:
        module = m.export_module()
    except ConfigError:
        return
    assert isinstance(module, nn.Module)
    with torch.no_grad():
        q = module.eval()(torch.randn(2, 3, SIZE, SIZE))
    assert q.shape == (2, len(fakes.AUS)) and (q >= 0).all() and (q <= 1).all()


def test_a_missing_method_or_command_module_fails_loudly():
    from auspread.cli import register_commands
    from auspread.methods import import_modules

    with pytest.raises(ModuleNotFoundError):
        import_modules(["no_such_method"])
    with pytest.raises(ModuleNotFoundError):
        register_commands(["no_such_command"])
