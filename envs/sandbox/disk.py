"""Bounded disks: each host's writable layer has a size limit, watched from the host.

Why watched and not a quota: the engine's overlay2 storage enforces ``--storage-opt size`` only on xfs with
project quotas, which most machines do not have. So one background thread measures every live host's writable
layer a few times a second (``os.fwalk``: directory file descriptors, no symlink followed, whatever the agent
swaps in) and stops a host whose layer outgrows its limit. Stopping (SIGKILL to the container's init
through the engine) ends every process that could write more, including background jobs started between
steps, and leaves the layer in place for the final observation. Between two looks a writer at disk speed
can overshoot the limit by about its throughput times the interval (0.25 s: ~0.4 GB at 1.4 GB/s).
"""

from __future__ import annotations

import os
import stat as st
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

GIB = 1 << 30
INTERVAL_S = 0.25


def layer_usage(upper_dir: str) -> int:
    """Bytes allocated on disk by the files under ``upper_dir`` (hard links counted once, holes free)."""
    seen: set[int] = set()
    total = 0
    try:
        walker = os.fwalk(upper_dir, follow_symlinks=False)
        for _dirpath, dirnames, filenames, dirfd in walker:
            for name in (*dirnames, *filenames):
                try:
                    s = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except OSError:  # vanished between the listing and the stat: it uses nothing now
                    continue
                if st.S_ISREG(s.st_mode) and s.st_nlink > 1:
                    if s.st_ino in seen:
                        continue
                    seen.add(s.st_ino)
                total += s.st_blocks * 512
    except OSError:
        pass  # the layer itself is gone: the container was removed
    return total


def free_bytes(path: str) -> int:
    """Bytes free for an unprivileged writer on the filesystem holding ``path``."""
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


@dataclass
class Watched:
    """One host under watch: its layer, its limit, and what to call once when it goes over."""

    upper_dir: str
    limit: int
    on_exceeded: Callable[[int], None]
    fired: bool = False


class DiskWatch:
    """One daemon thread per process that measures every registered layer, started on first use."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._reset()

    def _reset(self) -> None:
        """Fresh state, also in a forked child: the parent's hosts and thread are the parent's, and its lock
        may have been held by the watch thread at the fork."""
        self._watched: dict[object, list[Watched]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, owner: object, hosts: list[Watched]) -> None:
        with self._lock:
            self._watched[owner] = hosts
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="peergym-disk-watch", daemon=True)
                self._thread.start()

    def remove(self, owner: object) -> None:
        with self._lock:
            self._watched.pop(owner, None)

    def check(self, owner: object) -> None:
        """Measure ``owner``'s hosts now (the watch thread does this on its own; tests and steps may too)."""
        with self._lock:
            hosts = list(self._watched.get(owner, []))
        for host in hosts:
            self._measure(host)

    def _measure(self, host: Watched) -> None:
        if host.fired:
            return
        usage = layer_usage(host.upper_dir)
        if usage > host.limit:
            host.fired = True
            try:
                host.on_exceeded(usage)
            except Exception:  # the host may be gone already; the episode sees the flag either way
                pass

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            with self._lock:
                hosts = [h for group in self._watched.values() for h in group]
            for host in hosts:
                self._measure(host)
            # Many or large layers: look less often rather than spend the runner's CPU on looking.
            spent = time.monotonic() - started
            time.sleep(max(self.interval_s, 4 * spent))


WATCH = DiskWatch()
os.register_at_fork(after_in_child=WATCH._reset)
