"""Values and errors shared by the sandbox modules.

Two kinds of failure are kept apart on purpose: what the agent's command did (a non-zero exit code, a timeout,
huge output) is an :class:`ExecResult` the agent is shown; what broke in the infrastructure (no engine, no
image, a host that died) is a :class:`SandboxError` and is never shown to the agent as if it were output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExecResult:
    """What one shell command produced.

    Attributes:
        exit_code: the command's exit status (124 after a timeout, like coreutils ``timeout``).
        output: stdout and stderr interleaved as a terminal shows them, decoded as UTF-8 (invalid bytes
            replaced); ends with ``[output truncated: N bytes]`` when the cap cut it.
        timed_out: the command ran past its timeout and its processes were killed.
        truncated_bytes: how many bytes of output were dropped by the cap (0 if none).
        duration_s: wall time from sending the command to its completion.
        shell_restarted: the shell had to be replaced (the command exited it, or could not be interrupted);
            the working directory was carried over, shell variables were not.
    """

    exit_code: int
    output: str
    timed_out: bool = False
    truncated_bytes: int = 0
    duration_s: float = 0.0
    shell_restarted: bool = False


@dataclass(frozen=True)
class SeedFile:
    """A file (or directory) written into a host before it starts, with exact metadata.

    ``content`` is either bytes or a zero-argument callable returning an iterator of byte chunks whose total
    length is ``size`` (so multi-GB files stream without being held in memory).
    """

    path: str
    content: bytes | Callable[[], Iterator[bytes | bytearray]] = b""
    size: int | None = None
    uid: int = 0
    gid: int = 0
    mode: int = 0o644
    mtime: float = 0.0
    is_dir: bool = False

    @property
    def nbytes(self) -> int:
        if self.is_dir:
            return 0
        if isinstance(self.content, bytes):
            return len(self.content)
        if self.size is None:
            raise ValueError(f"seed file {self.path}: a streamed content needs its size")
        return self.size


@dataclass(frozen=True)
class HostSpec:
    """One server of a scenario.

    Attributes:
        name: the role the scenario gives it (``source``, ``destination``); used as the key everywhere.
        hostname: what ``hostname`` prints inside and what the other hosts resolve.
        ip: its address on the scenario's private network (e.g. ``10.0.12.45``), prefix ``/24``.
        files: seeded before start, in order.
        agent_user: the account the agent's shell runs as on this host.
    """

    name: str
    hostname: str
    ip: str
    files: tuple[SeedFile, ...] = ()
    agent_user: str = "maintainer"
    extra_labels: Mapping[str, str] = field(default_factory=dict)


class SandboxError(RuntimeError):
    """Infrastructure failure: recorded as an error, never shown to the agent as output."""


class EngineUnavailable(SandboxError):
    """No Docker engine answers."""


class ImageMissing(SandboxError):
    """The server image has not been built."""


class HostDied(SandboxError):
    """A host stopped (or no shell could be started on it any more) while the episode was running.

    Attributes:
        host: the host's name ("" until the sandbox knows it).
        cause: ``died`` (the container stopped), ``no_shell`` (it runs but no shell can be started there),
            ``disk_limit`` (its writable layer outgrew its limit and the host was stopped), ``removed`` (the
            container was removed under the episode), ``engine`` (the engine stopped answering).
        by_agent: the agent's own actions ended the host (its command was running, or a process it
            started did it). False for failures outside its control (``removed``, ``engine``), which are
            infrastructure errors.
        output: what the agent's command printed before the host went.
    """

    def __init__(self, message: str, *, host: str = "", cause: str = "died", by_agent: bool = False,
                 output: str = "") -> None:  # fmt: skip
        super().__init__(message)
        self.host = host
        self.cause = cause
        self.by_agent = by_agent
        self.output = output
