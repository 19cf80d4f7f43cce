"""BP4D+ (MMSE) reader.

Layout as BP4D (``[RawData/]AUCoding/AU_OCC/F001_T1.csv`` and ``[RawData/]2D+3D/F001/T1/<n>.jpg`` after
extracting the per-subject zips), with three differences handled here:

- The CSV header holds AU numbers that are not reliable (one copy starts ``1,1,2,4,…``), so AU columns are read
  **by position**: column 1+i is AU ``coded_aus[i]`` of the 34 coded AUs
  (1,2,4,5,6,7,9,10,11,12,13,14,15,16,17,18,19,20,22,23,24,27,28,29,30,31,32,33,34,35,36,37,38,39). A header that
  is exactly ``0,1,…,N`` (a BP4D-style export) is read by number instead.
- CSV frame numbers are **1-based** while images are numbered from 0: CSV frame ``f`` is image ``f − 1``.
  The reader probes this per video: offset −1 first, and 0 only when −1 leaves coded frames without an image
  but 0 does not (a copy renumbered to match). The offset used is ``record.meta["image_offset"]``; pass
  ``image_offset=`` to force one. ``frame_numbers`` keep the CSV numbering.
- Only tasks T1, T6, T7 and T8 are AU-coded; other tasks are skipped unless ``tasks=`` names them.
Image names mix 3- and 4-digit padding between subjects; any padding is accepted per folder.
"""

from __future__ import annotations

from pathlib import Path

from auspread.data.index import VideoIndex
from auspread.data.readers._common import parse_options
from auspread.data.readers.bp4d import BP4DOptions, read_occ_tree

CSV_TO_IMAGE_OFFSETS = (-1, 0)


class BP4DPlusOptions(BP4DOptions):
    pass


def read(root: str | Path, **options) -> VideoIndex:
    """Read a BP4D+ copy (12 benchmark AUs by default; ``aus=`` any of the 34 coded AUs)."""
    opts = parse_options(BP4DPlusOptions, options, "bp4d+")
    return read_occ_tree(Path(root), opts, dataset="BP4D+", columns="auto", offsets=CSV_TO_IMAGE_OFFSETS)
