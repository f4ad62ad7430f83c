"""peergym as an Inspect sandbox environment: ``sandbox=("peergym", PeerSandboxConfig(scenario=...))``.

Each sample gets a fresh episode of the scenario (its servers seeded for the sample's condition and seed, from
``metadata["peergym"] = {"condition": {...}, "seed": N}``), one sandbox per server, the agent's first. Inspect's
tools run their commands through :meth:`PeerSandbox.exec`; after each, the episode's observers look at every
server from outside as they do after an env step, so the verdicts a scorer reads (:func:`episode_of`) rest
on the same evidence as a native episode's. Needs ``pip install peergym[inspect]``.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import anyio
from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    SandboxEnvironmentLimits,
    sandboxenv,
)
from pydantic import BaseModel

from peergym.envs.env import PeerEnv
from peergym.envs.sandbox import FileTooLargeError, Sandbox


class PeerSandboxConfig(BaseModel, frozen=True):
    """The sandbox's configuration: the scenario, by name or YAML path (a plain string would be taken by
    Inspect as a config file next to the task)."""

    scenario: str = "exfiltration_transfer"


def _scenario(config: SandboxEnvironmentConfigType | None) -> str:
    if isinstance(config, PeerSandboxConfig):
        return config.scenario
    return config if isinstance(config, str) and config else "exfiltration_transfer"


@sandboxenv(name="peergym")
class PeerSandbox(SandboxEnvironment):
    """One server of a peergym episode. The episode (:class:`~peergym.envs.env.PeerEnv`) is shared by the
    sample's sandboxes and closed at the sample's clean-up."""

    def __init__(self, episode: PeerEnv, host: str) -> None:
        super().__init__()
        self.episode = episode
        self.host = host

    @property
    def box(self) -> Sandbox:
        box = self.episode.box
        if not isinstance(box, Sandbox):
            raise RuntimeError("the episode's servers are gone")
        return box

    # ---------------------------------------------------------------------------------- lifecycle
    @classmethod
    async def sample_init(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, metadata: dict[str, Any]
    ) -> dict[str, SandboxEnvironment]:
        scenario = _scenario(config)
        options = dict(metadata.get("peergym") or {})
        episode = PeerEnv(scenario, condition=dict(options.get("condition") or {}))
        await anyio.to_thread.run_sync(lambda: episode.reset(seed=options.get("seed")))
        if isinstance(episode.box, Sandbox):
            episode.box.warm_runners()  # Inspect's commands come as one-off processes (Sandbox.run)
        layout = episode.layout
        assert layout is not None
        order = [layout.agent_host, *(h.name for h in layout.hosts if h.name != layout.agent_host)]
        return {name: cls(episode, name) for name in order}

    @classmethod
    def config_deserialize(cls, config: dict[str, Any]) -> BaseModel:
        return PeerSandboxConfig(**config)

    @classmethod
    async def sample_cleanup(
        cls,
        task_name: str,
        config: SandboxEnvironmentConfigType | None,
        environments: dict[str, SandboxEnvironment],
        interrupted: bool,
    ) -> None:
        for env in environments.values():
            if isinstance(env, PeerSandbox):
                await anyio.to_thread.run_sync(env.episode.close)
                return  # one episode per sample

    @classmethod
    async def task_cleanup(
        cls, task_name: str, config: SandboxEnvironmentConfigType | None, cleanup: bool
    ) -> None:
        from peergym.envs.sandbox import REMOVER

        await anyio.to_thread.run_sync(REMOVER.drain)

    @classmethod
    async def cli_cleanup(cls, id: str | None) -> None:
        from peergym.envs.sandbox import reap
        from peergym.envs.sandbox.engine import client

        await anyio.to_thread.run_sync(lambda: reap(client().api, everything=id is None))

    # -------------------------------------------------------------------------------------- exec
    async def exec(
        self,
        cmd: list[str],
        input: str | bytes | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        user: str | None = None,
        timeout: int | None = None,
        timeout_retry: bool = True,
        concurrency: bool = True,
    ) -> ExecResult[str]:
        def run() -> Any:
            try:
                return self.box.run(cmd, host=self.host, input=input, user=user, env=env, cwd=cwd,
                                    timeout=timeout)  # fmt: skip
            finally:
                self.episode.observe_external()  # what the command changed, as after an env step

        result = await anyio.to_thread.run_sync(run)
        limit = SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE
        for stream in (result.stdout, result.stderr):
            if len(stream) > limit:
                raise OutputLimitExceededError(
                    limit_str=SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE_STR,
                    truncated_output=stream[-limit:].decode("utf-8", "replace"),
                )
        return ExecResult(success=result.success, returncode=result.returncode,
                          stdout=result.stdout.decode("utf-8", "replace"),
                          stderr=result.stderr.decode("utf-8", "replace"))  # fmt: skip

    # ------------------------------------------------------------------------------------- files
    async def write_file(self, file: str, contents: str | bytes) -> None:
        def write() -> None:
            try:
                self.box.write_file(self.host, file, contents)
            finally:
                self.episode.observe_external()

        await anyio.to_thread.run_sync(write)

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> str | bytes:
        limit = SandboxEnvironmentLimits.MAX_READ_FILE_SIZE
        try:
            data = await anyio.to_thread.run_sync(
                lambda: self.box.read_file(self.host, file, max_bytes=limit)
            )
        except FileTooLargeError:
            raise OutputLimitExceededError(
                limit_str=SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR, truncated_output=None
            ) from None
        return data.decode("utf-8") if text else data


def episode_of(environments: dict[str, SandboxEnvironment]) -> PeerEnv | None:
    """The peergym episode behind a sample's sandboxes (for a scorer), or None if they are not ours."""
    for env in environments.values():
        if isinstance(env, PeerSandbox):
            return env.episode
    return None
