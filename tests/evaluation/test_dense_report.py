import numpy as np
import pytest
import torch

from auspread.data.index import ImageFiles, VideoIndex, VideoRecord
from auspread.data.transforms import ClipTransform
from auspread.evaluation.dense import evaluate_split
from auspread.evaluation.metrics import au_scores
from auspread.evaluation.report import format_markdown, format_table, write_results


class FakeStore:
    """Frame t of every video is a uniform image of brightness 20·t."""

    size = 36

    def __init__(self, lengths):
        self.lengths = lengths

    def __len__(self):
        return len(self.lengths)

    def num_frames(self, v):
        return self.lengths[v]

    def frames(self, v, positions):
        pos = np.asarray(positions)
        return np.broadcast_to((20 * pos)[:, None, None, None], (len(pos), self.size, self.size, 3)).astype(np.uint8).copy()


class BrightnessMethod(torch.nn.Module):
    """p(AU) = 1 for frames brighter than the ImageNet mean, else 0; records the chunk sizes it saw."""

    def __init__(self, u, cut=0.0, bad_length=False):
        super().__init__()
        self.u, self.cut, self.bad, self.seen = u, cut, bad_length, []

    def predict_video(self, chunks, num_frames):
        out = []
        for c in chunks:
            self.seen.append(c.shape[0])
            out.append((c.mean(dim=(1, 2, 3)) > self.cut).float()[:, None].repeat(1, self.u))
        p = torch.cat(out)
        return p[:-1] if self.bad else p


def _index(lengths, u=2, seed=0):
    rng = np.random.default_rng(seed)
    vids = [VideoRecord(f"S{i}/T1", f"S{i}", "T1", np.arange(t) + 1, rng.integers(-1, 2, (t, u)),
                        ImageFiles(tuple(f"{i}_{k}.png" for k in range(t)))) for i, t in enumerate(lengths)]
    return VideoIndex("BP4D", (1, 2)[:u], vids, 25.0)


def test_dense_prediction_covers_every_frame_and_scores_all_frames():
    lengths = [7, 12, 3]
    index = _index(lengths)
    m = BrightnessMethod(2)
    scores, preds = evaluate_split(m, FakeStore(lengths), index, ClipTransform(32, train=False),
                                   torch.device("cpu"), chunk=5, keep_predictions=True)
    assert m.seen == [5, 2, 5, 5, 2, 3]  # consecutive chunks, each video once
    assert [len(p) for p in preds.probs] == lengths and preds.video_ids == ["S0/T1", "S1/T1", "S2/T1"]
    # frame t is predicted positive iff its ImageNet-normalised brightness is above 0 (frames in their own order)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expect = [float(((20 * t / 255 - mean) / std).mean() > 0) for t in range(12)]
    assert preds.probs[1][:, 0].tolist() == expect and 0 < sum(expect) < 12
    expected = au_scores(np.concatenate(preds.probs), np.concatenate([v.labels for v in index.videos]), index.aus)
    assert np.allclose(scores.f1, expected.f1, equal_nan=True) and scores.support.sum() == (index.all_labels() >= 0).sum()


def test_a_method_returning_the_wrong_number_of_frames_is_an_error():
    with pytest.raises(RuntimeError, match="returned 6 frames for a 7-frame video"):
        evaluate_split(BrightnessMethod(2, bad_length=True), FakeStore([7]), _index([7]),
                       ClipTransform(32, train=False), torch.device("cpu"), chunk=4)


def test_reports_are_written(tmp_path):
    index = _index([6, 4])
    scores, preds = evaluate_split(BrightnessMethod(2, cut=-10), FakeStore([6, 4]), index,
                                   ClipTransform(32, train=False), torch.device("cpu"), keep_predictions=True)
    paths = write_results(tmp_path, scores, split="test", title="t", notes=["n1"], predictions=preds)
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = paths["predictions_csv"].read_text().splitlines()
    assert csv[0].startswith("video_id,frame,frame_number,p_AU1,p_AU2,y_AU1,y_AU2") and len(csv) == 1 + 10
    npz = np.load(paths["predictions_npz"])
    assert npz["offsets"].tolist() == [0, 6, 10] and npz["probs"].shape == (10, 2)
    assert np.array_equal(npz["labels"], index.all_labels())
    table = format_table(scores)
    assert "AU1" in table and "mean" in table.splitlines()[-1]
    md = format_markdown(scores, "title", ["note"])
    assert md.startswith("# title") and "| mean |" in md
    assert paths["csv"].read_text().splitlines()[-1].startswith("mean,")


def test_markdown_table_aligns_and_bolds():
    from auspread.evaluation.report import markdown_table

    md = markdown_table(["method", "1%", "5%"], [["ks", "10.0", "20.0"], ["sup", "12.0", "18.0"]], {(1, 1), (0, 2)})
    assert md.splitlines() == ["| method | 1% | 5% |", "|---|---:|---:|", "| ks | 10.0 | **20.0** |",
                               "| sup | **12.0** | 18.0 |"]
