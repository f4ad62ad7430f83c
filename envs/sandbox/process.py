"""One-off processes in a host, as a sandbox API runs them: argv, stdin, stdout and stderr apart, a user, an
environment, a working directory and a timeout enforced from the host.

The agent's persistent shell (shell.py) is for the agent; this is for the people and tools around it (an
Inspect sandbox, a grader, a setup step). Each call is its own ``docker exec``: the input is streamed on a
thread while the output is read (so neither side blocks on a full pipe), and on timeout every process the
call started is killed from the host, confined to the container's pid namespace (confine.py).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .confine import kill_descendants, signal_confined
from .types import SandboxError

_HEADER = struct.Struct(">BxxxL")  # the engine's multiplexed stream: kind (1 stdout, 2 stderr), length
_CHUNK = 1 << 16


@dataclass(frozen=True)
class ProcessResult:
    """What a one-off process did: its exit status and what it wrote on each stream (bytes, uncut)."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def success(self) -> bool:
        return self.returncode == 0


def run_process(api: Any, container_id: str, namespace: str, argv: list[str], *, input: bytes | None = None,
                user: str, environment: dict[str, str] | None, workdir: str,
                timeout: float | None) -> ProcessResult:  # fmt: skip
    """Run ``argv`` in the container and wait for it.

    Raises:
        TimeoutError: it outlived ``timeout`` seconds; it and every process it started were killed.
        PermissionError: ``argv[0]`` cannot be executed (the engine's exit status 126).
        FileNotFoundError: ``argv[0]`` does not exist (127), or the working directory does not.
        SandboxError: the engine refused the call for another reason (its message says why).
    """
    import docker.errors

    try:
        exec_id = api.exec_create(container_id, argv, stdin=True, stdout=True, stderr=True, tty=False,
                                  user=user, environment=environment or {}, workdir=workdir)["Id"]  # fmt: skip
        sock = api.exec_start(exec_id, socket=True)._sock
    except docker.errors.APIError as exc:
        message = str(getattr(exc, "explanation", None) or exc)
        if "unable to find user" in message or "no matching entries" in message:
            return ProcessResult(126, b"", message.encode())  # the tools print the user name; so does this
        raise SandboxError(f"could not run {argv[:1]}: {message}") from exc
    deadline = None if timeout is None else time.monotonic() + timeout
    writer = threading.Thread(target=_feed, args=(sock, input or b""), daemon=True)
    writer.start()
    out, err = bytearray(), bytearray()
    try:
        timed_out = not _demux(sock, out, err, deadline)
    finally:
        sock.close()
    if timed_out:
        _kill(api, exec_id, namespace)
        raise TimeoutError(f"{argv[:1]} did not finish within {timeout:g} s; it and its children were killed")
    code, name = _exit_code(api, exec_id), user.split(":")[0]
    # The engine sometimes closes the stream before writing why it could not start the process; an unknown user
    # is the one reason the caller can fix, so ask the host's own database.
    if (
        code == 126
        and not out
        and not err
        and not name.isdigit()
        and not _user_exists(api, container_id, name)
    ):
        out += f"unable to find user {user.split(':')[0]}: no matching entries in passwd file\n".encode()
    return checked(ProcessResult(code, bytes(out), bytes(err)), argv, workdir)


def _user_exists(api: Any, container_id: str, name: str) -> bool:
    exec_id = api.exec_create(container_id, ["getent", "passwd", name], user="root")["Id"]
    api.exec_start(exec_id)
    return _exit_code(api, exec_id) == 0


def checked(result: ProcessResult, argv: Sequence[str], workdir: str) -> ProcessResult:
    """``result``, or the exception for a program that could not be started (the runtime's 126 and 127)."""
    said = (result.stderr + result.stdout).lower()
    if result.returncode == 126 and b"permission denied" in said:
        raise PermissionError(f"{argv[0]}: permission denied (not executable)")
    if result.returncode in (126, 127) and b"no such file" in said:
        raise FileNotFoundError(f"{argv[0]} (or the working directory {workdir}): no such file or directory")
    return result


def _feed(sock: socket.socket, data: bytes) -> None:
    """Stream the input, then close the write side: the process reads end of file."""
    try:
        view = memoryview(data)
        for start in range(0, len(view), _CHUNK):
            sock.sendall(view[start : start + _CHUNK])
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the process exited without reading everything: so does a pipe


def _demux(sock: socket.socket, out: bytearray, err: bytearray, deadline: float | None) -> bool:
    """Read the multiplexed stream to its end; False when the deadline passed first."""
    pending = bytearray()
    while True:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(min(left, 1.0))
        else:
            sock.settimeout(None)
        try:
            data = sock.recv(_CHUNK)
        except TimeoutError:
            continue
        except OSError:
            return True
        if not data:
            return True
        pending += data
        while len(pending) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(pending)
            if len(pending) < _HEADER.size + length:
                break
            payload = pending[_HEADER.size : _HEADER.size + length]
            (err if kind == 2 else out).extend(payload)
            del pending[: _HEADER.size + length]


def _exit_code(api: Any, exec_id: str) -> int:
    for _ in range(400):  # the stream ends a moment before the engine records the status
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        time.sleep(0.005)
    raise SandboxError("the engine did not report the process's exit status")


def _kill(api: Any, exec_id: str, namespace: str) -> None:
    pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
    if pid > 1:
        kill_descendants(pid, namespace)
        signal_confined(pid, 9, namespace)
