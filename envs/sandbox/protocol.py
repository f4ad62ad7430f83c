"""What the environment needs of a sandbox, as a protocol: the Docker one (sandbox.py) and the in-process fake
(fake.py) both provide it, so the env's contract runs in unit tests in seconds and on real servers alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from .sandbox import HostHandle
from .types import ExecResult


class SandboxLike(Protocol):
    """The running hosts of one episode.

    ``hosts`` maps each host's name to its handle; observers read ``handle.upper_dir`` (the host's writable
    layer as a directory of the runner's machine). ``exec`` runs a command in the agent's persistent shell
    and raises :class:`~peergym.envs.sandbox.types.HostDied` when the host is gone.
    """

    runs_services: bool  # whether its hosts run their services (the env waits for a scenario's ready files)

    @property
    def hosts(self) -> Mapping[str, HostHandle]: ...

    def start(self) -> SandboxLike: ...

    def wait_booted(self) -> None: ...

    def exec(self, command: str, timeout: float = 60.0) -> ExecResult: ...

    def run_as(self, host: str, command: str, *, user: str = "root", environment: dict[str, str] | None = None,
               workdir: str = "/", timeout: float = 60.0) -> ExecResult: ...  # fmt: skip

    def process_names(self, host: str) -> list[str]: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


# Builds an unstarted sandbox for an episode, called as :class:`~.sandbox.Sandbox` is: ``factory(hosts, *,
# agent_host, run_id, episode_id, output_cap, limits)``.
SandboxFactory = Callable[..., SandboxLike]
