"""Make SIGTERM (and SIGHUP) unwind like Ctrl-C, so every ``finally`` and ``close()`` runs.

Python turns SIGINT into ``KeyboardInterrupt`` by itself; SIGTERM would otherwise kill the process without
running any clean-up, which is how other harnesses leak containers when a scheduler stops them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` (main thread only; else a
    no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # A shell starts background jobs (`make run-episode &`, CI scripts) with SIGINT ignored, and Python keeps
    # it so: `kill -INT` would then do nothing. Within the block it interrupts, as Ctrl-C does.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
