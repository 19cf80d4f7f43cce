"""Progress display: a tqdm bar on a terminal; elsewhere (a log file, a pipe, a scheduler) plain lines, one per
``every`` units (an epoch, a file), so a redirected run writes a readable log instead of thousands of redraws."""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Iterable


def is_terminal(stream: IO | None = None) -> bool:
    """Whether ``stream`` (default stderr, where bars go) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, disable: bool = False, leave: bool = True, every: int | None = None,
             file: IO | None = None) -> Any:
    """A tqdm bar when ``file`` (default stderr) is a terminal, else a :class:`PlainProgress` printing a line every
    ``every`` units (``None``: at each ``update``; ``0``: only when closed). Both take ``update``,
    ``set_postfix_str``, ``set_description``, ``write`` and ``close``, and iterate over ``iterable``."""
    if is_terminal(file):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, leave=leave,
                    dynamic_ncols=True, file=file)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, every=every,
                         file=file)


class PlainProgress:
    """tqdm's small interface, writing ``desc: n/total unit (pct) elapsed, rate, postfix`` lines."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, disable: bool = False, every: int | None = None,
                 file: IO | None = None):
        self.iterable, self.desc, self.unit, self.disable, self.every = iterable, desc, unit, disable, every
        self.total = total if total is not None or iterable is None or not hasattr(iterable, "__len__") else len(iterable)
        self.n = self._start = self._printed = initial
        self.postfix = ""
        self.file = file
        self._t0 = time.perf_counter()
        self._closed = False

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)
        self.close()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.every is None or (self.every > 0 and self.n // self.every > self._printed // self.every):
            self._line()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def write(self, s: str) -> None:
        if not self.disable:
            print(s, file=self.file or sys.stderr, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n != self._printed or self.every == 0:
            self._line()

    def _line(self) -> None:
        self._printed = self.n
        if self.disable:
            return
        el = time.perf_counter() - self._t0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = (self.n - self._start) / el if el > 0 else 0.0
        parts = [f"{self.desc}: " if self.desc else "", f"{done} {self.unit}{pct}, {_clock(el)}, {rate:.2f} {self.unit}/s"]
        if self.postfix:
            parts.append(f", {self.postfix}")
        self.write("".join(parts))


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
