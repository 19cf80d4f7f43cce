"""Determinism, co-occurrence structure, label noise, atomic writes and the cache."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auspread.data.synth import GENERATED_AUS, default_dataset, generate, resolve_config
from auspread.data.synth import generator as gen
from auspread.data.synth.dynamics import add_label_noise
from auspread.data.synth.writers import JpegSequenceWriter
from auspread.errors import ConfigError, DataError


def _labels(cfg):
    out = []
    for p in gen.plan_videos(cfg):
        inten, _ = gen.simulate_video(cfg, p)
        lab = gen.video_labels(cfg, p, inten)
        out.append((p, inten, lab))
    return out


def test_same_seed_same_labels_bit_for_bit_and_other_seed_differs(tiny_bp4d, tmp_path):
    # regenerate the fixture's labels at another frame size: labels never depend on pixels
    again = generate(tmp_path / "again", "tiny", "bp4d", seed=3, size=32, progress=False, workers=1)
    for csv in sorted((tiny_bp4d / "AUCoding" / "AU_OCC").iterdir()):
        assert (again / "AUCoding" / "AU_OCC" / csv.name).read_bytes() == csv.read_bytes()
        gt_a = np.load(tiny_bp4d / "ground_truth" / csv.name.replace(".csv", ".npz"))
        gt_b = np.load(again / "ground_truth" / csv.name.replace(".csv", ".npz"))
        assert gt_a["intensity"].tobytes() == gt_b["intensity"].tobytes()
    other = _labels(resolve_config("tiny", "bp4d", seed=4))
    same = _labels(resolve_config("tiny", "bp4d", seed=3))
    assert any(not np.array_equal(a[2]["written_codes"], b[2]["written_codes"]) for a, b in zip(same, other))
    assert [p.first_frame for p, *_ in same] != [p.first_frame for p, *_ in other]


def test_cooccurrence_follows_prototypes():
    cfg = resolve_config("small", "bp4d", seed=0, tasks=8)  # dynamics only: no pixels, fast
    inten = np.concatenate([gen.simulate_video(cfg, p)[0] for p in gen.plan_videos(cfg)])
    occ = (inten >= 1).astype(float)
    c = np.corrcoef(occ.T)
    i = {a: j for j, a in enumerate(GENERATED_AUS)}
    assert c[i[6], i[12]] > 0.3  # happiness
    assert c[i[1], i[2]] > 0.3  # surprise / fear
    assert c[i[9], i[10]] > 0.2  # disgust / pain
    assert c[i[6], i[12]] > c[i[2], i[12]] + 0.2  # a non-prototype pair is much weaker


def test_tasks_differ_in_dominant_episodes():
    cfg = resolve_config("small", "bp4d", seed=0, tasks=8, subjects=6)
    by_task = {}
    for p in gen.plan_videos(cfg):
        _, eps = gen.simulate_video(cfg, p)
        for e in eps:
            by_task.setdefault(p.task, {}).setdefault(e["name"], 0)
            by_task[p.task][e["name"]] += 1
    top = {t: max(c, key=c.get) for t, c in by_task.items()}
    assert top["T1"] == "happiness" and top["T6"] == "pain" and top["T8"] == "disgust" and top["T2"] == "sadness"


def test_label_noise_moves_only_boundaries():
    rng = np.random.default_rng(0)
    y = np.zeros((200, 1), np.int8)
    y[50:120] = 1
    noisy = add_label_noise(y, rng, 1.0, 25.0)
    diff = np.flatnonzero(noisy[:, 0] != y[:, 0])
    assert 0 < len(diff) <= 10  # both boundaries moved by 1..5 frames
    assert all(min(abs(d - 50), abs(d - 120)) <= 5 for d in diff)
    np.testing.assert_array_equal(add_label_noise(y, rng, 0.0, 25.0), y)
    cfg = resolve_config("tiny", "bp4d", seed=3, label_noise=0.8)
    clean = _labels(resolve_config("tiny", "bp4d", seed=3))
    assert any(not np.array_equal(a[2]["written_codes"], b[2]["written_codes"]) for a, b in zip(clean, _labels(cfg)))


def test_refuses_non_empty_target_without_force(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        generate(out, "tiny", "bp4d", subjects=1, tasks=1, frames=8, size=32, progress=False, workers=1)
    assert (out / "keep.txt").exists()
    generate(out, "tiny", "bp4d", subjects=1, tasks=1, frames=8, size=32, progress=False, workers=1, force=True)
    assert (out / "manifest.json").exists() and not (out / "keep.txt").exists()


def test_killed_run_leaves_no_complete_looking_dataset(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = JpegSequenceWriter.write

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(self, *a, **k)

    monkeypatch.setattr(JpegSequenceWriter, "write", dying)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "ds", "tiny", "bp4d", subjects=2, tasks=1, frames=70, size=32, progress=False, workers=1)
    assert calls["n"] == 3
    assert not (tmp_path / "ds").exists()
    assert list(tmp_path.rglob("manifest.json")) == [] and list(tmp_path.iterdir()) == []


def test_default_dataset_caches_and_survives_a_race(tmp_path, monkeypatch):
    monkeypatch.setenv("AUSPREAD_CACHE", str(tmp_path))
    from auspread.data.synth import config

    monkeypatch.setitem(config.PRESETS, "tiny", {"subjects": 1, "tasks": 1, "frames": 8, "size": 32})
    p = default_dataset("tiny", "bp4d", progress=False)
    assert p == tmp_path / "synth" / f"tiny-bp4d-v{config.GENERATOR_VERSION}-s0" and (p / "manifest.json").exists()
    stamp = (p / "manifest.json").stat().st_mtime_ns
    assert default_dataset("tiny", "bp4d", progress=False) == p
    assert (p / "manifest.json").stat().st_mtime_ns == stamp  # reused, not regenerated

    # another process wins the race while we generate: we must use its folder and clean up our temp folder
    real = gen.generate_into

    def racing(root, cfg, **k):
        real(root, cfg, **k)
        winner = tmp_path / "synth" / f"tiny-disfa-v{config.GENERATOR_VERSION}-s0"
        winner.mkdir(parents=True, exist_ok=True)
        (winner / "manifest.json").write_text(json.dumps({"winner": True}))

    monkeypatch.setattr(gen, "generate_into", racing)
    q = default_dataset("tiny", "disfa", progress=False)
    assert json.loads((q / "manifest.json").read_text()) == {"winner": True}
    assert sorted(x.name for x in (tmp_path / "synth").iterdir()) == sorted([p.name, q.name])


def test_unknown_preset_and_too_many_subjects_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown synthetic preset"):
        resolve_config("huge")
    with pytest.raises(ConfigError, match="only 27"):
        resolve_config("tiny", "disfa", subjects=30)


def test_cli_generates_and_previews(tmp_path):
    from auspread.cli import app

    r = CliRunner().invoke(app, ["synth", str(tmp_path / "d"), "--preset", "tiny", "--format", "disfa", "--subjects", "1",
                                 "--frames", "10", "--size", "32", "--seed", "5", "--quiet"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert m["seed"] == 5 and m["parameters"]["frames"] == 10 and len(m["videos"]) == 1
    r = CliRunner().invoke(app, ["synth", str(tmp_path / "d"), "--preset", "tiny", "--quiet"])
    assert r.exit_code != 0  # refuses without --force
    r = CliRunner().invoke(app, ["synth", "--preset", "tiny", "--preview", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    from PIL import Image

    with Image.open(tmp_path / "p.png") as im:
        assert im.size[1] > 18 * 64
    assert (tmp_path / "p_timeline.png").stat().st_size > 1000


def test_worker_processes_give_identical_output(tmp_path):
    kw = dict(subjects=2, tasks=1, frames=12, size=32, progress=False)
    a = generate(tmp_path / "a", "tiny", "bp4d", workers=1, **kw)
    b = generate(tmp_path / "b", "tiny", "bp4d", workers=2, **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.suffix in (".jpg", ".csv"))
    assert len(files) > 20
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    ma, mb = (json.loads((x / "manifest.json").read_text()) for x in (a, b))
    assert ma["videos"] == mb["videos"]


def test_bp4d_like_base_rates_within_factor_two_of_real():
    """Ground truth only (no pixels) of all 41 x 8 bp4d-like videos, compared with folds.json."""
    folds = json.loads((Path(__file__).parents[3] / "src/auspread/resources/folds.json").read_text())
    real = np.array(folds["BP4D"]["base_rates_all_frames"])
    cfg = resolve_config("bp4d-like", "bp4d", seed=0)
    cols = [GENERATED_AUS.index(a) for a in folds["BP4D"]["aus"]]
    pos, n = np.zeros(len(cols)), 0
    for p in gen.plan_videos(cfg):
        inten, _ = gen.simulate_video(cfg, p)
        pos += (np.floor(inten[p.coded_lo:p.coded_hi, cols] + 1e-6) >= 1).sum(0)
        n += p.coded_hi - p.coded_lo
    ratio = pos / n / real
    assert ((ratio > 0.5) & (ratio < 2.0)).all(), dict(zip(folds["BP4D"]["aus"], ratio.round(2)))


def test_nuisances_present_and_switchable():
    from auspread.data.synth.nuisance import sample_nuisance

    rng = np.random.default_rng(0)
    n = sample_nuisance(rng, 25 * 240, 25.0, 128, strength=1.0)
    assert np.ptp(n.roll) > 3 and np.ptp(n.tx) > 2 and n.noise_sigma >= 0
    assert (n.blur > 0).any() and (n.occluder[:, 0] > 0).any()
    z = sample_nuisance(rng, 25 * 240, 25.0, 128, strength=0.0)
    assert np.ptp(z.roll) == 0 and z.noise_sigma == 0 and not (z.blur > 0).any() and not (z.occluder[:, 0] > 0).any()


def test_disfa_label_noise_and_effect_gain_knob():
    cfg = resolve_config("tiny", "disfa", seed=1, frames=400, subjects=2, label_noise=1.0)
    p = gen.plan_videos(cfg)[0]
    inten, _ = gen.simulate_video(cfg, p)
    lab = gen.video_labels(cfg, p, inten)
    exact = np.stack([lab["integer_intensity"][:, GENERATED_AUS.index(a)] for a in (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)], 1)
    w = lab["written_intensity"]
    assert w.shape == exact.shape and set(np.unique(w)) <= set(range(6))
    changed = np.flatnonzero((w != exact).any(1))
    assert len(changed) > 0
    # every changed frame is within 0.2 s (4 frames at 20 fps) of a level change of the exact labels
    edges = np.flatnonzero((np.diff(exact, axis=0) != 0).any(1)) + 1
    assert all(np.abs(edges - t).min() <= 4 for t in changed)

    from auspread.data.synth.render import warp_expression

    subj = gen.make_subject(cfg, "SN002")
    a, _ = gen.subject_assets(cfg, subj, size=48)
    one = np.zeros((1, len(GENERATED_AUS)), np.float32)
    one[0, GENERATED_AUS.index(12)] = 5.0
    full = gen.au_weights(cfg, subj, one)
    half = gen.au_weights(resolve_config("tiny", "disfa", seed=1, effect_gain=0.5), subj, one)
    rest = gen.au_weights(cfg, subj, np.zeros_like(one))
    d_full = np.abs(warp_expression(a, full) - warp_expression(a, rest)).sum()
    d_half = np.abs(warp_expression(a, half) - warp_expression(a, rest * 0.5)).sum()
    assert 0.3 * d_full < d_half < 0.8 * d_full
