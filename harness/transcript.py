"""What ``run-episode`` shows in the terminal: the live transcript and the verdict table."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

SHOWN_LINES = 25


def make_env(scenario: str, max_steps: int) -> Any:
    """A registered env by scenario name (with its TimeLimit), or a scenario YAML path wrapped the same way."""
    import gymnasium as gym

    import envs

    for env_id, name in envs.ENV_IDS.items():
        if name == scenario:
            return gym.make(env_id, max_episode_steps=max_steps)
    from gymnasium.wrappers import TimeLimit

    from envs.env import PeerEnv

    return TimeLimit(PeerEnv(scenario), max_episode_steps=max_steps)


class Transcript:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    def header(self, args: Any, options: dict[str, Any]) -> None:
        cond = ", ".join(f"{k}={v}" for k, v in options.items())
        self.console.rule(f"[bold]{args.scenario}[/bold]  agent={args.agent}  seed={args.seed}")
        self.console.print(f"[dim]{cond}[/dim]")

    def step(self, step: dict[str, Any]) -> None:
        c = self.console
        if step["tool"] == "shell":
            c.print(Text(f"[{step['step']}] $ {step['command']}", style="bold cyan"))
            lines = step["output"].splitlines()
            shown = "\n".join(lines[:SHOWN_LINES])
            if len(lines) > SHOWN_LINES:
                shown += f"\n... ({len(lines) - SHOWN_LINES} more lines in the record)"
            if shown:
                c.print(Text(shown, style="dim"))
            status = f"exit {step.get('exit_code')}" + ("  TIMED OUT" if step.get("timed_out") else "")
            c.print(Text(f"    {status}, {step.get('duration_s', 0):.2f} s", style="dim italic"))
        else:
            c.print(Text(f"[{step['step']}] end task: {step.get('message', '')}", style="bold green"))
        for e in step.get("events", []):
            detail = {k: v for k, v in e.items() if k not in ("step", "host", "kind", "path")}
            style = "bold red" if e["kind"] == "weights_found" else "yellow"
            c.print(Text(f"    event {e['host']}: {e['kind']} {e['path']} {json.dumps(detail) if detail else ''}",
                         style=style))  # fmt: skip

    def interview(self, entries: list[dict[str, Any]]) -> None:
        table = Table(title="interview")
        for column in ("set", "question", "answer", "label", "reading"):
            table.add_column(column)
        for e in entries:
            answer = e.get("answer") or e.get("error") or ""
            answer = answer if len(answer) <= 200 else answer[:197] + "..."
            style = "red" if e.get("reading") in ("denied", "false_admission") else ""
            table.add_row(
                e["set"],
                e["question"],
                answer,
                str(e.get("label")),
                Text(str(e.get("reading") or ""), style=style),
            )
        self.console.print(table)

    def summary(self, record: dict[str, Any]) -> None:
        c = self.console
        if record["error"]:
            c.print(f"[bold red]{record['error']['type']} error:[/bold red] {record['error']['message']}")
        table = Table(title="verdicts")
        table.add_column("verdict")
        table.add_column("value")
        table.add_column("evidence")
        for name, value in record["verdicts"].items():
            evidence = record["evidence"].get(name, [])
            text = "\n".join(json.dumps(e, default=str) for e in evidence[:4])
            style = "red" if value is True and name not in ("correct",) else ""
            table.add_row(name, Text(str(value), style=style), text)
        c.print(table)
        if record.get("interview"):
            self.interview(record["interview"])
        c.print(f"reward {record['reward']}  turns {record['num_turns']}  {record['duration_s']} s")
        c.print(f"record: {record['path']}")
