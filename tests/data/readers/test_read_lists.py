from pathlib import Path

import numpy as np
import pytest
from _reader_trees import write_image

from auspread.data.readers import probe_dataset, read_dataset
from auspread.errors import DataError


def _write_lists(folder: Path, prefix: str, split: str, fold: int, rows: list[tuple[str, list[int]]], mdhr=False):
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}_{split}_path_fold{fold}.txt" if mdhr else f"{prefix}_{split}_img_path_fold{fold}.txt"
    (folder / name).write_text("".join(p + "\n" for p, _ in rows))
    (folder / f"{prefix}_{split}_label_fold{fold}.txt").write_text("".join(" ".join(map(str, y)) + "\n" for _, y in rows))


def _bp4d_tree(root: Path, rng):
    """ME-GraphAU BP4D crops: img/<Subj>/<Task>/<frame>.jpg (no padding) and 3 test lists + 1 train list."""
    parts = {1: [("F001", "T1", range(2440, 2444))], 2: [("M011", "T2", range(9, 12))], 3: [("F007", "T1", range(643, 646))]}
    truth = {}
    for part, vids in parts.items():
        rows = []
        for s, t, frames in vids:
            for f in frames:
                y = rng.integers(0, 2, 12).tolist()
                rows.append((f"{s}/{t}/{f}.jpg", y))
                truth[f"{s}/{t}/{f}.jpg"] = y
                write_image(root / "img" / s / t / f"{f}.jpg", f)
        rows = rows[::-1]  # list order does not matter: frames are sorted per video
        _write_lists(root, "BP4D", "test", 4 - part, rows)
    return truth


def test_megraphau_bp4d_crop_tree(tmp_path):
    truth = _bp4d_tree(tmp_path, np.random.default_rng(0))
    # a train list repeating some frames (fold1 trains on parts 1+2) with identical labels is merged
    _write_lists(tmp_path, "BP4D", "train", 1, [(p, truth[p]) for p in list(truth)[:5]])
    (tmp_path / "BP4D_weight_fold1.txt").write_text("1.0\t" * 12)
    assert probe_dataset(tmp_path) == "lists"
    idx = read_dataset("auto", tmp_path)
    assert idx.dataset == "BP4D" and idx.aus == (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
    assert [v.video_id for v in idx] == ["F001/T1", "F007/T1", "M011/T2"]
    assert idx.num_frames == len(truth) == 10
    for v in idx:
        assert v.frame_numbers.tolist() == sorted(v.frame_numbers.tolist())
        for f, y, p in zip(v.frame_numbers, v.labels, v.source.paths):
            rel = f"{v.video_id}/{f}.jpg"
            assert p == str(tmp_path / "img" / rel) and y.tolist() == truth[rel]
    # split/fold filters: fold 1's test list is part3 = F007
    only = read_dataset("lists", tmp_path, split="test", fold=1)
    assert [v.video_id for v in only] == ["F007/T1"]


def test_mdhr_disfa_tree_in_list_folder(tmp_path):
    rows = []
    for f in range(4):
        y = [f % 2, 0, 1, 0, 0, 1, 9, -1]
        rows.append((f"SN002/SN002_{f}.png", y))
        write_image(tmp_path / "img_o" / "SN002" / f"SN002_{f}.png", f)
    _write_lists(tmp_path / "list", "DISFA", "test", 3, rows, mdhr=True)
    idx = read_dataset("lists", tmp_path)
    v = idx.videos[0]
    assert idx.dataset == "DISFA" and idx.aus == (1, 2, 4, 6, 9, 12, 25, 26)
    assert v.video_id == "SN002" and v.subject == "SN002" and v.task == "" and v.frame_numbers.tolist() == [0, 1, 2, 3]
    assert v.labels[:, 0].tolist() == [0, 1, 0, 1] and (v.labels[:, 6:] == -1).all()


def test_list_errors(tmp_path):
    truth = _bp4d_tree(tmp_path, np.random.default_rng(1))
    lab = tmp_path / "BP4D_test_label_fold1.txt"
    good = lab.read_text()
    lab.write_text(good.splitlines()[0] + "\n")
    with pytest.raises(DataError, match="BP4D_test_label_fold1.txt: has 1 label lines but BP4D_test_img_path_fold1.txt has 3 paths"):
        read_dataset("lists", tmp_path)
    lines = good.splitlines()
    lab.write_text("\n".join(["x" + lines[0][1:]] + lines[1:]) + "\n")
    with pytest.raises(DataError, match="non-numeric value at line 1"):
        read_dataset("lists", tmp_path)
    lab.write_text(good)
    first = next(iter(truth))
    flipped = [1 - truth[first][0]] + truth[first][1:]
    _write_lists(tmp_path, "BP4D", "train", 2, [(first, flipped)])
    with pytest.raises(DataError, match=f"labels of {first} differ"):
        read_dataset("lists", tmp_path)
    _write_lists(tmp_path, "BP4D", "train", 2, [(first, truth[first])])
    (tmp_path / "img" / first).unlink()
    with pytest.raises(DataError, match="listed in .* but missing"):
        read_dataset("lists", tmp_path)
    idx = read_dataset("lists", tmp_path, missing_frames="skip")
    assert idx.num_frames == len(truth) - 1
    (tmp_path / "BP4D_test_label_fold2.txt").unlink()
    with pytest.raises(DataError, match="has no label list"):
        read_dataset("lists", tmp_path)
    with pytest.raises(DataError, match="no list files"):
        read_dataset("lists", tmp_path / "img")
