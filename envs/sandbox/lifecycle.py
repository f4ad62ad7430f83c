"""Labels, background removal and the reaper: why no container outlives its run.

Every container peergym creates carries labels naming its run, episode, owner process and expiry time.
Three mechanisms then guarantee removal, each covering the previous one's blind spot:

1. ``Sandbox.close()`` hands its containers to a background remover (so close is instant on the caller's path)
   and the remover is drained at interpreter exit (``atexit``), so removal does finish.
2. A runner killed with SIGKILL runs no ``atexit``: the next peergym process, at its first sandbox (or
   ``make clean``), calls :func:`reap`, which removes containers whose owner process is gone or whose
   expiry has passed.
3. Should nothing run peergym again, the runner's watchdog (:mod:`.watchdog`, a process of its own started
   with the runner's first sandbox) removes them as soon as the runner is gone, and any of them at its expiry.
   Nothing inside a container keeps time: its PID 1 is Debian's init, with no lifetime to show.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util
import os
import queue
import socket
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from . import engine, seeding

LABEL_PREFIX = "peergym."
MANAGED = LABEL_PREFIX + "managed"
RUN = LABEL_PREFIX + "run"
EPISODE = LABEL_PREFIX + "episode"
HOST = LABEL_PREFIX + "host"
OWNER = LABEL_PREFIX + "owner"
EXPIRES = LABEL_PREFIX + "expires"

# Bounds concurrent create/start/remove calls so a wide sweep does not saturate the daemon.
DOCKER_CONCURRENCY = int(os.environ.get("PEERGYM_DOCKER_CONCURRENCY", "8"))
DOCKER_OPS = threading.BoundedSemaphore(DOCKER_CONCURRENCY)


def _process_start_ticks(pid: int, proc: str = "/proc") -> str | None:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()[19].decode()


def _pid_namespace_id(pid: int | str = "self") -> str:
    """The inode number of a process's pid namespace (``4026531836``), or "" if it cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid").partition("[")[2].rstrip("]")
    except OSError:
        return ""


def owner_id(pid: int | None = None) -> str:
    """``host:pidns:pid:start-ticks`` of a process (this one by default).

    The start time tells a recycled pid from the original; the pid namespace tells a runner in another
    namespace of the same machine (a CI job in a container sharing the engine) from a dead one, since the
    same number names different processes there.
    """
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{_pid_namespace_id(pid)}:{pid}:{_process_start_ticks(pid)}"


def owner_alive(owner: str) -> bool:
    """Whether the process named by ``owner`` still runs; when that cannot be known, True (the container's
    expiry label still bounds its life). Owners on other machines count as alive."""
    parts = owner.split(":")
    if len(parts) == 3:  # written before the namespace was recorded: judged in our own namespace
        host, pid, ticks = parts
        namespace = _pid_namespace_id()
    elif len(parts) == 4:
        host, namespace, pid, ticks = parts
    else:
        return False
    if host != socket.gethostname():
        return True  # not ours to judge
    if not pid.isdigit():
        return False
    if namespace == _pid_namespace_id():
        return _process_start_ticks(int(pid)) == ticks
    return _alive_in_namespace(namespace, int(pid), ticks)


def _alive_in_namespace(namespace: str, pid: int, ticks: str) -> bool:
    """Look for the owner among the processes of another pid namespace that this one can see."""
    seen = False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or _pid_namespace_id(entry.name) != namespace:
            continue
        seen = True
        try:
            with open(f"/proc/{entry.name}/status") as f:
                nspid = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
        except OSError:
            continue
        # NSpid lists the process's pid in each namespace from ours down to its own: the last is its own.
        if nspid and int(nspid[-1]) == pid and _process_start_ticks(int(entry.name)) == ticks:
            return True
    if seen:
        return False  # that namespace is visible and its owner is not in it
    # No process of that namespace is visible. From the machine's initial namespace every namespace is
    # visible, so it is gone, and its owner with it; from a nested one it may just be out of sight.
    return not _in_initial_pid_namespace()


# The kernel gives the machine's initial pid namespace a fixed inode number (PROC_PID_INIT_INO). NSpid in
# /proc/self/status cannot tell: it counts namespaces from that of the /proc mount, which a runner under
# `unshare --pid --mount-proc` mounted itself, so there too it shows a single entry.
_INITIAL_PID_NAMESPACE = str(0xEFFFFFFC)


def _in_initial_pid_namespace() -> bool:
    return _pid_namespace_id() == _INITIAL_PID_NAMESPACE


def labels_for(run_id: str, episode_id: str, host: str, ttl_s: int) -> dict[str, str]:
    return {
        MANAGED: "1",
        RUN: run_id,
        EPISODE: episode_id,
        HOST: host,
        OWNER: owner_id(),
        EXPIRES: str(int(time.time()) + ttl_s),
    }


