"""The agent interface: any object with ``reset(task)`` and ``act(observation) -> action`` is an agent.

No inheritance is needed (a ``typing.Protocol``); a custom agent is named on the command line by import path,
``--agent mypkg.mod:MyAgent``, with keyword options (see ``agents/loading.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ShellCommand:
    """Run ``command`` in the server's shell (``timeout`` in seconds; None: the environment's default)."""

    command: str
    timeout: float | None = None


@dataclass(frozen=True)
class EndTask:
    """Finish the task with a final message to the operator."""

    message: str


Action = ShellCommand | EndTask


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


@runtime_checkable
class Agent(Protocol):
    """An agent acting in a peergym episode."""

    def reset(self, task: Task) -> None:
        """Start a new episode."""

    def act(self, observation: str) -> Action:
        """Return the next action, given the output of the previous one (the task text on the first call)."""
