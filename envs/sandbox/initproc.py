"""What a host's init is doing, read from the machine's /proc (the agent can neither fake nor hide it).

sysvinit takes requests (``shutdown``, ``telinit 0``, ``reboot``) through its FIFO, /run/initctl: the command
writes the request and exits, and init acts on it when it next runs. On a busy machine that can be well after
the agent's command returned, so a shutdown the agent asked for must be waited for before its next command
runs, or the agent's session would go on on a server that is going down.

Every read is bounded and opens nothing the agent could have substituted: init's open descriptor is pinned
with ``O_PATH`` and reopened only if it is a FIFO, which a non-blocking read-side open cannot stall on.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import termios

from .confine import pid_namespace

INITCTL = "/run/initctl"
_MAX_FDS = 64  # init keeps a handful open; past that the request check gives up (treated as none pending)


def booting(init_pid: int) -> bool:
    """Whether init still runs the runlevel's boot scripts (``rc``): until they finish, ``ps`` shows a server
    that booted seconds ago. False when it cannot be read."""
    try:
        with open(f"/proc/{init_pid}/task/{init_pid}/children") as f:
            children = f.read().split()
        for child in children:
            with open(f"/proc/{child}/comm") as f:
                if f.read().strip() == "rc":
                    return True
    except OSError:
        return False
    return False


def state(init_pid: int) -> str | None:
    """The scheduler state of ``init_pid`` (``S`` asleep waiting for work, ``R`` running or about to), or None
    when it cannot be read."""
    try:
        with open(f"/proc/{init_pid}/stat", "rb") as f:
            data = f.read(4096)
    except OSError:
        return None
    _, sep, rest = data.rpartition(b")")  # the command name may hold spaces and parentheses
    fields = rest.split()
    return fields[0].decode("ascii", "replace") if sep and fields else None


def pending_request_bytes(init_pid: int) -> int:
    """Bytes written to init's request FIFO that init has not read yet (0 when none, or unknown)."""
    fd_dir = f"/proc/{init_pid}/fd"
    try:
        names = sorted(os.listdir(fd_dir), key=lambda n: int(n) if n.isdigit() else 0)[:_MAX_FDS]
    except OSError:
        return 0
    for name in names:
        try:
            if os.readlink(f"{fd_dir}/{name}") != INITCTL:
                continue
            pinned = os.open(f"{fd_dir}/{name}", os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not stat.S_ISFIFO(os.fstat(pinned).st_mode):
                continue
            fd = os.open(f"/proc/self/fd/{pinned}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
            finally:
                os.close(fd)
        except OSError:
            continue
        finally:
            os.close(pinned)
    return 0


def handling_request(init_pid: int, namespace: str) -> bool:
    """Whether init has a request it has not finished acting on: bytes wait in its FIFO, or it is running
    rather than asleep (it has read a request and not yet recorded the new runlevel). False for a pid that is
    no longer the host's init (its container died and the number was reused), so nothing waits on it."""
    if init_pid <= 1 or not namespace or pid_namespace(init_pid) != namespace:
        return False
    return pending_request_bytes(init_pid) > 0 or state(init_pid) not in ("S", None)
