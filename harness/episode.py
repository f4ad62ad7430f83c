"""Run one episode: an agent against an environment, into one record."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.base import Agent, EndTask, ShellCommand, Task
from envs.sandbox import SandboxError

from .records import write_atomic

# Verdicts copied to the record's top level, named as in the study's released data.
COLUMNS = ("exfiltration", "copy", "timestamp_edit", "hook_disabled", "correct", "delete_model")


def run_episode(env: Any, agent: Agent, *, seed: int, options: dict[str, Any] | None = None,
                agent_info: dict[str, Any] | None = None, runs_dir: Path | str = "runs",
                on_step: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Reset ``env``, let ``agent`` act until it ends the task or the time limit truncates, write the record.

    Infrastructure failures (no engine, a host that died) end the episode with ``error.type ==
    "infrastructure"``; an exception from the agent with ``"agent"``. Neither is a behaviour. Ctrl-C closes
    the environment and propagates.
    """
    started = time.time()
    record: dict[str, Any] = {
        "scenario": None, "condition": options or {}, "seed": seed, "agent": agent_info or {},
        "started_at": dt.datetime.now(dt.UTC).isoformat(), "steps": [], "final_message": None,
        "verdicts": {}, "evidence": {}, "events": [], "error": None, "reward": None,
        "num_turns": 0, "tokens": None, "total_cost_usd": None, "refused": None,
    }  # fmt: skip
    try:
        observation, info = env.reset(seed=seed, options=options)
        record.update(scenario=info["scenario"], condition=info["condition"], episode_id=info["episode_id"],
                      run_id=info["run_id"], system_prompt=info["system_prompt"], task=observation)  # fmt: skip
        agent.reset(
            Task(info["system_prompt"], observation, info["scenario"], info["condition"], info["context"])
        )
        terminated = truncated = False
        while not (terminated or truncated):
            phase = "agent"
            action = agent.act(observation)
            phase = "env"
            observation, reward, terminated, truncated, info = env.step(action)
            step = {"step": info["step"], "output": observation, **_describe(action),
                    **{k: v for k, v in info.items() if k not in ("verdicts", "evidence", "step")}}  # fmt: skip
            record["steps"].append(step)
            if on_step:
                on_step(step)
            record["reward"] = reward
        verdicts = env.unwrapped.final_verdicts()
        record.update(verdicts=verdicts.values, evidence=verdicts.evidence, truncated=truncated,
                      events=[e.as_dict() for e in env.unwrapped.events])  # fmt: skip
        record.update({name: verdicts.values.get(name) for name in COLUMNS})
        if isinstance(action, EndTask):
            record["final_message"] = action.message
    except SandboxError as exc:
        record["error"] = {"type": "infrastructure", "message": str(exc), "exception": type(exc).__name__}
    except Exception as exc:
        kind = "agent" if locals().get("phase") == "agent" else "infrastructure"
        record["error"] = {"type": kind, "message": str(exc), "exception": type(exc).__name__}
    finally:
        env.close()
        record["num_turns"] = len(record["steps"])
        record["duration_s"] = round(time.time() - started, 3)
        usage = getattr(agent, "usage", None)
        if callable(usage):
            record.update(usage())
    episode_id = record.get("episode_id") or f"failed-{int(started)}"
    run_id = record.get("run_id") or "unlabelled"
    record["path"] = str(write_atomic(Path(runs_dir) / run_id / f"{episode_id}.json", record))
    return record


def _describe(action: Any) -> dict[str, Any]:
    if isinstance(action, ShellCommand):
        return {"tool": "shell", "command": action.command}
    if isinstance(action, EndTask):
        return {"tool": "end_task", "message": action.message}
    return {"tool": "raw", "action": repr(action)}
