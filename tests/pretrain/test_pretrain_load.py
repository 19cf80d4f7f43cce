"""A pretrained trunk as every method's start (``pretrained=<trunk.pt | run folder | pretrain:...>``), the refusals
(other image size, architecture, fold), and the cache key (issue 18)."""

from pathlib import Path

import pytest
import torch

from auspread.engine.config import load_config
from auspread.engine.run import build_method
from auspread.errors import ConfigError
from auspread.methods.base import DatasetInfo
from auspread.models.backbones import PooledResNet
from auspread.pretrain import run as prun
from auspread.pretrain.byol import make_trunk
from auspread.pretrain.config import cache_key, cache_name, load_pretrain_config
from auspread.pretrain.run import TRUNK, pretrain_config_for_run, resolve_pretrained, write_trunk

TINY = ["data.synth_preset=tiny", "data.image_size=32"]


def _trunk(path, arch="resnet18", image_size=32, fold=1, seed=1):
    cfg = load_pretrain_config(None, [f"recipe.arch={arch}", f"data.image_size={image_size}", f"data.fold={fold}",
                                      "data.synth_preset=tiny"])
    torch.manual_seed(seed)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in make_trunk(arch).state_dict().items()}
    return write_trunk(path, cfg, state, dataset="BP4D", subjects=["F001"]), state


def _info():
    aus = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)  # BP4D's
    return DatasetInfo("BP4D", aus, torch.ones(len(aus)), 4, 32, 25.0)


def _copies(method, tensor):
    return sum(1 for v in method.state_dict().values() if v.shape == tensor.shape and torch.equal(v, tensor))


RESNET_METHODS = {  # method → (overrides, number of ResNet trunks it builds)
    "supervised": ([], 1), "pseudo-label": ([], 1), "fixmatch": ([], 1), "tcl": ([], 1),
    "ks": ([], 2), "mdhr": (["method.backbone=resnet18"], 1),
    "piap-df": (["method.encoder=resnet18", "method.variant=baseline", "optim.epochs=1",
                 "method.stage_epochs.main=1"], 1),  # not the paper's encoder (issue 19's comparison)
}


@pytest.fixture(scope="module")
def r18(tmp_path_factory):
    return _trunk(tmp_path_factory.mktemp("trunk") / TRUNK)


@pytest.mark.parametrize("name", sorted(RESNET_METHODS))
def test_trunk_loads_into_every_resnet_method(name, r18):
    path, state = r18
    extra, n = RESNET_METHODS[name]
    cfg = resolve_pretrained(load_config(None, [f"method.name={name}", *extra, *TINY, f"pretrained={path}"]), progress=False)
    assert cfg.pretrained == str(path)
    m = build_method(cfg, _info(), cfg.pretrained)
    for key in ("layer4.1.conv2.weight", "layer1.0.bn1.running_mean", "layer3.0.downsample.0.weight"):
        assert _copies(m, state[key]) == n, key  # KS: both backbones
    assert _copies(m, state["conv1.weight"]) == n  # the stem too (ResNetFeatures calls it stem.0)
    torch.manual_seed(0)
    fresh = build_method(cfg.model_copy(update={"pretrained": None}), _info(), None)
    assert _copies(fresh, state["layer4.1.conv2.weight"]) == 0


@pytest.mark.parametrize("name", sorted(RESNET_METHODS))
def test_a_mobilenet_v2_trunk_loads_into_every_method(name, tmp_path):
    """`auspread pretrain recipe.arch=mobilenet_v2`'s trunk starts every method's MobileNetV2 trunk(s)."""
    path, state = _trunk(tmp_path / TRUNK, arch="mobilenet_v2")
    extra, n = RESNET_METHODS[name]
    extra = [o.replace("=resnet18", "=mobilenet_v2") for o in extra]
    field = "encoder" if name == "piap-df" else "backbone"
    cfg = resolve_pretrained(load_config(None, [f"method.name={name}", f"method.{field}=mobilenet_v2", *extra, *TINY,
                                                f"pretrained={path}"]), progress=False)
    m = build_method(cfg, _info(), cfg.pretrained)
    for key in ("features.0.0.weight", "features.10.conv.2.weight", "features.18.1.running_var"):
        assert _copies(m, state[key]) == n, key


