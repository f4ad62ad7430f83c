"""What ``run-episode`` shows in the terminal: the live transcript and the verdict table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

SHOWN_LINES = 25


def terminal_safe(text: str) -> str:
    """``text`` with every non-printable character but newline and tab shown as an escape (``\\u202e``).

    Agent-controlled text (commands, outputs, messages, paths) must not reach the terminal as is: escape
    sequences (ESC), carriage returns, right-to-left overrides and other invisible format characters (Unicode
    categories Cc and Cf, line/paragraph separators, unassigned code points) could rewrite or hide what is
    shown. Printable text, newlines and tabs are kept.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" else repr(ch)[1:-1] for ch in text)


def _safe(value: Any, style: str = "") -> Text:
    """A value as terminal-safe plain text (never parsed as Rich markup)."""
    return Text(terminal_safe(str(value)), style=style)


class Transcript:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    def header(self, args: Any, options: dict[str, Any]) -> None:
        cond = ", ".join(f"{k}={v}" for k, v in options.items())
        title = _safe(f"{args.scenario}  agent={args.agent}  seed={args.seed}")
        title.stylize("bold", 0, len(terminal_safe(str(args.scenario))))
        self.console.rule(title)
        self.console.print(_safe(cond, "dim"))

    def step(self, step: dict[str, Any]) -> None:
        c = self.console
        if step["tool"] == "shell":
            c.print(_safe(f"[{step['step']}] $ {step['command']}", "bold cyan"))
            lines = str(step["output"]).splitlines()
            shown = "\n".join(lines[:SHOWN_LINES])
            if len(lines) > SHOWN_LINES:
                shown += f"\n... ({len(lines) - SHOWN_LINES} more lines in the record)"
            if shown:
                c.print(_safe(shown, "dim"))
            status = f"exit {step.get('exit_code')}" + ("  TIMED OUT" if step.get("timed_out") else "")
            c.print(_safe(f"    {status}, {step.get('duration_s', 0):.2f} s", "dim italic"))
        else:
            c.print(_safe(f"[{step['step']}] end task: {step.get('message', '')}", "bold green"))
        for e in step.get("events", []):
            detail = {k: v for k, v in e.items() if k not in ("step", "host", "kind", "path")}
            style = "bold red" if e["kind"] == "weights_found" else "yellow"
            text = f"    event {e['host']}: {e['kind']} {e['path']} {json.dumps(detail, default=str) if detail else ''}"
            c.print(_safe(text, style))

    def interview(self, entries: list[dict[str, Any]]) -> None:
        table = Table(title="interview")
        for column in ("set", "question", "answer", "label", "reading"):
            table.add_column(column)
        for e in entries:
            answer = str(e.get("answer") or e.get("error") or "")
            answer = answer if len(answer) <= 200 else answer[:197] + "..."
            style = "red" if e.get("reading") in ("denied", "false_admission") else ""
            table.add_row(
                _safe(e["set"]),
                _safe(e["question"]),
                _safe(answer),
                _safe(e.get("label")),
                _safe(e.get("reading") or "", style),
            )
        self.console.print(table)

    def summary(self, record: dict[str, Any], misbehaviours: Iterable[str] = ()) -> None:
        """The error if any, the verdict table (misbehaviours found in red), the interview, the totals."""
        c = self.console
        misbehaviour = set(misbehaviours)
        if record["error"]:
            line = Text(f"{terminal_safe(str(record['error']['type']))} error:", style="bold red")
            line.append(" " + terminal_safe(str(record["error"]["message"])))
            c.print(line)
        table = Table(title="verdicts")
        table.add_column("verdict")
        table.add_column("value")
        table.add_column("evidence")
        for name, value in record["verdicts"].items():
            evidence = record["evidence"].get(name, [])
            text = "\n".join(json.dumps(e, default=str) for e in evidence[:4])
            style = "red" if value is True and name in misbehaviour else ""
            table.add_row(_safe(name), _safe(value, style), _safe(text))
        c.print(table)
        if record.get("interview"):
            self.interview(record["interview"])
        c.print(_safe(f"reward {record['reward']}  turns {record['num_turns']}  {record['duration_s']} s"))
        c.print(_safe(f"record: {record['path']}"))
