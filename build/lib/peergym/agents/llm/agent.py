"""The LLM agent: any litellm model acting through the shell and end-task tools, with limits and accounting.

One conversation per episode: the scenario's system prompt, its task as the first user message, then one
assistant turn per model call and one tool result per command. Replies the tools cannot use (malformed JSON,
an unknown tool, no tool call, an empty message) are answered with a short correction and count against
``max_format_errors`` consecutive replies; past it, a reply with text ends the task with that text (the model
is evidently done talking), anything else ends the episode as an agent error. Several tool calls in one
assistant message are run in order, one episode step each.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from peergym.agents.base import Action, AgentStopped, EndTask, ShellCommand, Task

from .client import CallRecord, ChatClient
from .settings import AgentSettings, load_settings
from .tools import END, SHELL, TEXT_MODE_INSTRUCTIONS, TOOLS, Parsed, parse_text_reply, parse_tool_call

NUDGE_NATIVE = f"Please continue. Use {SHELL} to work on the server and call {END} when the work is finished."
NUDGE_TEXT = "Please continue. Run a command in a ```bash block, or reply END_TASK: <summary> when finished."
CLOSED = "[the session was closed before this ran]"


class AgentFormatError(RuntimeError):
    """The model kept replying in a form the tools cannot use (an agent error, not a behaviour)."""


class LLMAgent:
    """An agent backed by a litellm model; settings from a preset (``configs/agents``) plus overrides.

    ``--agent llm:PRESET --agent-opt model=openai/gpt-5 --agent-opt temperature=0.7`` on the command line.
    """

    def __init__(self, preset: str | None = "default", *, settings: AgentSettings | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 **overrides: Any) -> None:  # fmt: skip
        self.settings = settings or load_settings(preset, **overrides)
        self.client = ChatClient(self.settings, sleep=sleep, clock=clock)
        self.clock = clock
        self.native = self.settings.tool_mode == "native"
        self.reset(Task(system_prompt="", user_prompt=""))

    # ------------------------------------------------------------------------------------------ episode
    def reset(self, task: Task) -> None:
        self.task = task
        self.seed = self.settings.seed if self.settings.seed is not None else task.seed
        system = task.system_prompt + ("" if self.native else TEXT_MODE_INSTRUCTIONS)
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        self.calls: list[CallRecord] = []
        self.pending: deque[Parsed] = deque()  # tool calls of the last assistant message not yet run
        self.open_call: Parsed | None = None  # the call whose output the next observation is
        self.turns = 0
        self.format_errors = 0
        self.end_reason: str | None = None
        self.overhead_s: list[float] = []
        self.interview_messages: list[list[dict[str, Any]]] = []
        self._episode_end: list[dict[str, Any]] | None = None
        self._sequential: list[dict[str, Any]] = []
        self.deadline = (
            None if self.settings.wall_time_s is None else self.clock() + self.settings.wall_time_s
        )

    def act(self, observation: str) -> Action:
        started, in_calls = time.perf_counter(), 0.0
        if len(self.messages) == 1:
            self.messages.append({"role": "user", "content": observation})
        else:
            self._deliver(observation)
        while True:
            action = self._next_pending()
            if action is not None:
                self.overhead_s.append(time.perf_counter() - started - in_calls)
                return action
            self._check_limits()
            message, rec = self._call("act", TOOLS if self.native else None, self.deadline)
            in_calls += rec.latency_s + rec.waited_s  # the provider's time; the rest of act() is ours
            self.turns += 1
            action = self._take(message)
            if action is not None:
                self.overhead_s.append(time.perf_counter() - started - in_calls)
                return action

    def _deliver(self, output: str) -> None:
        """The output of the last command, as its tool result (native) or a user message (text mode)."""
        content = output if output else "(no output)"
        if self.open_call is not None and self.open_call.call_id is not None:
            self.messages.append({"role": "tool", "tool_call_id": self.open_call.call_id, "content": content})
        elif self.open_call is not None:
            self.messages.append({"role": "user", "content": f"Output:\n{content}"})
        self.open_call = None

    def _next_pending(self) -> Action | None:
        while self.pending:
            parsed = self.pending.popleft()
            if parsed.action is not None:
                self.open_call = parsed
                return parsed.action
            self.messages.append({"role": "tool", "tool_call_id": parsed.call_id, "content": parsed.problem})
        return None

    def _take(self, message: Any) -> Action | None:
        """Queue the reply's tool calls and return the first action; None when the model must try again."""
        text = _text(message)
        calls = list(getattr(message, "tool_calls", None) or []) if self.native else []
        if not text and not calls:
            return self._format_error(text, "empty reply")  # nothing to add to the conversation: ask again
        self.messages.append(_assistant_dict(message, calls))
        if calls:
            parsed = [parse_tool_call(c) for c in calls]
            self.pending.extend(parsed)
            if any(p.action is not None for p in parsed):
                self.format_errors = 0
                return self._next_pending()
            self._next_pending()  # every call was unusable: answer each with its problem
            return self._format_error(text, "; ".join(p.problem or "" for p in parsed))
        action = None if self.native else parse_text_reply(text)
        if action is not None:
            self.format_errors = 0
            self.open_call = Parsed(None, action)
            return action
        self.messages.append({"role": "user", "content": NUDGE_NATIVE if self.native else NUDGE_TEXT})
        return self._format_error(text, "no tool call")

    def _format_error(self, text: str, problem: str) -> Action | None:
        self.format_errors += 1
        if self.format_errors <= self.settings.max_format_errors:
            return None
        if text:
            self.end_reason = "text_reply"
            return EndTask(text)
        raise AgentFormatError(f"{self.format_errors} unusable replies in a row (last: {problem})")

    def _check_limits(self) -> None:
        s = self.settings
        if self.turns >= s.max_steps:
            raise AgentStopped("max_steps", f"{self.turns} model turns")
        spent = sum(c.cost_usd or 0.0 for c in self.calls)
        if s.max_cost_usd is not None and spent >= s.max_cost_usd:
            raise AgentStopped("max_cost", f"${spent:.4f} spent of ${s.max_cost_usd}")
        if self.deadline is not None and self.clock() >= self.deadline:
            raise AgentStopped("wall_time", f"{s.wall_time_s} s")

    def _call(
        self, purpose: str, tools: list[dict[str, Any]] | None, deadline: float | None
    ) -> tuple[Any, CallRecord]:
        try:
            message, rec = self.client.complete(self.messages, tools=tools, seed=self.seed, deadline=deadline,
                                                purpose=purpose)  # fmt: skip
        except Exception as exc:
            failed = getattr(exc, "call", None)
            if failed:
                self.calls.append(CallRecord(**failed))
            raise
        self.calls.append(rec)
        return message, rec

    # ---------------------------------------------------------------------------------------- interview
    def observe_end(self, output: str) -> None:
        """The output of the last command when the episode ended before it reached ``act`` (a step limit)."""
        if self.open_call is not None:
            self._deliver(output)

    def answer(self, question: str, run: Callable[[str], str], *, fresh: bool = False) -> str:
        """Answer a follow-up question in the episode's conversation (``fresh``: from the episode's end).

        Sequential questions share one thread; a fresh question branches from the end of the episode and leaves
        that thread as it was. With native tools the model may use the shell while answering (up to
        ``interview_tool_rounds`` rounds; commands run on the server as the episode left it). In text mode the
        reply is the answer as written: a fenced block in it is quoted, not run.
        """
        if self._episode_end is None:
            self._close_open_calls()
            self._episode_end = list(self.messages)
            self._sequential = list(self.messages)
        self.messages = list(self._episode_end) if fresh else self._sequential
        start = len(self.messages)
        self.messages.append({"role": "user", "content": question})
        try:
            return self._answer_rounds(run)
        finally:
            self.interview_messages.append(self.messages[start:])
            if not fresh:
                self._sequential = self.messages
            self.messages = self._sequential

    def _answer_rounds(self, run: Callable[[str], str]) -> str:
        reply = ""
        for rounds in range(self.settings.interview_tool_rounds + 1):
            message, _ = self._call("interview", TOOLS if self.native else None, None)
            text = _text(message)
            calls = list(getattr(message, "tool_calls", None) or []) if self.native else []
            if not text and not calls:
                continue  # an empty turn: providers reject it in the history, so ask again
            self.messages.append(_assistant_dict(message, calls))
            reply = text or reply
            if not calls:
                break
            allowed = rounds < self.settings.interview_tool_rounds
            answer = None
            for parsed in map(parse_tool_call, calls):
                if isinstance(parsed.action, ShellCommand) and allowed:
                    result = run(parsed.action.command) or "(no output)"
                elif isinstance(parsed.action, EndTask):
                    result, answer = "Posted to the ticket.", parsed.action.message
                else:
                    result = parsed.problem or CLOSED
                self.messages.append({"role": "tool", "tool_call_id": parsed.call_id, "content": result})
            if answer is not None or not allowed:
                return answer if answer is not None else reply
        return reply

    def _close_open_calls(self) -> None:
        """Every tool call needs a result before the next user message; the episode may have ended mid-way."""
        if self.open_call is not None and self.open_call.call_id is not None:
            done = isinstance(self.open_call.action, EndTask)
            content = "Posted to the ticket." if done else CLOSED
            self.messages.append({"role": "tool", "tool_call_id": self.open_call.call_id, "content": content})
        self.open_call = None
        while self.pending:
            parsed = self.pending.popleft()
            self.messages.append({"role": "tool", "tool_call_id": parsed.call_id, "content": CLOSED})

    # ------------------------------------------------------------------------------------------- record
    def record_fields(self) -> dict[str, Any]:
        """Tokens, cost (None when any call's price is unknown), every call, the conversation, the settings."""

        def total(attr: str) -> int | None:
            values = [getattr(c, attr) for c in self.calls if getattr(c, attr) is not None]
            return sum(values) if values else None

        known = sum(c.cost_usd or 0.0 for c in self.calls)
        priced = [c for c in self.calls if c.ok]  # a call that failed returned no usage to price
        unknown = sum(1 for c in priced if c.cost_usd is None)
        overhead = sorted(self.overhead_s)
        return {
            "tokens": {"prompt": total("prompt_tokens"), "completion": total("completion_tokens"),
                       "reasoning": total("reasoning_tokens"), "cached": total("cached_tokens")},
            "total_cost_usd": None if unknown else round(known, 8),
            "cost": {"known_usd": round(known, 8), "calls_with_unknown_price": unknown,
                     "sources": sorted({c.cost_source for c in priced})},
            "model_calls": [c.as_dict() for c in self.calls],
            "retries": sum(max(0, c.attempts - 1) for c in self.calls),
            "waited_s": round(sum(c.waited_s for c in self.calls), 3),
            "messages": self._episode_end if self._episode_end is not None else self.messages,
            "interview_messages": self.interview_messages,
            "sampling": {**self.settings.public(), "seed": self.seed,
                         "seed_sent": self.seed is not None and self.client.seed_supported},
            "end_reason": self.end_reason,
            "overhead_ms_median": round(overhead[len(overhead) // 2] * 1000, 3) if overhead else None,
        }  # fmt: skip


def _text(message: Any) -> str:
    """The reply's text, stripped; "" when there is none (content can be None or a list of parts)."""
    content = getattr(message, "content", None)
    return content.strip() if isinstance(content, str) else ""


def _assistant_dict(message: Any, calls: list[Any]) -> dict[str, Any]:
    """The assistant turn as sent back to the provider (tool calls verbatim, reasoning blocks kept)."""
    out: dict[str, Any] = {
        "role": "assistant",
        "content": message.content if isinstance(message.content, str) else None,
    }
    if calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.function.name, "arguments": c.function.arguments},
            }
            for c in calls
        ]
    for extra in ("thinking_blocks", "reasoning_content"):
        value = getattr(message, extra, None)
        if value:
            out[extra] = value
    return out
