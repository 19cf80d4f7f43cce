"""Export a trained run's light inference model (``Method.export_module``: ``(k, 3, H, W) -> (k, U)``
probabilities) to TorchScript or ONNX, and check the exported model against the original.

TorchScript uses ``torch.jit.trace`` (the inference networks have no data-dependent control flow); ONNX uses the
TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``, opset 17) with a dynamic batch axis and
needs the optional ``onnx`` package (``pip install 'auspread[onnx]'``). Inputs are normalised frames exactly as
``Method.predict_frames`` receives them (``auspread.data.transforms`` test transform at ``data.image_size``).

Next to the exported file, ``<name>.json`` says how to use it without auspread: the input shape and normalisation,
the AU order of the outputs, and the per-AU decision thresholds the run chose on its validation subjects (null
when it has none: then the protocol's 0.5).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from auspread.errors import ConfigError
from auspread.io import atomic_path, atomic_write_text

Format = Literal["torchscript", "onnx"]
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
OPSET = 17


@dataclass
class ExportResult:
    path: Path
    format: str
    image_size: int
    aus: tuple[int, ...]
    max_abs_diff: float | None  # exported vs original on a random input (None when not checked)
    sidecar: Path | None = None  # <name>.json: input, AU order, thresholds
    thresholds: tuple[float, ...] | None = None  # the run's validation thresholds, if it chose them


def load_run_model(run_dir: str | Path, with_state: bool = False):
    """``(method, cfg, info)`` of a run folder, rebuilt from ``checkpoints/best.pt`` alone (EMA weights if kept);
    with ``with_state`` the loaded checkpoint as a fourth item."""
    from auspread.engine.restore import check_run_dir, load_trained

    t = load_trained(check_run_dir(run_dir))
    return (t.method, t.cfg, t.info, t.state) if with_state else (t.method, t.cfg, t.info)


def _check_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the 'onnx' package: pip install 'auspread[onnx]' (or pip install onnx)") from None


def export_module(module: nn.Module, example: torch.Tensor, fmt: Format, out: str | Path) -> Path:
    """Write ``module`` (in eval mode, on CPU) traced on ``example`` to ``out`` atomically."""
    if fmt not in SUFFIX:
        raise ConfigError(f"unknown export format {fmt!r}; use torchscript or onnx")
    module = module.eval().cpu()
    example = example.cpu()
    out = Path(out)
    if fmt == "onnx":
        _check_onnx()
    # torch marks torch.jit and the TorchScript-based ONNX exporter deprecated; they remain the formats asked for
    with torch.no_grad(), atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
        if fmt == "torchscript":
            traced = torch.jit.trace(module, example, check_trace=False)
            traced.save(str(tmp))
        else:
            torch.onnx.export(module, (example,), str(tmp), input_names=["frames"], output_names=["probabilities"],
                              dynamic_axes={"frames": {0: "batch"}, "probabilities": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
    return out


def run_exported(path: str | Path, frames: torch.Tensor) -> torch.Tensor:
    """Run an exported file on ``frames`` (TorchScript with torch; ONNX with onnxruntime if installed, else the
    ``onnx`` reference evaluator)."""
    path = Path(path)
    if path.suffix == ".onnx":
        _check_onnx()
        x = frames.detach().cpu().numpy()
        try:
            import onnxruntime as ort

            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            y = sess.run(None, {"frames": x})[0]
        except ImportError:
            from onnx.reference import ReferenceEvaluator

            y = ReferenceEvaluator(str(path)).run(None, {"frames": x})[0]
        return torch.from_numpy(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        m = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return m(frames.cpu())


def export_run(run_dir: str | Path, fmt: Format = "torchscript", out: str | Path | None = None, check: bool = True,
               seed: int = 0) -> ExportResult:
    """Export the inference model of a run folder; by default verify it on a random batch of two frames."""
    from auspread.engine.checkpoint import Key

    method, cfg, info, state = load_run_model(run_dir, with_state=True)
    module = method.export_module()
    size = int(info.image_size)
    g = torch.Generator().manual_seed(seed)
    example = torch.randn(2, 3, size, size, generator=g)
    if out is None:
        out = Path(run_dir) / "export" / f"{cfg.method.name}-{info.dataset}{SUFFIX[fmt]}"
    path = export_module(module, example, fmt, out)
    diff = None
    if check:
        with torch.no_grad():
            ref = module.eval().cpu()(example)
        diff = float((run_exported(path, example) - ref).abs().max())
    th = state.get(Key.THRESHOLDS)
    from auspread.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    sidecar = path.with_suffix(".json")
    atomic_write_text(sidecar, json.dumps({
        "model": path.name, "format": fmt, "method": cfg.method.name, "trained_on": info.dataset,
        "input": {"shape": ["k", 3, size, size], "layout": "RGB, values in [0, 1] after resizing the aligned face "
                  "crop, then (x - mean) / std per channel", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "output": {"shape": ["k", len(info.aus)], "meaning": "probability that each AU is present"},
        "aus": list(info.aus),
        "thresholds": None if not th else [float(v) for v in th["values"]],
        "thresholds_source": (f"per AU, chosen on the run's {th['source']}" if th else
                              "none chosen: use the protocol's 0.5 for every AU"),
    }, indent=2) + "\n")
    return ExportResult(path, fmt, size, tuple(info.aus), diff, sidecar,
                        None if not th else tuple(float(v) for v in th["values"]))
