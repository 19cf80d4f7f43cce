"""Frames in for ``auspread predict``: a source's frames in blocks, what went wrong while decoding them, and an
upper bound on their number for ``predict_video``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from auspread.errors import DataError
from auspread.media import Frame, Source


@dataclass
class DecodeLog:
    """What reading one source met: the decode error that ended it, the unreadable images of a sequence (their
    rows stay, without a face)."""

    error: str | None = None
    bad: list[str] = field(default_factory=list)

    def text(self) -> str | None:
        """The decode error and/or a summary of unreadable images (the table's ``error``)."""
        parts = []
        if self.bad:
            parts.append(f"{len(self.bad)} unreadable image(s), first: {self.bad[0]}")
        if self.error:
            parts.append(self.error)
        return "; ".join(parts) or None


def frame_blocks(source: Source, size: int, log: DecodeLog) -> Iterator[list[Frame]]:
    """``source``'s frames in blocks of ``size``; a decode error goes to ``log.error`` and ends the stream,
    unreadable images are listed in ``log.bad``."""
    block: list[Frame] = []
    try:
        for f in source.frames():
            if f.image is None:
                log.bad.append(f.error or f"frame {f.index}: unreadable")
            block.append(f)
            if len(block) == size:
                yield block
                block = []
    except DataError as e:
        log.error = str(e)
    if block:
        yield block


def num_frames_bound(source: Source) -> int:
    """An upper bound on the frame count for ``predict_video``: the declared count, else the counted one
    (:meth:`~auspread.media.Source.count_frames`), else a large number."""
    return int(source.num_frames_hint() or source.count_frames() or 1 << 30)
