"""Run one episode: an agent against an environment, into one record."""

from __future__ import annotations

import datetime as dt
import inspect
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from peergym.agents.base import Agent, AgentStopped, EndTask, InfrastructureError, ShellCommand, Task
from peergym.envs.actions import InvalidAction
from peergym.envs.sandbox import SandboxError

from .classify import judge_label
from .interview import InterviewFile, classify, run_interview
from .readings import judge_undetermined
from .record import ACCOUNTING, SCHEMA_VERSION, EpisodeRecord
from .records import write_atomic


@dataclass(frozen=True)
class InterviewPlan:
    """Which interview to hold after the episode: the file, its sets (None: all) and an optional judge."""

    spec: InterviewFile
    sets: list[str] | None = None
    judge: Callable[[str], str] | None = None


def run_episode(env: Any, agent: Agent, *, seed: int, options: dict[str, Any] | None = None,
                agent_info: dict[str, Any] | None = None, runs_dir: Path | str = "runs",
                on_step: Callable[[dict[str, Any]], None] | None = None,
                interview: InterviewPlan | None = None,
                judge: Callable[[str], str] | None = None, record_name: str | None = None,
                sweep: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Reset ``env``, let ``agent`` act until it ends the task or a limit stops it, interview it, write the record.

    A limit (the env's step limit, the agent's :class:`AgentStopped`, a host's disk limit) truncates the
    episode; its verdicts count. A host the agent's own commands stopped ends it too (``host_killed``), and
    what was observed up to then is behaviour. Whose failure an exception is depends on where it was raised:
    from the agent (``act``, an action the env refuses) it is ``error.type == "agent"``; from the env, the
    sandbox or a provider that kept failing (:class:`InfrastructureError`) it is ``"infrastructure"``.
    Neither is a behaviour: the top-level verdict columns stay null and what was seen so far is kept under
    ``partial_verdicts``. Ctrl-C or SIGTERM writes the record so far (``interrupted: true``) and propagates.
    Whatever happens, a record is written (to a temporary folder if ``runs_dir`` cannot take it). ``judge``
    (a judge model's ``complete(prompt)``) reads the reported values the deterministic readers left
    undetermined (harness/readings.py); without one they stay null. ``record_name`` fixes the record's path
    under ``runs_dir`` (a sweep's ``episodes/<key>.json``; default ``<run_id>/<episode_id>.json``), and
    ``sweep`` (the sweep and cell it belongs to) is kept in it.
    """
    started = time.time()
    # The scenario's detector declares its verdicts; those with a study column are the record's top level.
    detector = env.unwrapped.detector
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "scenario": None, "condition": options or {}, "seed": seed,
        "agent": agent_info or {}, "started_at": dt.datetime.now(dt.UTC).isoformat(), "steps": [],
        "sweep": sweep, "final_message": None, "verdicts": {}, "evidence": {}, "events": [], "error": None,
        "reward": None,
        "truncated": False, "stop_reason": None, "host_killed": None, "interrupted": False, "num_turns": 0,
        "tokens": None, "total_cost_usd": None, "refused": None, "interview": [], **dict.fromkeys(detector.columns),
    }  # fmt: skip
    stage = _Stage()
    try:
        try:
            reset_at = time.perf_counter()
            observation, info = env.reset(seed=seed, options=options)
            record["reset_s"] = round(time.perf_counter() - reset_at, 4)
            record.update(scenario=info["scenario"], condition=info["condition"], episode_id=info["episode_id"],
                          run_id=info["run_id"], system_prompt=info["system_prompt"], task=observation)  # fmt: skip
            interviewing = interview is not None and callable(getattr(agent, "answer", None))
            # The shutdown job wipes the host: with an interview to hold on the server as it was left, it runs after.
            env.unwrapped.defer_shutdown_check = interviewing
            stage.now = "agent"
            agent.reset(Task(info["system_prompt"], observation, info["scenario"], info["condition"],
                             info["context"], seed=seed))  # fmt: skip
            action, truncated, last_output = _play(env, agent, observation, record, on_step, stage)
            end = getattr(agent, "observe_end", None)
            if truncated and isinstance(action, ShellCommand) and callable(end):
                end(last_output)  # so the interview does not tell the model its last command never ran
            stage.now = "env"
            verdicts = env.unwrapped.final_verdicts()
            record["truncated"] = truncated
            if isinstance(action, EndTask):
                record["final_message"] = action.message
                label = classify("refusal", action.message)
                if (
                    label == "undetermined" and judge is not None
                ):  # the phrase rules cannot tell: the judge does
                    label = judge_label(judge, "refusal", "(the task)", action.message)
                record["refused"] = {"refused": True, "complied": False}.get(label)
            if interview is not None and interviewing:
                stage.now = "interview"
                record["interview"] = run_interview(
                    _Answerer(agent), interview.spec, sets=interview.sets, verdicts=verdicts.values,
                    context=info["context"], run=env.unwrapped.run_after, judge=interview.judge,
                )  # fmt: skip
                stage.now = "env"
                verdicts = env.unwrapped.check_shutdown_job()
            if judge is not None:  # a reported value the readers left undetermined: the judge reads it once
                stage.now = "judge"
                record["judged"] = judge_undetermined(env.unwrapped, judge)
                stage.now = "env"
                verdicts = env.unwrapped.final_verdicts()
            record.update(verdicts={**verdicts.values, "refused": record["refused"]}, evidence=verdicts.evidence,
                          events=[e.as_dict() for e in env.unwrapped.events], probes=env.unwrapped.probes)  # fmt: skip
            record.update(detector.column_values(verdicts.values))
        except (SandboxError, InfrastructureError) as exc:
            record["error"] = _error("infrastructure", exc)
            _keep_partial(env, record, detector.columns)
        except Exception as exc:
            record["error"] = _error("agent" if stage.now == "agent" else "infrastructure", exc)
            _keep_partial(env, record, detector.columns)
        except BaseException as exc:  # Ctrl-C, SIGTERM (raised as KeyboardInterrupt), SystemExit
            record["interrupted"] = True
            record["error"] = _error("interrupted", exc)
            record["stop_reason"] = "interrupted"
            raise
        finally:
            env.close()
    finally:
        record["num_turns"] = len(record["steps"])
        record["duration_s"] = round(time.time() - started, 3)
        fields = getattr(agent, "record_fields", None)
        if callable(fields):
            try:
                extra = dict(fields())
            except Exception as exc:  # a broken extra must not cost the episode its record
                extra = {"record_fields_error": str(exc)}
            # An agent's extras go under their own key, where they cannot overwrite what the episode observed;
            # its token and cost totals are typed columns of their own.
            record.update({key: extra.pop(key) for key in ACCOUNTING if key in extra})
            record["agent_fields"] = extra
        record = _typed(record)
        _write(record, runs_dir, started, record_name)
    return record


def _typed(record: dict[str, Any]) -> dict[str, Any]:
    """The record as its model validates and serialises it; if it does not validate (a bug of ours), as it
    is, with the reason: a finished episode is never lost to a schema check."""
    try:
        return EpisodeRecord.model_validate(record).model_dump(mode="json")
    except ValidationError as exc:
        return {**record, "schema_error": str(exc)}


def _write(
    record: dict[str, Any], runs_dir: Path | str, started: float, record_name: str | None = None
) -> None:
    """Write the record where asked; if that fails (a file in the way, a full disk), write it to a temporary
    folder and say so on stderr: a finished episode is never lost."""
    episode_id = record.get("episode_id") or f"failed-{int(started * 1000)}"
    run_id = record.get("run_id") or "unlabelled"
    name = Path(record_name) if record_name else Path(run_id) / f"{episode_id}.json"
    try:
        record["path"] = str(write_atomic(Path(runs_dir) / name, record))
    except OSError as exc:
        fallback = Path(tempfile.gettempdir()) / "peergym-records" / name
        record["path"] = str(write_atomic(fallback, record))
        print(
            f"warning: could not write the record to {runs_dir}: {exc}; it is at {fallback}", file=sys.stderr
        )


# Info keys that belong to the episode, not to one step (the record keeps them at its top level).
_NOT_STEP_DETAILS = ("verdicts", "evidence", "step", "host_lost")


class _Stage:
    """Which part of the episode is running, so a failure is charged to whoever raised it."""

    now = "env"


def _play(env: Any, agent: Agent, observation: str, record: dict[str, Any],
          on_step: Callable[[dict[str, Any]], None] | None, stage: _Stage) -> tuple[Any, bool, str]:  # fmt: skip
    """Step until the agent ends the task, the env ends or truncates the episode, or the agent stops at a limit.

    Returns the last action, whether the episode was truncated, and the last output the agent has not seen.
    A step that fails is still recorded (its command and the error) before the failure propagates.
    """
    action: Any = None
    terminated = truncated = False
    info: dict[str, Any] = {}
    while not (terminated or truncated):
        stage.now = "agent"
        try:
            action = agent.act(observation)
        except AgentStopped as stop:
            record["stop_reason"] = stop.reason
            return None, True, ""
        stage.now = "env"
        try:
            observation, reward, terminated, truncated, info = env.step(action)
        except InvalidAction:
            stage.now = "agent"
            _record_failed_step(record, action, on_step)
            raise
        except BaseException as exc:
            _record_failed_step(record, action, on_step, exc)
            raise
        details = {k: v for k, v in info.items() if k not in _NOT_STEP_DETAILS}
        step = {"step": info["step"], "output": observation, **_describe(action), **details}
        record["steps"].append(step)
        if on_step:
            on_step(step)
        record["reward"] = reward
    if info.get("stop_reason"):  # the env ended it: the agent stopped its host, or outgrew its disk
        record["stop_reason"] = info["stop_reason"]
        lost = info.get("host_lost") or {}
        # A server the agent killed or shut down: host_killed (the reason inside says which); its disk: disk_limit.
        record["disk_limit" if lost.get("reason") == "disk_limit" else "host_killed"] = lost
    elif truncated and not terminated:
        record["stop_reason"] = "env_step_limit"
    return action, truncated and not terminated, observation


def _record_failed_step(record: dict[str, Any], action: Any, on_step: Callable[[dict[str, Any]], None] | None,
                        exc: BaseException | None = None) -> None:  # fmt: skip
    step = {"step": len(record["steps"]) + 1, "output": None, **_describe(action),
            "error": f"{type(exc).__name__}: {exc}" if exc else "invalid action"}  # fmt: skip
    record["steps"].append(step)
    if on_step:
        try:
            on_step(step)
        except Exception:
            pass


class _Answerer:
    """Calls the agent's ``answer`` with ``fresh=`` only if it takes it (a minimal custom agent may not)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.takes_fresh = "fresh" in inspect.signature(agent.answer).parameters

    def answer(self, question: str, run: Callable[[str], str], *, fresh: bool = False) -> str:
        if self.takes_fresh:
            return str(self.agent.answer(question, run, fresh=fresh))
        return str(self.agent.answer(question, run))


def _error(kind: str, exc: BaseException) -> dict[str, Any]:
    error = {"type": kind, "message": str(exc), "exception": type(exc).__name__}
    if getattr(exc, "call", None):
        error["call"] = exc.call  # type: ignore[attr-defined]
    return error


def _keep_partial(env: Any, record: dict[str, Any], columns: tuple[str, ...]) -> None:
    """What the observers saw before the failure, for diagnosis (never counted as a behaviour)."""
    try:
        if getattr(env.unwrapped, "box", None) is not None and record["verdicts"] == {}:
            record["partial_verdicts"] = env.unwrapped.final_verdicts().values
    except Exception:  # the sandbox itself may be what failed
        pass
    record["verdicts"], record["evidence"] = {}, {}
    record.update(dict.fromkeys(columns))


def _describe(action: Any) -> dict[str, Any]:
    if isinstance(action, ShellCommand):
        return {"tool": "shell", "command": action.command}
    if isinstance(action, EndTask):
        return {"tool": "end_task", "message": action.message}
    return {"tool": "raw", "action": repr(action)}
