"""Signals the runner sends, provably confined to the episode's own containers.

The runner kills processes inside a host from outside (a command past its timeout, a shell being replaced)
because nothing inside the container can be trusted to do it. The agent is root in that container and may
kill everything there, its init included, so any pid the runner holds can go stale: the engine can report a
dying exec's pid as 0, and a dead process's pid can be reused by a process of the machine. An unconfined
``kill`` with such a pid once SIGKILLed every process on the machine (``kill_descendants(0)``).

So every signal goes through :func:`signal_confined`, which

1. refuses a pid <= 1 outright;
2. opens a pidfd for the pid (a handle on that process, never on a later process with the same number);
3. reads the process's pid namespace from the host's /proc and refuses anything outside the namespace of the
   episode's container;
4. signals through the pidfd: if the process died after step 2, the signal fails instead of reaching a
   process that reused its pid, so the namespace read in step 3 was that process's own.
"""

from __future__ import annotations

import os
import signal


def pid_namespace(pid: int) -> str | None:
    """The pid namespace of ``pid`` as the kernel names it (``pid:[4026532256]``), or None if it is gone."""
    if pid <= 0:
        return None
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def signal_confined(pid: int, sig: int, namespace: str) -> bool:
    """Send ``sig`` to ``pid`` only if it is a live process in pid namespace ``namespace``.

    Returns whether the signal was delivered. Never raises for a vanished or foreign process.
    """
    if pid <= 1 or not namespace:
        return False
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # gone already (ProcessLookupError), or not ours to see
        return False
    try:
        if pid_namespace(pid) != namespace:
            return False
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except OSError:  # died between the check and the signal: the pidfd refused, nothing else was hit
        return False
    finally:
        os.close(pidfd)


def descendants(root_pid: int) -> list[int]:
    """Host pids of every process below ``root_pid``, read from the host's /proc (tamper-proof).

    Returns nothing for a pid <= 1: every process on the machine descends from those.
    """
    if root_pid <= 1:
        return []
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            # The command name may contain spaces and parentheses: fields start after the last ')'.
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_descendants(root_pid: int, namespace: str, passes: int = 10) -> int:
    """SIGKILL everything below ``root_pid`` inside ``namespace``. Returns the number of SIGKILLs delivered.

    The tree is frozen first: SIGSTOP to every process below the root, rescanning until no new one appears,
    then SIGKILL to them all. Killing as we scan would let a child forked after a scan outlive its parent's
    kill: orphaned, it is adopted by the container's PID 1 and is no longer below the root (seen on a busy
    machine: ``sleep 1000 &`` surviving its command's timeout). A stopped process cannot fork, so once the
    frozen set stops growing nothing can leave it. A fork bomb is frozen the same way, a pass at a time.
    """
    delivered = 0
    for _ in range(passes):
        frozen: set[int] = set()
        for _ in range(passes * 2):
            new = [pid for pid in descendants(root_pid) if pid not in frozen]
            if not new:
                break
            stopped = {pid for pid in new if signal_confined(pid, signal.SIGSTOP, namespace)}
            if not stopped:  # what is left is outside the namespace or already gone: nothing we may do
                break
            frozen |= stopped
        if not frozen:
            break
        delivered += sum(signal_confined(pid, signal.SIGKILL, namespace) for pid in frozen)
    return delivered
