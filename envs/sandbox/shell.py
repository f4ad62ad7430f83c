"""One persistent bash session per episode, driven over an attached ``docker exec`` socket.

Why this shape: a ``docker exec`` per command costs ~50 ms and loses ``cd``/``export`` between commands; a
bash kept open on the exec's socket answers in well under a millisecond and behaves like a terminal.

Protocol: each command is sent as one line ``__run NONCE $'<command, ANSI-C quoted>'``. ``__run`` evals the
command in the shell itself (so cwd and environment persist) with stdin from /dev/null (so a command can never
swallow the next protocol line), then prints ``\\n\\x1eNONCE RC\\x1e\\n``. The nonce is fresh per command, so
output that merely looks like a marker cannot end a command early.

Timeouts are enforced from the host, not with anything inside the container the agent could replace: every
descendant of the shell is SIGKILLed through the host's /proc, each signal confined to the container's pid
namespace (see confine.py). If the shell itself is stuck (a builtin loop), it is killed and replaced, keeping
its working directory; a shell that cannot be reopened means the host is dead.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from .confine import kill_descendants, pid_namespace, signal_confined
from .types import ExecResult, HostDied

_FRAME_HEADER = struct.Struct(">BxxxI")
# Sent once when the shell starts. stderr joins stdout so the agent sees both, interleaved, like a terminal.
_BOOTSTRAP = b'exec 2>&1\n__run() { eval "$2" </dev/null; printf \'\\n\\036%s %d\\036\\n\' "$1" "$?"; }\n'
# bash names errors of code run inside a function defined on stdin after that function's source, "main", with
# a line number ("main: line 2: foo: command not found"): a tell that a wrapper runs the commands. A terminal
# (interactive bash) prints "bash: foo: command not found", which is what the agent is shown.
_WRAPPER_ERROR_PREFIX = re.compile(rb"(?m)^main: line [0-9]+: ")
_GRACE_AFTER_KILL_S = 1.0
_SEND_TIMEOUT_S = 30.0
SHELL_START_TIMEOUT_S = 10.0  # how long a new shell may take to show its pid (a busy engine is slow)
_ABORT_POLL_S = 0.2  # how often a running command checks its abort callback
DEFAULT_OUTPUT_CAP = 20_000


def ansi_c_quote(command: str) -> bytes:
    """Quote ``command`` as a bash ``$'...'`` word that fits on one line, byte for byte."""
    out = bytearray(b"$'")
    for byte in command.encode("utf-8", errors="surrogateescape"):
        if 0x20 <= byte < 0x7F and byte not in (0x27, 0x5C):  # printable, not ' or backslash
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    out.append(0x27)
    return bytes(out)


class _OutputCollector:
    """Keeps the first ``cap`` bytes of a stream and a small window of its end, to find the end marker.

    Memory stays bounded whatever the command prints (``yes`` for a minute costs nothing but time).
    """

    def __init__(self, cap: int, marker_prefix: bytes) -> None:
        self.cap = cap
        self.prefix = marker_prefix
        self.window = len(marker_prefix) + 16
        self.data = bytearray()
        self.dropped = 0
        self.searched = 0

    def feed(self, chunk: bytes) -> tuple[int, int] | None:
        """Add output; return ``(marker_start, exit_code)`` once the end marker is complete."""
        self.data += chunk
        pos = self.data.find(self.prefix, max(0, self.searched - self.window))
        if pos >= 0:
            end = self.data.find(b"\x1e\n", pos + len(self.prefix))
            if end >= 0:
                return pos, int(self.data[pos + len(self.prefix) : end])
            return None
        self.searched = len(self.data)
        excess = len(self.data) - (self.cap + 2 * self.window)
        if excess > 0:
            del self.data[self.cap : self.cap + excess]
            self.dropped += excess
            self.searched -= excess
        return None

    def result(self, marker_start: int | None) -> tuple[str, int]:
        """The output as shown to the agent, and how many bytes the cap dropped."""
        end = len(self.data) if marker_start is None else marker_start
        total = end + self.dropped
        if total <= self.cap:
            return _terminal_text(self.data[:end]), 0
        truncated = total - self.cap
        text = _terminal_text(self.data[: self.cap])
        return f"{text}\n[output truncated: {truncated} bytes]", truncated


def _terminal_text(data: bytes | bytearray) -> str:
    return _WRAPPER_ERROR_PREFIX.sub(b"bash: ", data).decode("utf-8", errors="replace")


RESTART_NOTE = "\n[the shell exited; a new shell was started in the same directory]"


class PersistentShell:
    """A bash session inside one container, as one user, that keeps cwd and environment between commands.

    ``namespace`` is the container's pid namespace (:func:`confine.pid_namespace` of its init): the shell
    must live in it, and every signal the shell sends is confined to it.
    """

    def __init__(
        self,
        api: Any,
        container_id: str,
        *,
        user: str,
        workdir: str,
        namespace: str,
        environment: dict[str, str] | None = None,
        output_cap: int = DEFAULT_OUTPUT_CAP,
    ) -> None:
        self._api = api
        self._container_id = container_id
        self._user = user
        self._namespace = namespace
        self._environment = environment or {}
        self.output_cap = output_cap
        self._sock: socket.socket | None = None
        self._holder: Any = None
        self._pid = 0
        self._exec_id = ""
        self._last_cwd = workdir
        self._pending = bytearray()
        self._open(workdir)

    @property
    def pid(self) -> int:
        """Host pid of the bash process."""
        return self._pid

    def _open(self, workdir: str) -> None:
        """Start bash in the container. Raises HostDied when no shell can be had there (the host is dead)."""
        self._pid = 0
        try:
            exec_id = self._api.exec_create(
                self._container_id,
                # A login shell, named "-bash" in `ps` as a maintainer's session is (its profile only sets PATH:
                # ~/.bashrc returns at once in a shell that is not interactive).
                ["/bin/bash", "-c", "exec -a -bash /bin/bash"],
                stdin=True,
                user=self._user,
                workdir=workdir,
                environment=self._environment,
            )["Id"]
            self._exec_id = exec_id
            self._holder = self._api.exec_start(exec_id, socket=True)
            self._sock = self._holder._sock
            # exec_inspect reports the pid only once the process exists, which a busy engine can take seconds to
            # get to. So first wait for the shell to answer a no-op (it exists by then), then ask: polling the
            # engine from the start instead cost about five inspect calls per shell under a sweep's load.
            nonce = secrets.token_hex(8).encode()
            self._sock.sendall(_BOOTSTRAP + b"__run " + nonce + b" :\n")
            deadline = time.monotonic() + SHELL_START_TIMEOUT_S
            self._read_until_marker(_OutputCollector(64, b"\n\x1e" + nonce + b" "), deadline)
            # The engine records the pid a moment after the process starts: poll for that moment, backing off.
            pid, pause = 0, 0.005
            while True:
                info = self._api.exec_inspect(exec_id)
                pid = int(info.get("Pid") or 0)
                if pid or (not info.get("Running") and info.get("ExitCode") is not None):
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(pause)
                pause = min(pause * 2, 0.1)
        except HostDied:
            raise
        except Exception as exc:  # the docker API raises its own types; all mean no shell can run there
            self._close_socket()
            raise HostDied(f"could not start a shell: {exc}", cause="no_shell") from exc
        # A dying container's exec can report pid 0; a pid of 1 or a process outside the container's pid
        # namespace is not a shell of ours either. Never keep such a pid: it would be signalled later.
        if pid <= 1 or pid_namespace(pid) != self._namespace:
            self._close_socket()
            raise HostDied(f"could not start a shell (the engine reported pid {pid})", cause="no_shell")
        self._pid = pid
        self._pending.clear()

    def cwd(self) -> str:
        """The shell's working directory as the container sees it (read from the host's /proc)."""
        if self._pid > 1 and pid_namespace(self._pid) == self._namespace:
            try:
                self._last_cwd = os.readlink(f"/proc/{self._pid}/cwd")
            except OSError:
                pass  # the shell is gone: its last known directory is the best answer
        return self._last_cwd

    def run(
        self, command: str, timeout: float = 60.0, abort: Callable[[], str | None] | None = None
    ) -> ExecResult:
        """Run ``command`` in the session and wait for it.

        ``abort`` is polled a few times a second while the command runs; when it returns a reason, the
        command's processes are killed and :class:`HostDied` is raised with ``cause`` set to that reason.

        Raises:
            ValueError: the command contains a NUL byte (bash cannot receive one).
            HostDied: the container went away under the shell, or no new shell could be started there.
        """
        if "\x00" in command:
            raise ValueError("commands cannot contain NUL bytes")
        if self._sock is None:
            raise HostDied("the shell is closed", cause="no_shell")
        nonce = secrets.token_hex(8).encode()
        collector = _OutputCollector(self.output_cap, b"\n\x1e" + nonce + b" ")
        start = time.monotonic()
        try:
            # bash reads the whole line before it runs anything, so a long command only needs time to pass.
            self._sock.settimeout(max(timeout, _SEND_TIMEOUT_S))
            self._sock.sendall(b"__run " + nonce + b" " + ansi_c_quote(command) + b"\n")
        except OSError as exc:
            raise HostDied(f"the shell's connection broke while sending a command: {exc}") from exc

        try:
            outcome = self._read_until_marker(collector, start + timeout, abort)
            timed_out = restarted = False
            shell_status = 0
            if outcome is None:  # deadline passed: kill what the command started, give the shell a moment
                timed_out = True
                kill_descendants(self._pid, self._namespace)
                outcome = self._read_until_marker(collector, time.monotonic() + _GRACE_AFTER_KILL_S, abort)
                if outcome is None:
                    self._restart()
                    restarted = True
            elif outcome == "eof":
                shell_status = self._exit_status()
                self._restart()
                restarted = True
        except HostDied as exc:
            exc.output = collector.result(None)[0]
            raise
        if isinstance(outcome, _Aborted):
            kill_descendants(self._pid, self._namespace)
            raise HostDied(outcome.reason, cause=outcome.reason, output=collector.result(None)[0])

        marker = outcome if isinstance(outcome, tuple) else None
        text, truncated = collector.result(marker[0] if marker else None)
        if timed_out:
            text += f"\n[command timed out after {timeout:g} s and was killed]"
            exit_code = 124
        elif marker is None:
            text += RESTART_NOTE
            exit_code = shell_status
        else:
            exit_code = marker[1]
            self.cwd()  # remember it, for a restart after a later command exits the shell
        return ExecResult(
            exit_code=exit_code,
            output=text,
            timed_out=timed_out,
            truncated_bytes=truncated,
            duration_s=time.monotonic() - start,
            shell_restarted=restarted,
        )

    def _read_until_marker(
        self, collector: _OutputCollector, deadline: float, abort: Callable[[], str | None] | None = None
    ) -> tuple[int, int] | str | _Aborted | None:
        """Demultiplex the exec stream into ``collector``: the marker, ``"eof"``, an abort, or None at the
        deadline."""
        assert self._sock is not None
        pending = self._pending
        while True:
            while len(pending) >= 8:
                _stream, size = _FRAME_HEADER.unpack_from(pending)
                if len(pending) < 8 + size:
                    break
                payload = bytes(pending[8 : 8 + size])
                del pending[: 8 + size]
                found = collector.feed(payload)
                if found is not None:
                    # Bytes after the marker (a background job's late output) belong to the next command.
                    tail = collector.data[found[0] :]
                    after = tail[tail.index(b"\x1e\n", 1) + 2 :]
                    if after:
                        pending[:0] = _FRAME_HEADER.pack(1, len(after)) + after
                    return found
            if abort is not None and (reason := abort()):
                return _Aborted(reason)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining if abort is None else min(remaining, _ABORT_POLL_S))
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return "eof"
            if not chunk:
                return "eof"
            pending += chunk

    def _exit_status(self) -> int:
        for _ in range(50):  # the engine records the status a moment after the stream ends
            try:
                info = self._api.exec_inspect(self._exec_id)
            except Exception:  # the container is gone with its exec
                return 0
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            time.sleep(0.01)
        return 0

    def _restart(self) -> None:
        workdir = self.cwd()
        kill_descendants(self._pid, self._namespace)
        signal_confined(self._pid, signal.SIGKILL, self._namespace)
        self._close_socket()
        self._open(workdir)

    def _close_socket(self) -> None:
        for closable in (self._sock, self._holder):
            try:
                if closable is not None:
                    closable.close()
            except OSError:
                pass
        self._sock = None
        self._holder = None

    def close(self) -> None:
        """Close the session. Idempotent; the container's removal kills the process itself."""
        self._close_socket()


class _Aborted:
    """The ``abort`` callback of :meth:`PersistentShell.run` asked to stop, for ``reason``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
