"""A root shell kept open in a host that starts the one-off processes of ``Sandbox.run``.

Why: a ``docker exec`` costs ~45 ms here (the engine starts a runtime process per call), and tools such as
Inspect's bash tool make one call per command, so an Inspect episode spent most of its time in the engine.
Through a shell that is already inside the host, a process starts in a few milliseconds, with the same
confinement, since that shell was itself started by ``docker exec`` (the container's capabilities, seccomp
profile, cgroup and namespaces).

Protocol (host -> runner), per call: one line ``__x NONCE USER ARGC ENVC FLEN ILEN``, then FLEN bytes of
NUL-terminated fields (the working directory, ARGC arguments, ENVC environment entries) and ILEN bytes of
input, each read with ``head -c`` (which never reads past its count). The runner starts the process as USER
with ``setpriv`` and ``env -C DIR -i``, so ``ps`` shows the process itself, and answers on the engine's two
streams: the process's stdout base64-encoded on stdout, its stderr likewise on stderr, each stream ended by a
line ``\\x1eNONCE ...`` (stdout's carries the exit status). The base64 encoders end when every writer of the
process's output has closed it, as ``docker exec`` waits for them too.

Before anything runs, the runner refuses (``\\x1eNONCE refused``) a user it cannot find or a directory that
does not exist; the caller then makes the call through ``docker exec``, which reports those errors as the
engine words them. A busy runner, a user given as ``uid[:gid]``, or a large input also go through
``docker exec``. Everything the runner sends is untrusted (the agent is root in its host): malformed output
ends the runner, and timeouts are kept from the host, as for the agent's shell.
"""

from __future__ import annotations

import base64
import re
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from .confine import kill_descendants, pid_namespace, signal_confined
from .process import ProcessResult, checked
from .types import SandboxError

_HEADER_SIZE = 8  # the engine's multiplexed stream: kind (1 stdout, 2 stderr), 3 bytes padding, length
_BOOTSTRAP = rb"""set +o history +o monitor
__x() {
  local n=$1 f a e d in=/dev/null name uid gid home found= v h=1
  mapfile -d '' -t f < <(head -c "$5")
  d=${f[0]} a=("${f[@]:1:$3}") e=("${f[@]:1+$3:$4}")
  if [[ $6 != 0 ]]; then in=$(mktemp /dev/shm/.XXXXXXXXXX) && head -c "$6" >"$in"; fi
  while IFS=: read -r name _ uid gid _ home _; do [[ $name == "$2" ]] && { found=1; break; }; done </etc/passwd
  if [[ -z $found || ! -d $d ]]; then
    [[ $in == /dev/null ]] || rm -f -- "$in"
    printf '\036%s refused\n' "$n"; return
  fi
  for v in "${e[@]}"; do [[ $v == HOME=* ]] && h=; done
  { setpriv --reuid="$uid" --regid="$gid" --init-groups -- env -C "$d" -i -- "${e[@]}" ${h:+"HOME=$home"} "${a[@]}" \
      <"$in" 2>&1 1>&3 3>&- | base64 -w 4096 >&2; exit "${PIPESTATUS[0]}"; } 3>&1 | base64 -w 4096
  local rc=${PIPESTATUS[0]}
  [[ $in == /dev/null ]] || rm -f -- "$in"
  printf '\036%s %d\n' "$n" "$rc"; printf '\036%s\n' "$n" >&2
}
"""
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PLAIN_USER = re.compile(r"[a-z_][a-z0-9_.-]*[$]?\Z", re.IGNORECASE)
MAX_ANSWER = 768 << 20  # base64 of ~576 MiB of output: past it the runner is not believed (the host's memory)
MAX_INPUT = 8 << 20  # larger inputs go through docker exec: the runner holds them in the host's /dev/shm
_GRACE_AFTER_KILL_S = 1.0
_START_TIMEOUT_S = 10.0


class Refused(Exception):
    """The runner did not start the process (unknown user, missing directory): nothing ran."""


class RunnerBroken(SandboxError):
    """The runner died or answered outside the protocol while a process may have run."""


