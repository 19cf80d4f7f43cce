"""Prediction inputs: re-exported from :mod:`auspread.media`, which sits below both ``faces`` and ``predict``."""

from auspread.media import (IMAGE_EXTS, VIDEO_EXTS, Frame, ImageSequence, Source, VideoSource,  # noqa: F401
                            expand_inputs, load_image)