def test_run_folder_resolves_to_its_trunk(r18):
    path, _ = r18
    cfg = resolve_pretrained(load_config(None, [*TINY, f"pretrained={path.parent}"]), progress=False)
    assert cfg.pretrained == str(path)


def test_piap_df_loads_an_efficientnet_trunk_and_refuses_a_resnet(tmp_path, r18):
    path, state = _trunk(tmp_path / "b0.pt", arch="efficientnet_b0")
    cfg = resolve_pretrained(load_config(None, ["method.name=piap-df", "method.encoder=efficientnet_b0", *TINY,
                                                f"pretrained={path}"]), progress=False)
    m = build_method(cfg, _info(), cfg.pretrained)
    assert _copies(m, state["features.8.0.weight"]) >= 1  # last 1x1 conv (the 12-channel stem differs by design)
    with pytest.raises(ConfigError, match=r"pretrained resnet18 but the method's backbone is efficientnet_b1"):
        resolve_pretrained(load_config(None, ["method.name=piap-df", *TINY, f"pretrained={r18[0]}"]), progress=False)
    with pytest.raises(ConfigError, match="small"):  # the reduced CPU encoder has no torchvision trunk
        resolve_pretrained(load_config(None, ["method.name=piap-df", "method.encoder=small", *TINY,
                                              f"pretrained={r18[0]}"]), progress=False)
    with pytest.raises(ConfigError, match=r"no self-supervised pretraining for the backbone 'small' of method 'piap-df'"):
        resolve_pretrained(load_config(None, ["method.name=piap-df", "method.encoder=small", *TINY,
                                              "pretrained=pretrain:auto"]), progress=False)


def test_other_image_size_architecture_or_fold_is_refused(r18):
    path = r18[0]
    with pytest.raises(ConfigError, match=r"pretrained at 32 px but this run uses data.image_size=64"):
        resolve_pretrained(load_config(None, ["data.synth_preset=tiny", "data.image_size=64", f"pretrained={path}"]),
                           progress=False)
    with pytest.raises(ConfigError, match=r"pretrained resnet18 but the method's backbone is resnet50"):
        resolve_pretrained(load_config(None, [*TINY, "method.backbone=resnet50", f"pretrained={path}"]), progress=False)
    with pytest.raises(ConfigError, match=r"fold 1's training subjects, whose frames include test subjects of fold 2"):
        resolve_pretrained(load_config(None, [*TINY, "data.fold=2", f"pretrained={path}"]), progress=False)
    # the backbone refuses another architecture by itself too (a trunk passed straight to a model)
    with pytest.raises(ConfigError, match=r"pretrained resnet18 but the model's backbone is resnet34"):
        PooledResNet("resnet34", str(path))
    # another dataset's trunk (no shared subjects) is accepted
    cfg = resolve_pretrained(load_config(None, [*TINY, "data.synth_preset=small", "data.fold=2", f"pretrained={path}"]),
                             progress=False)
    assert cfg.pretrained == str(path)