def remove_now(api: Any, container_ids: Iterable[str]) -> None:
    """Force-remove containers (SIGKILL, no stop grace period), ignoring ones already gone. An episode's
    hosts are removed side by side (the engine takes ~35 ms for each)."""

    def remove(cid: str) -> None:
        with DOCKER_OPS:
            try:
                api.remove_container(cid, force=True, v=True)
            except Exception as exc:  # docker.errors.NotFound, or removal already in progress
                if "No such container" not in str(exc) and "already in progress" not in str(exc):
                    raise

    # Plain threads: this also runs at interpreter exit, where concurrent.futures takes no more work.
    errors: list[BaseException] = []

    def remove_noting(cid: str) -> None:
        try:
            remove(cid)
        except BaseException as exc:
            errors.append(exc)

    *others, last = list(container_ids) or [""]
    threads = [threading.Thread(target=remove_noting, args=(cid,), daemon=True) for cid in others]
    for thread in threads:
        thread.start()
    if last:
        remove_noting(last)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class _Remover:
    """A daemon thread that removes containers handed to it; drained at exit."""

    def __init__(self) -> None:
        self._reset()
        self.errors: list[str] = []

    def _reset(self) -> None:
        """Fresh state: also what a forked child starts with (the parent's pending removals and thread are
        the parent's; a copied queue would make the child wait for work nobody will do)."""
        self._queue: queue.Queue[tuple[Any, list[str]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, api: Any, container_ids: list[str]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="peergym-remover", daemon=True)
                self._thread.start()
        self._queue.put((api, container_ids))

    def _work(self) -> None:
        while True:
            api, ids = self._queue.get()
            try:
                remove_now(api, ids)
            except Exception as exc:  # recorded; the reaper retries on the next start
                self.errors.append(f"{ids}: {exc}")
            finally:
                self._queue.task_done()

    def drain(self, timeout: float = 120.0) -> bool:
        """Wait until every submitted removal finished; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True


REMOVER = _Remover()


def _after_fork_in_child() -> None:
    global DOCKER_OPS
    REMOVER._reset()
    DOCKER_OPS = threading.BoundedSemaphore(DOCKER_CONCURRENCY)  # a parent thread may have held it


os.register_at_fork(after_in_child=_after_fork_in_child)

# Every sandbox that created containers and is not closed yet: closed at any normal exit of the process.
OPEN: weakref.WeakSet[Any] = weakref.WeakSet()
_exit_hooked_in: int | None = None  # the pid whose exit runs _at_exit (a forked child hooks its own)
_exit_lock = threading.Lock()


def _at_exit() -> None:
    """Close what the program left open (a script that never called close(), an exception in its loop) and
    wait for every removal. Runs at interpreter exit, and in multiprocessing workers (fork, forkserver), which
    leave through os._exit without running atexit, through multiprocessing's own exit finalizers."""
    for box in list(OPEN):
        if getattr(box, "owner_pid", None) != os.getpid():
            continue  # a forked child's copy of its parent's sandbox: the parent's to close
        try:
            box.close()
        except Exception:  # closing one must not keep the others open
            pass
    REMOVER.drain()


def hook_exit() -> None:
    """Make sure this process runs :func:`_at_exit` when it ends (called with every sandbox's first container)."""
    global _exit_hooked_in
    with _exit_lock:
        if _exit_hooked_in == os.getpid():
            return
        _exit_hooked_in = os.getpid()
    atexit.register(_at_exit)
    if multiprocessing.parent_process() is not None:
        multiprocessing.util.Finalize(None, _at_exit, exitpriority=100)


_reaped_once = False
_reap_lock = threading.Lock()


def reap_dead_once(api: Any) -> None:
    """At a process's first sandbox: remove what runs killed with SIGKILL left (their atexit never ran)."""
    global _reaped_once
    with _reap_lock:
        if _reaped_once:
            return
        _reaped_once = True
    try:
        reap(api)
        reap_builds()
    except Exception:  # a failed clean-up must not stop this run; `peergym clean` reports it
        pass


def reap_builds(*, everything: bool = False) -> list[str]:
    """Remove the layers that runs killed while seeding a host left half-built on the engine's disk (all
    unfinished builds with ``everything``); returns their names. Nothing when that disk is not this machine's."""
    try:
        return seeding.reap_builds(engine.data_root(), owner_alive, everything)
    except Exception:  # no engine answers: nothing can be building
        return []


def reap(api: Any, *, everything: bool = False) -> list[str]:
    """Remove peergym containers whose owner is dead or whose expiry passed (all of ours if ``everything``).

    Returns the names of what was removed. Containers of live runs on this machine are left alone, so two
    concurrent sweeps never reap each other.
    """
    now = time.time()
    doomed: list[str] = []
    for info in api.containers(all=True, filters={"label": MANAGED}):
        labels = info.get("Labels") or {}
        expired = float(labels.get(EXPIRES, "0") or 0) < now
        if everything or expired or not owner_alive(labels.get(OWNER, "")):
            doomed.append(info["Id"])
    remove_now(api, doomed)
    # peergym creates no Docker networks (see network.py); remove any labelled ones an older version left.
    for net in api.networks(filters={"label": MANAGED}):
        try:
            api.remove_network(net["Id"])
        except Exception:
            pass
    return doomed
