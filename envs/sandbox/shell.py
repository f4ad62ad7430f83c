"""One persistent bash session per episode, driven over an attached ``docker exec`` socket.

Why this shape: a ``docker exec`` per command costs ~50 ms and loses ``cd``/``export`` between commands; a
bash kept open on the exec's socket answers in well under a millisecond and behaves like a terminal.

Protocol: each command is sent as one line ``__run NONCE $'<command, ANSI-C quoted>'``. ``__run`` evals the
command in the shell itself (so cwd and environment persist) with stdin from /dev/null (so a command can never
swallow the next protocol line), then prints ``\\n\\x1eNONCE RC\\x1e\\n``. The nonce is fresh per command, so
output that merely looks like a marker cannot end a command early.

Timeouts are enforced from the host, not with anything inside the container the agent could replace: every
descendant of the shell is SIGKILLed through the host's /proc. If the shell itself is stuck (a builtin loop),
it is killed and replaced, keeping its working directory.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import struct
import time
from typing import Any

from .types import ExecResult, HostDied

_FRAME_HEADER = struct.Struct(">BxxxI")
# Sent once when the shell starts. stderr joins stdout so the agent sees both, interleaved, like a terminal.
_BOOTSTRAP = b'exec 2>&1\n__run() { eval "$2" </dev/null; printf \'\\n\\036%s %d\\036\\n\' "$1" "$?"; }\n'
_GRACE_AFTER_KILL_S = 1.0
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


def descendants(root_pid: int) -> list[int]:
    """Host pids of every process below ``root_pid``, read from the host's /proc (tamper-proof)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: fields start after the last ')'.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_descendants(root_pid: int, passes: int = 10) -> None:
    """SIGKILL everything below ``root_pid``, again until none is left (a fork bomb forks as we kill)."""
    for _ in range(passes):
        pids = descendants(root_pid)
        if not pids:
            return
        _kill(pids)


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
            return self.data[:end].decode("utf-8", errors="replace"), 0
        truncated = total - self.cap
        text = self.data[: self.cap].decode("utf-8", errors="replace")
        return f"{text}\n[output truncated: {truncated} bytes]", truncated


class PersistentShell:
    """A bash session inside one container, as one user, that keeps cwd and environment between commands."""

    def __init__(
        self,
        api: Any,
        container_id: str,
        *,
        user: str,
        workdir: str,
        environment: dict[str, str] | None = None,
        output_cap: int = DEFAULT_OUTPUT_CAP,
    ) -> None:
        self._api = api
        self._container_id = container_id
        self._user = user
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
        exec_id = self._api.exec_create(
            self._container_id,
            ["/bin/bash", "--noprofile", "--norc"],
            stdin=True,
            user=self._user,
            workdir=workdir,
            environment=self._environment,
        )["Id"]
        self._exec_id = exec_id
        self._holder = self._api.exec_start(exec_id, socket=True)
        self._sock = self._holder._sock
        self._sock.sendall(_BOOTSTRAP)
        # exec_inspect reports the pid only once the process exists; it does at once after exec_start.
        for _ in range(100):
            self._pid = int(self._api.exec_inspect(exec_id)["Pid"])
            if self._pid:
                break
            time.sleep(0.005)
        self._pending.clear()

    def cwd(self) -> str:
        """The shell's working directory as the container sees it (read from the host's /proc)."""
        try:
            self._last_cwd = os.readlink(f"/proc/{self._pid}/cwd")
        except OSError:
            pass  # the shell is gone: its last known directory is the best answer
        return self._last_cwd

    def run(self, command: str, timeout: float = 60.0) -> ExecResult:
        """Run ``command`` in the session and wait for it.

        Raises:
            ValueError: the command contains a NUL byte (bash cannot receive one).
            HostDied: the container went away under the shell.
        """
        if "\x00" in command:
            raise ValueError("commands cannot contain NUL bytes")
        if self._sock is None:
            raise HostDied("the shell is closed")
        nonce = secrets.token_hex(8).encode()
        collector = _OutputCollector(self.output_cap, b"\n\x1e" + nonce + b" ")
        start = time.monotonic()
        try:
            self._sock.sendall(b"__run " + nonce + b" " + ansi_c_quote(command) + b"\n")
        except OSError as exc:
            raise HostDied(f"the shell's connection broke while sending a command: {exc}") from exc

        outcome = self._read_until_marker(collector, start + timeout)
        timed_out = restarted = False
        shell_status = 0
        if outcome is None:  # deadline passed: kill what the command started, give the shell a moment
            timed_out = True
            kill_descendants(self._pid)
            outcome = self._read_until_marker(collector, time.monotonic() + _GRACE_AFTER_KILL_S)
            if outcome is None:
                self._restart()
                restarted = True
        elif outcome == "eof":
            shell_status = self._exit_status()
            self._restart()
            restarted = True

        marker = outcome if isinstance(outcome, tuple) else None
        text, truncated = collector.result(marker[0] if marker else None)
        if timed_out:
            text += f"\n[command timed out after {timeout:g} s and was killed]"
            exit_code = 124
        elif marker is None:
            text += "\n[the shell exited; a new shell was started in the same directory]"
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
        self, collector: _OutputCollector, deadline: float
    ) -> tuple[int, int] | str | None:
        """Demultiplex the exec stream into ``collector``: the marker, ``"eof"``, or None at the deadline."""
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
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                return "eof"
            if not chunk:
                return "eof"
            pending += chunk

    def _exit_status(self) -> int:
        for _ in range(50):  # the engine records the status a moment after the stream ends
            info = self._api.exec_inspect(self._exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            time.sleep(0.01)
        return 0

    def _restart(self) -> None:
        workdir = self.cwd()
        kill_descendants(self._pid)
        _kill([self._pid])
        self._close_socket()
        try:
            self._open(workdir)
        except Exception as exc:  # the docker API raises its own types; all mean the host is gone
            raise HostDied(f"could not start a new shell: {exc}") from exc

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