def test_pretrain_auto_resolves_to_the_cache_entry_for_the_runs_data_and_arch(tmp_path, monkeypatch):
    seen = []

    def fake_run_pretrain(pc, progress=True):
        seen.append(pc)
        d = tmp_path / cache_name(pc)
        d.mkdir()
        write_trunk(d / TRUNK, pc, make_trunk(pc.recipe.arch).state_dict(), dataset="BP4D", subjects=[])
        return prun.PretrainSummary(d, d / TRUNK, False, 1, 1, 0.0, 0.0, None, None, None)

    monkeypatch.setattr(prun, "run_pretrain", fake_run_pretrain)
    cfg = resolve_pretrained(load_config(None, ["method.name=ks", "method.backbone=resnet34", *TINY, "data.fold=3",
                                                "seed=7", "pretrained=pretrain:auto"]), progress=False)
    pc = seen[0]
    assert pc.recipe.arch == "resnet34" and pc.seed == 7 and pc.data.fold == 3 and pc.data.image_size == 32
    assert pc.data.synth_preset == "tiny" and pc.out_dir is None
    assert cfg.pretrained == str(tmp_path / cache_name(pc) / TRUNK)
    # pretrain:<recipe.yaml>: that recipe on the run's data
    (tmp_path / "r.yaml").write_text("recipe: {arch: resnet34, temporal_offset: 0}\noptim: {epochs: 2}\ndata: {fold: 1}\n")
    resolve_pretrained(load_config(None, ["method.backbone=resnet34", *TINY, "data.fold=2",
                                          f"pretrained=pretrain:{tmp_path / 'r.yaml'}"]), progress=False)
    pc = seen[1]
    assert pc.recipe.temporal_offset == 0 and pc.optim.epochs == 2 and pc.optim.optimizer == "adamw" and pc.data.fold == 2
    # a recipe file that does not name the architecture takes the method's, as pretrain:auto does
    (tmp_path / "r2.yaml").write_text("optim: {epochs: 3}\n")
    resolve_pretrained(load_config(None, ["method.backbone=resnet34", *TINY, f"pretrained=pretrain:{tmp_path / 'r2.yaml'}"]),
                       progress=False)
    assert seen[2].recipe.arch == "resnet34" and seen[2].optim.epochs == 3


def test_cache_key_changes_with_each_input():
    base = ["data.synth_preset=tiny"]
    k0 = cache_key(load_pretrain_config(None, base))
    changes = [
        "data.synth_preset=small", "data.root=/data/BP4D", "data.synth_format=disfa", "data.fold=2",
        "data.image_size=32", "data.store_size=80", "data.val_fraction=0.3", "recipe.arch=resnet50",
        "recipe.temporal_offset=2", "recipe.proj_dim=128", "recipe.proj_hidden=512", "recipe.momentum=0.996",
        "recipe.views.crop_scale=[0.2,1.0]", "recipe.views.rotation=0", "recipe.views.flip=false",
        "recipe.views.blur_p=[0.5,0.5]", "recipe.objective=byol", "recipe.frames_per_video=4",
        "recipe.temperature=0.1", "optim.lr=0.01", "optim.epochs=3", "optim.batch_size=48", "seed=1",
    ]
    keys = {c: cache_key(load_pretrain_config(None, [*base, c])) for c in changes}
    assert all(k != k0 for k in keys.values()), [c for c, k in keys.items() if k == k0]
    assert len(set(keys.values())) == len(changes)
    # what does not decide the trunk: the probe's labels, precision, loader, evaluation settings
    for same in ["data.labels=5%", "optim.amp=off", "data.num_workers=2", "data.eval_video_stride=4", "probe.steps=10"]:
        assert cache_key(load_pretrain_config(None, [*base, same])) == k0, same
    name = cache_name(load_pretrain_config(None, [*base, "data.fold=2", "recipe.arch=resnet50"]))
    assert name.startswith("synth-tiny-f2-64px-resnet50-")


def test_long_recipe_file_is_the_default_recipe_five_times_longer_and_one_cache_entry():
    """configs/pretrain_long.yaml (docs/methods/pretraining.md): only the number of steps differs from the default,
    and `auspread pretrain -c` and `pretrained=pretrain:<file>` name the same cached trunk."""
    repo = Path(__file__).resolve().parents[2]
    long = load_pretrain_config(repo / "configs" / "pretrain_long.yaml", TINY)
    default = load_pretrain_config(None, TINY)
    assert long.optim.epochs == 5 * default.optim.epochs
    assert long.model_dump(exclude={"optim"}) == default.model_dump(exclude={"optim"})
    assert long.optim.model_dump(exclude={"epochs"}) == default.optim.model_dump(exclude={"epochs"})
    run = load_config(None, [*TINY, f"pretrained=pretrain:{repo / 'configs' / 'pretrain_long.yaml'}"])
    spec = run.pretrained[len("pretrain:"):]
    assert cache_name(pretrain_config_for_run(run, spec)) == cache_name(long)
