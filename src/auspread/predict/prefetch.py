"""A generator run ahead in a background thread, joined to its consumer by a bounded queue."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import torch

from auspread.predict.threads import StageClock


def prefetch(gen: Iterator, depth: int = 2, threads: int | None = None, clock: StageClock | None = None) -> Iterator:
    """Run ``gen`` in a background thread, ``depth`` items ahead (decoding, MTCNN and warping release the GIL, so
    they overlap with the AU model on another core). ``threads``: torch intra-op threads of that thread (OpenMP's
    setting is per thread). Exceptions are re-raised in the consumer; the producer stops when the consumer stops
    early. ``clock``: receives the thread's CPU seconds per item produced."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            it = iter(gen)
            while True:
                c0 = time.thread_time()
                try:
                    item = next(it)
                except StopIteration:
                    break
                if clock is not None:
                    clock.add(time.thread_time() - c0)
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", end))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(("error", e))

    t = threading.Thread(target=produce, name="auspread-prefetch", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)
        close = getattr(gen, "close", None)
        if close is not None:
            close()
