"""The actions an agent takes and the text spaces they travel in: the environment's vocabulary.

They live in the environment package because the environment defines them; agents import them from here
(``peergym.agents.base`` re-exports them for convenience), and nothing in ``peergym.envs`` imports an agent.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from gymnasium import spaces

SHELL, END_TASK = 0, 1
MAX_TEXT = 1_000_000
SAMPLE_LENGTH = 4096  # the longest text sample() draws when no length is asked for
_LINE_CONTROLS = str.maketrans("", "", "\t\n\r")
_CONTROL = {c: "\ufffd" for c in [*range(0, 9), 11, 12, *range(14, 32), 127, *range(128, 160)]}


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


class PrintableText(spaces.Text):
    """Text of any printable Unicode character plus tab, newline and carriage return.

    ``spaces.Text`` defaults to an alphanumeric charset, in which ``ls -la`` is not a member; this space samples
    from printable ASCII but accepts any printable text.
    """

    def __init__(self, max_length: int = MAX_TEXT) -> None:
        # string.printable without \x0b and \x0c, which contains() (like a terminal) does not accept.
        super().__init__(
            max_length=max_length, min_length=0, charset=string.printable.replace("\x0b\x0c", "")
        )

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random text of at most :data:`SAMPLE_LENGTH` characters unless a length is given: a random
        command, not half a megabyte of noise (the space still accepts up to ``max_length``)."""
        if mask is None and probability is None:
            length = int(self.np_random.integers(self.min_length, min(self.max_length, SAMPLE_LENGTH) + 1))
            mask = (length, None)
        return super().sample(mask=mask, probability=probability)

    def contains(self, x: Any) -> bool:
        # One pass in C: drop the three allowed whitespace controls, then every character left must print.
        return isinstance(x, str) and len(x) <= self.max_length and x.translate(_LINE_CONTROLS).isprintable()


class ToolSpace(spaces.Discrete):
    """``Discrete(2)``: 0 runs a shell command, 1 ends the task. ``sample()`` draws the shell tool (a random
    end would finish every episode at its first step, so a checker's random actions would never run a
    command); a mask or probabilities draw as ``Discrete`` does."""

    def __init__(self) -> None:
        super().__init__(2)

    def sample(self, mask: Any = None, probability: Any = None) -> Any:
        if mask is None and probability is None:
            return self.dtype.type(SHELL)
        return super().sample(mask=mask, probability=probability)


class ActionSpace(spaces.Dict):
    """``Dict(tool=ToolSpace, text=PrintableText)``, which also holds the typed actions: ``ShellCommand("ls")
    in env.action_space`` is True."""

    def __init__(self) -> None:
        super().__init__({"tool": ToolSpace(), "text": PrintableText()})

    def contains(self, x: Any) -> bool:
        if isinstance(x, ShellCommand):
            return self["text"].contains(x.command)
        if isinstance(x, EndTask):
            return self["text"].contains(x.message)
        return super().contains(x)


def printable(text: str) -> str:
    """Replace what does not print (control characters of escape sequences, NULs of binary output, format
    characters such as bidi overrides, lone surrogates) by U+FFFD, as a terminal would; keep tab, newline and
    carriage return. The result is always a member of :class:`PrintableText`."""
    text = text.translate(_CONTROL)
    if text.translate(_LINE_CONTROLS).isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\t\n\r" else "\ufffd" for c in text)


class InvalidAction(TypeError):
    """The agent's action is not one the environment takes (the agent's fault, not the environment's)."""


def to_action(action: Any) -> Action:
    """Accept ``ShellCommand``/``EndTask`` or the space's dict form ``{"tool": 0|1, "text": str}``."""
    if isinstance(action, ShellCommand | EndTask):
        return action
    if isinstance(action, dict) and "tool" in action and action["tool"] in (SHELL, END_TASK):
        text = str(action.get("text", ""))
        return EndTask(text) if int(action["tool"]) == END_TASK else ShellCommand(text)
    raise InvalidAction(
        f"an action is ShellCommand, EndTask or {{'tool': 0|1, 'text': str}}, got {action!r:.200}"
    )
