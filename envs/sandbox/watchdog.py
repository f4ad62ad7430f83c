"""The time-to-live of peergym's containers, enforced from outside them.

A server's PID 1 is Debian's own init, so nothing inside a host may show how long it has to live (a curious
agent reading ``ps`` would see a lifetime). The lifetime is kept by this watchdog instead: one small process
per runner process, started with the runner's first sandbox in a session of its own (so a signal to the
runner's process group does not take it along), which every few seconds

* removes the runner's containers whose expiry label has passed (``lifecycle.EXPIRES``), and
* once the runner is gone (a crash, SIGKILL, a closed terminal), removes all of the runner's containers
  and exits.

It only ever touches containers labelled with its runner's owner id, so concurrent runs never touch each
other's hosts. Every run's first sandbox also reaps what dead runs left (:func:`lifecycle.reap_dead_once`);
the watchdog covers the case where no other run ever starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

from . import lifecycle

POLL_S = 2.0
DETACH = "--detach"  # the watchdog forks away from its runner (see _detach)
ENGINE_PATIENCE_S = 120.0  # an unreachable engine is waited for this long after the runner is gone

_started_for: int | None = None  # the pid that started a watchdog (a forked child starts its own)
_process: subprocess.Popen[bytes] | None = None
_lock = threading.Lock()


def ensure_running() -> None:
    """Start this process's watchdog unless it already has one. Returns at once."""
    global _started_for
    with _lock:
        if _started_for == os.getpid():
            return
        _started_for = os.getpid()
    global _process
    _process = subprocess.Popen(  # kept referenced: it outlives us on purpose, no warning at collection
        [sys.executable, "-m", "peergym.envs.sandbox.watchdog", lifecycle.owner_id(), DETACH],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    # It forks the watchdog and exits at once; reaping it here keeps no zombie, without waiting on the caller.
    threading.Thread(target=_process.wait, name="peergym-watchdog-reaper", daemon=True).start()


def sweep(api: Any, owner: str, owner_alive: bool, now: float) -> tuple[int, int]:
    """Remove ``owner``'s expired containers (all of them if the owner is gone). Returns (found, removed)."""
    mine = api.containers(all=True, filters={"label": f"{lifecycle.OWNER}={owner}"})
    doomed = [
        c["Id"]
        for c in mine
        if not owner_alive or float((c.get("Labels") or {}).get(lifecycle.EXPIRES, "0") or 0) < now
    ]
    lifecycle.remove_now(api, doomed)
    return len(mine), len(doomed)


def watch(owner: str, poll_s: float = POLL_S) -> None:
    """Run until ``owner`` is gone and none of its containers is left."""
    from .engine import client

    api: Any = None
    gone_since: float | None = None
    while True:
        alive = lifecycle.owner_alive(owner)
        if not alive and gone_since is None:
            gone_since = time.monotonic()
        try:
            api = api or client().api
            found, removed = sweep(api, owner, alive, time.time())
            if not alive and found == removed:
                return
        except Exception:  # the engine restarting, or not reachable: try again at the next poll
            api = None
            if gone_since is not None and time.monotonic() - gone_since > ENGINE_PATIENCE_S:
                return
        time.sleep(poll_s)


def _detach() -> None:
    """Become nobody's child: fork, and let the parent (the runner's direct child) exit.

    Process managers kill what their workers leave behind by parentage: Ray's raylet, when a worker exits
    (its driver killed, a task cancelled), kills that worker's child processes, new session or not. The
    watchdog must outlive its runner, so it is adopted by init instead of staying the runner's child.
    """
    if os.fork() > 0:
        os._exit(0)


if __name__ == "__main__":
    if DETACH in sys.argv[2:]:
        _detach()
    watch(sys.argv[1])
