"""An in-process stand-in for the Docker :class:`~peergym.envs.sandbox.Sandbox`, for unit tests.

:class:`FakeSandbox` provides :class:`~peergym.envs.sandbox.protocol.SandboxLike`: each host is a temporary
directory standing for its writable layer, seeded with the host's files (content, mode and mtime to the
nanosecond), so the environment's observers, content scans and detectors run on it exactly as they do on a
container's overlay upper directory. Tests drive it with::

    env = PeerEnv(sandbox_factory=fake_factory(responder))

What it does not do: there is no shell, no network, no sshd, no container and no process of any kind. A command
is never run: it is recorded in :attr:`FakeSandbox.commands` and answered by the test's ``responder`` (which
may change files under the host directories to simulate the command's effects, or raise
:class:`~peergym.envs.sandbox.types.HostDied` to simulate a host that stopped), else by an empty success. Owners
are not set (no ``chown``: the files belong to whoever runs the tests), there are no whiteouts, and resource and
disk limits are not enforced. Everything that depends on real servers keeps its own Docker-backed tests
(tests/integration).
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .protocol import SandboxFactory
from .sandbox import HostHandle, Limits
from .shell import DEFAULT_OUTPUT_CAP
from .types import ExecResult, HostSpec, SandboxError, SeedFile

# responder(command, host directories by host name) -> the command's result: an ExecResult as is, a str as
# its output (exit code 0, capped like the shell caps it), None as an empty success. May raise HostDied.
Responder = Callable[[str, Mapping[str, Path]], ExecResult | str | None]
_DEFAULT_LIMITS = Limits()


class FakeSandbox:
    """The hosts of one episode as temporary directories; commands are answered, never run.

    The constructor takes the arguments of :class:`~peergym.envs.sandbox.Sandbox` (``image``, ``ttl_s`` and
    ``ready_timeout_s`` are accepted and ignored; ``limits`` is kept but not enforced) plus ``responder``.
    ``commands`` lists every command given to :meth:`exec`, in order; ``timeouts`` the timeout of each.
    A context manager; :meth:`close` is idempotent and removes the directories. Nothing runs on its hosts, so
    no service comes up (``runs_services``: an env does not wait for a scenario's ready files).
    """

    runs_services = False

    def __init__(
        self,
        hosts: Sequence[HostSpec],
        *,
        agent_host: str | None = None,
        run_id: str | None = None,
        episode_id: str | None = None,
        image: str | None = None,
        limits: Limits = _DEFAULT_LIMITS,
        ttl_s: int = 7200,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        ready_timeout_s: float = 20.0,
        responder: Responder | None = None,
        job_responder: Responder | None = None,
    ) -> None:
        names = [h.name for h in hosts]
        if not hosts or len(set(names)) != len(names):
            raise ValueError(f"hosts need unique names, got {names}")
        self.specs = {h.name: h for h in hosts}
        self.agent_host = agent_host or hosts[0].name
        if self.agent_host not in self.specs:
            raise ValueError(f"agent_host {self.agent_host!r} is not one of {names}")
        self.run_id = run_id or "fake-run"
        self.episode_id = episode_id or "fake-episode"
        self.limits = limits
        self.output_cap = output_cap
        self.responder = responder
        self.job_responder = job_responder
        self.jobs: list[dict[str, object]] = []
        self.processes: dict[str, tuple[str, ...]] = {}
        self.commands: list[str] = []
        self.timeouts: list[float] = []
        self._hosts: dict[str, HostHandle] = {}
        self._dirs: dict[str, Path] = {}
        self._started = False
        self._closed = False

    @property
    def hosts(self) -> Mapping[str, HostHandle]:
        return self._hosts

    @property
    def dirs(self) -> Mapping[str, Path]:
        """Each host's directory (its writable layer), by host name."""
        return dict(self._dirs)

    def __enter__(self) -> FakeSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> FakeSandbox:
        """Create and seed one directory per host. Nothing is left behind if seeding fails."""
        if self._closed:
            raise SandboxError("this sandbox was closed; make a new one")
        if self._started:
            raise SandboxError("this sandbox is already started")
        self._started = True
        try:
            for name, spec in self.specs.items():
                root = Path(tempfile.mkdtemp(prefix=f"peergym-fake-{name}-"))
                self._dirs[name] = root
                _seed(root, spec.files)
                self._hosts[name] = HostHandle(spec, container_id=f"fake-{name}", pid=0, upper_dir=str(root),
                                               pid_namespace="", disk_limit=0)  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def wait_booted(self) -> None:
        """Fake hosts are up as soon as they start."""

    def exec(self, command: str, timeout: float = 60.0) -> ExecResult:
        """Record ``command`` and answer it with the responder (an empty success without one).

        Raises:
            SandboxError: the sandbox is not started, or closed.
            HostDied: whatever the responder raises is propagated as is.
        """
        if not self._started or self._closed:
            raise SandboxError("the sandbox is not started" if not self._started else "the sandbox is closed")
        self.commands.append(command)
        self.timeouts.append(timeout)
        answer = self.responder(command, self.dirs) if self.responder is not None else None
        if answer is None:
            return ExecResult(0, "")
        if isinstance(answer, ExecResult):
            return answer
        return self._capped(answer)

    def run_as(self, host: str, command: str, *, user: str = "root", environment: dict[str, str] | None = None,
               workdir: str = "/", timeout: float = 60.0) -> ExecResult:  # fmt: skip
        """Record a runner's one-off command (``jobs``: host, user, command, environment) and answer it with
        ``job_responder`` (nothing runs).

        Raises:
            SandboxError: no ``job_responder`` was given: the fake cannot run a job, so a check that needs one
                (the shutdown job) must report that it could not run, not what a real host would have done.
        """
        if not self._started or self._closed:
            raise SandboxError("the sandbox is not started" if not self._started else "the sandbox is closed")
        self.jobs.append(
            {"host": host, "user": user, "command": command, "environment": dict(environment or {})}
        )
        if self.job_responder is None:
            raise SandboxError("the fake sandbox runs no jobs")
        answer = self.job_responder(command, self.dirs)
        if answer is None:
            return ExecResult(0, "")
        return answer if isinstance(answer, ExecResult) else self._capped(answer)

    def process_names(self, host: str) -> list[str]:
        """What a freshly started host runs (the fake has no processes; tests may change :attr:`processes`)."""
        return list(self.processes.get(host, ("bash", "sshd", "cron")))

    def _capped(self, output: str) -> ExecResult:
        data = output.encode("utf-8", errors="surrogateescape")
        if len(data) <= self.output_cap:
            return ExecResult(0, output)
        dropped = len(data) - self.output_cap
        text = data[: self.output_cap].decode("utf-8", errors="replace")
        return ExecResult(0, f"{text}\n[output truncated: {dropped} bytes]", truncated_bytes=dropped)

    def close(self) -> None:
        """Remove the host directories. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for root in self._dirs.values():
            _remove_tree(root)

    @property
    def closed(self) -> bool:
        return self._closed


def fake_factory(
    responder: Responder | None = None, job_responder: Responder | None = None
) -> SandboxFactory:
    """A ``sandbox_factory`` for :class:`~peergym.envs.env.PeerEnv` that builds :class:`FakeSandbox` es
    answering the agent's commands with ``responder`` and the runner's jobs with ``job_responder``."""
    return functools.partial(FakeSandbox, responder=responder, job_responder=job_responder)


def _seed(root: Path, files: Sequence[SeedFile]) -> None:
    """Write ``files`` below ``root`` with their mode and mtime; directories get theirs last (writing their
    entries would move their mtime, and a read-only mode would keep the entries from being written)."""
    dirs: list[SeedFile] = []
    for seed in files:
        target = root / seed.path.lstrip("/")
        if seed.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            dirs.append(seed)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with open(target, "wb") as out:
            for chunk in [seed.content] if isinstance(seed.content, bytes) else seed.content():
                out.write(chunk)
                written += len(chunk)
        if written != seed.nbytes:
            raise ValueError(f"seed file {seed.path}: content gave {written} bytes, expected {seed.nbytes}")
        _stamp(target, seed)
    for seed in sorted(dirs, key=lambda s: s.path.count("/"), reverse=True):  # deepest first
        _stamp(root / seed.path.lstrip("/"), seed)


def _stamp(target: Path, seed: SeedFile) -> None:
    os.chmod(target, stat.S_IMODE(seed.mode))
    ns = round(seed.mtime * 1e9)
    os.utime(target, ns=(ns, ns), follow_symlinks=False)


def _remove_tree(root: Path) -> None:
    """Remove ``root`` even where a seeded mode took the owner's write or search permission away."""

    def retry(func: Any, path: str, _exc: Any) -> None:
        parent = os.path.dirname(path)
        for p in (parent, path):
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
        func(path)

    if root.exists():
        shutil.rmtree(root, onerror=retry)
