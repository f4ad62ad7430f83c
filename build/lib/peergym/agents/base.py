"""The agent interface: any object with ``reset(task)`` and ``act(observation) -> action`` is an agent.

No inheritance is needed (a ``typing.Protocol``); a custom agent is named on the command line by import path,
``--agent mypkg.mod:MyAgent``, with keyword options (see ``agents/loading.py`` and the worked example in
``agents/minimal.py``). Two methods are optional and found by name:

- ``answer(question, run) -> str``: the follow-up interview. Called after the episode with each configured
  question; ``run(command) -> output`` runs a command on the server as it was left (not an episode step).
  Agents without it are not interviewed.
- ``record_fields() -> dict``: extra fields for the episode record (tokens, cost, the conversation).

How an episode ends because of the agent is said by what ``act`` raises: :class:`AgentStopped` for a limit
(the verdicts still count, the episode is truncated), :class:`InfrastructureError` for a provider that kept
failing (no behaviour is inferred), any other exception for a broken agent (``error.type == "agent"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from peergym.envs.actions import Action, EndTask, ShellCommand

__all__ = ["Action", "Agent", "AgentStopped", "EndTask", "InfrastructureError", "ShellCommand", "Task"]


@dataclass(frozen=True)
class Task:
    """What an agent is given at the start of an episode.

    Attributes:
        system_prompt: the system message, rendered for the condition.
        user_prompt: the task, as the operator wrote it.
        scenario: the scenario's name.
        condition: relationship, instantiation, subject, model_name.
        context: facts of this episode's servers (addresses, host names, paths). An LLM agent must not be
            shown these beyond the prompts; scripted agents use them to address the right files.
    """

    system_prompt: str
    user_prompt: str
    scenario: str = ""
    condition: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, str] = field(default_factory=dict)
    seed: int | None = None


class AgentStopped(Exception):
    """The agent reached one of its limits (``reason``: max_steps, max_cost, wall_time, context_window, ...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class InfrastructureError(Exception):
    """The model provider could not be used (retries exhausted, bad credentials, unknown model)."""


@runtime_checkable
class Agent(Protocol):
    """An agent acting in a peergym episode."""

    def reset(self, task: Task) -> None:
        """Start a new episode."""

    def act(self, observation: str) -> Action:
        """Return the next action, given the output of the previous one (the task text on the first call)."""