class ProcessRunner:
    """One host's runner. ``run`` returns None when the call must go through ``docker exec`` instead
    (nothing was started then)."""

    def __init__(self, api: Any, container_id: str, namespace: str, config: dict[str, Any]) -> None:
        """``config`` is the container's configuration (``Config`` of its inspect data): its environment and
        host name make a process's environment as docker exec makes it."""
        self._api = api
        self._container_id = container_id
        self._namespace = namespace
        self._base_env = list(config.get("Env") or [])
        self._hostname = str(config.get("Hostname") or "")
        self._lock = threading.Lock()
        self._warming = threading.Event()  # set while warm() opens the runner: calls wait for it
        self._sock: socket.socket | None = None
        self._pid = 0

    def run(self, argv: Sequence[str], *, input: bytes | None, user: str, environment: dict[str, str] | None,
            workdir: str, timeout: float | None) -> ProcessResult | None:  # fmt: skip
        if not argv or not _PLAIN_USER.match(user) or len(input or b"") > MAX_INPUT:
            return None
        if any("\0" in s for s in [*argv, workdir, *(environment or {}), *(environment or {}).values()]):
            return None  # docker exec says what is wrong with a NUL
        if not self._lock.acquire(blocking=self._warming.is_set()):
            return None  # busy with another call: that one keeps it, this one goes through the engine
        try:
            if self._sock is not None and not self._alive():
                self.close()  # killed between calls (the agent is root in its host): nothing of this call ran
            if self._sock is None and not self._start():
                return None
            try:
                return self._call(argv, input or b"", user, environment or {}, workdir, timeout)
            except Refused:
                return None
            except RunnerBroken:
                self.close()
                raise
        finally:
            self._lock.release()

    def warm(self) -> threading.Thread:
        """Open the runner on a thread, so that the first call does not pay for it (the call waits for it)."""
        self._warming.set()

        def open_it() -> None:
            try:
                with self._lock:
                    if self._sock is None:
                        self._start()
            finally:
                self._warming.clear()

        thread = threading.Thread(target=open_it, name="peergym-runner-warm", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        if self._pid > 1:
            signal_confined(self._pid, 9, self._namespace)
        self._pid = 0

    # ------------------------------------------------------------------------------------------ internals
    def _alive(self) -> bool:
        """Whether the runner still runs and its stream is open, with nothing unread on it."""
        assert self._sock is not None
        if pid_namespace(self._pid) != self._namespace:
            return False
        try:
            self._sock.settimeout(0.0)  # with a timeout set, Python would wait for data before this recv
            self._sock.recv(1, socket.MSG_PEEK)
            return False  # end of stream, or bytes no call asked for
        except BlockingIOError:
            return True  # nothing to read: it waits for the next call
        except OSError:
            return False

    def _start(self) -> bool:
        """Open the runner. False when none can be had (the caller uses docker exec)."""
        try:
            exec_id = self._api.exec_create(self._container_id, ["/bin/bash", "-c", "exec -a -bash /bin/bash"],
                                            stdin=True, stdout=True, stderr=True, tty=False, user="root",
                                            workdir="/")["Id"]  # fmt: skip
            sock = self._api.exec_start(exec_id, socket=True)._sock
            sock.sendall(_BOOTSTRAP)
            pid = 0
            deadline = time.monotonic() + _START_TIMEOUT_S
            while not pid and time.monotonic() < deadline:
                info = self._api.exec_inspect(exec_id)
                pid = int(info.get("Pid") or 0)
                if not pid and not info.get("Running") and info.get("ExitCode") is not None:
                    break
                time.sleep(0.002)
        except Exception:  # the engine refused: docker exec will say why, call by call
            return False
        if pid <= 1 or pid_namespace(pid) != self._namespace:
            sock.close()
            return False
        self._sock, self._pid = sock, pid
        return True

    def _call(self, argv: Sequence[str], data: bytes, user: str, environment: dict[str, str], workdir: str,
              timeout: float | None) -> ProcessResult:  # fmt: skip
        assert self._sock is not None
        nonce = secrets.token_hex(8)
        env = [f"{k}={v}" for k, v in _exec_environment(self._base_env, self._hostname, environment).items()]
        fields = b"".join(s.encode("utf-8", "surrogateescape") + b"\0" for s in [workdir, *argv, *env])
        head = f"__x {nonce} {user} {len(argv)} {len(env)} {len(fields)} {len(data)}\n".encode()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._sock.settimeout(30.0)
            self._sock.sendall(head + fields + data)
        except OSError as exc:
            raise RunnerBroken(f"the runner's connection broke: {exc}") from exc
        streams = _Streams(nonce.encode())
        if not self._read(streams, deadline):
            kill_descendants(self._pid, self._namespace)
            if not self._read(streams, time.monotonic() + _GRACE_AFTER_KILL_S):
                raise RunnerBroken("the runner did not answer after its process was killed")
            raise TimeoutError(f"{list(argv[:1])} did not finish within {timeout:g} s; it and its children were "
                               "killed")  # fmt: skip
        if streams.refused:
            raise Refused
        return checked(ProcessResult(streams.status, streams.decoded(1), streams.decoded(2)), argv, workdir)

    def _read(self, streams: _Streams, deadline: float | None) -> bool:
        """Read frames until both streams have ended; False when the deadline passed first."""
        assert self._sock is not None
        while not streams.done():
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._sock.settimeout(min(left, 1.0))
            else:
                self._sock.settimeout(None)
            try:
                chunk = self._sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError as exc:
                raise RunnerBroken(f"the runner's connection broke: {exc}") from exc
            if not chunk:
                raise RunnerBroken("the runner exited")
            streams.feed(chunk)
        return True


def _exec_environment(config_env: Sequence[str], hostname: str, given: dict[str, str]) -> dict[str, str]:
    """A process's environment as docker exec builds it: the engine's PATH and HOSTNAME, replaced or extended
    by the container's configured variables, then by the call's own (HOME is added last, from the user's
    passwd entry, when none of these sets it)."""
    env = {"PATH": _DEFAULT_PATH, "HOSTNAME": hostname}
    for entry in config_env:
        key, _, value = entry.partition("=")
        env[key] = value
    env.update(given)
    return env


class _Streams:
    """The runner's answer to one call, from the engine's multiplexed frames."""

    def __init__(self, nonce: bytes) -> None:
        self.marker = b"\x1e" + nonce
        self.pending = bytearray()
        self.data = {1: bytearray(), 2: bytearray()}
        self.ended: dict[int, bytes] = {}
        self.searched = {1: 0, 2: 0}  # where the search for each stream's end line resumes
        self.refused = False
        self.status = -1

    def feed(self, chunk: bytes) -> None:
        self.pending += chunk
        if len(self.pending) + len(self.data[1]) + len(self.data[2]) > MAX_ANSWER:
            raise RunnerBroken(f"the runner's answer passed {MAX_ANSWER >> 20} MiB")
        while len(self.pending) >= _HEADER_SIZE:
            kind, length = self.pending[0], int.from_bytes(self.pending[4:8], "big")
            if kind not in (1, 2):
                raise RunnerBroken(f"the engine's stream has a frame of kind {kind}")
            if len(self.pending) < _HEADER_SIZE + length:
                return
            if kind in self.ended:
                raise RunnerBroken("the runner wrote after the end of its answer")
            self.data[kind] += self.pending[_HEADER_SIZE : _HEADER_SIZE + length]
            del self.pending[: _HEADER_SIZE + length]
            self._check_end(kind)

    def _check_end(self, kind: int) -> None:
        data = self.data[kind]
        at = data.find(b"\x1e", self.searched[kind])
        if at < 0:
            self.searched[kind] = len(data)
            return
        end = data.find(b"\n", at)
        if end < 0:
            return
        line, rest = bytes(data[at:end]), data[end + 1 :]
        if rest or not line.startswith(self.marker):
            raise RunnerBroken("the runner answered outside the protocol")
        tail = line[len(self.marker) :].decode("ascii", "replace")
        del data[at:]
        self.ended[kind] = line
        if kind == 1:
            if tail == " refused":
                self.refused = True
                self.ended[2] = b""  # nothing ran, nothing more comes on stderr
            elif re.fullmatch(r" [0-9]{1,3}", tail):
                self.status = int(tail)
            else:
                raise RunnerBroken("the runner answered outside the protocol")
        elif tail:
            raise RunnerBroken("the runner answered outside the protocol")

    def done(self) -> bool:
        return 1 in self.ended and 2 in self.ended

    def decoded(self, kind: int) -> bytes:
        try:
            return base64.b64decode(bytes(self.data[kind]).replace(b"\n", b""), validate=True)
        except ValueError as exc:
            raise RunnerBroken("the runner's output is not base64") from exc
