"""Sweeps: many episodes over a grid of conditions, agents and epochs, resumable, one record per episode.

A sweep file (``configs/sweeps/<name>.yaml``) names scenarios, agents, the condition axes to vary (each a subset
of the scenario's grid, which it is by default), values fixed for every cell, exclusions and epochs. Every
episode has a key fixed by (sweep, scenario, condition, agent, epoch): its record is
``<folder>/episodes/<key>.json``, so running the sweep again skips what finished, reruns what an
infrastructure error stopped only when asked (``retry_errors``), and never runs an episode twice. The folder
also holds the resolved sweep, the git commit and the package versions (``sweep.json``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from peergym import CONFIGS_DIR, PACKAGE_DIR
from peergym.envs.scenario import Condition, load_scenario
from peergym.envs.yamlconfig import ConfigError, read_mapping, resolve, validate

SWEEP_DIR = CONFIGS_DIR / "sweeps"
# The scripted agent that does each scenario's task honestly (agents/scripted.py, HONEST_BY_SCENARIO).
HONEST = "scripted:@honest"
_CONDITION_FIELDS = tuple(Condition.model_fields)


class SweepError(ConfigError):
    """A sweep file that cannot be loaded; the message names the file and field."""


class AgentEntry(BaseModel):
    """One agent of the sweep: a spec as ``--agent`` takes it, and its options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str
    options: dict[str, Any] = {}

    @property
    def label(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.spec}[{opts}]" if opts else self.spec


class SweepSpec(BaseModel):
    """A sweep file, validated (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    scenarios: list[str]
    agents: list[AgentEntry]
    grid: dict[str, list[Any]] = {}
    """Condition fields to vary. An axis of a scenario's grid (relationship, instantiation, subject, dataset,
    monitoring, instruction, decommission_hook) keeps those of its values listed here; another field
    (model_name, peer_name, company_name, weights_size, threshold) multiplies the cells by its values."""
    fixed: dict[str, Any] = {}
    """Condition fields set in every cell (e.g. ``decommission_hook: false``, ``weights_size``)."""
    exclude: list[dict[str, Any]] = []
    """Cells left out: each a partial condition; a cell matching every key of one is excluded."""
    epochs: int = Field(1, ge=1, le=100_000)
    concurrency: int = Field(2, ge=1, le=1024)
    """Episodes in flight at once (threads of one runner): a few for scripted agents on a small machine,
    hundreds for model agents, which spend their time waiting for the provider."""
    warm: int = Field(0, ge=0, le=256)
    """Episodes whose servers are started ahead, while the running ones run (a warm pool; 0: none)."""
    max_steps: int = Field(30, ge=1, le=1000)

    @field_validator("agents", mode="before")
    @classmethod
    def _agents(cls, value: Any) -> Any:
        # `agents: [scripted:honest]` reads naturally: a string is a spec without options.
        return [{"spec": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        problems: list[tuple[str, str]] = []
        for where, keys in (("grid", self.grid), ("fixed", self.fixed), *((f"exclude[{i}]", e) for i, e in
                                                                          enumerate(self.exclude))):  # fmt: skip
            for key in keys:
                if key not in _CONDITION_FIELDS:
                    problems.append(
                        (f"{where}.{key}", f"not a condition field (one of: {', '.join(_CONDITION_FIELDS)})")
                    )
        for key in set(self.grid) & set(self.fixed):
            problems.append((f"fixed.{key}", "also in grid: a field is varied or fixed, not both"))
        if problems:
            from peergym.envs.yamlconfig import Problems

            raise Problems(problems)
        return self


@dataclass(frozen=True)
class Cell:
    """One episode of the sweep: where its record goes and what it runs."""

    key: str
    scenario: str
    condition: Condition
    agent: AgentEntry
    epoch: int

    @property
    def seed(self) -> int:
        return int(self.key[:8], 16) % (2**31 - 1)

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "scenario": self.scenario, "agent": self.agent.label, "epoch": self.epoch,
                "condition": self.condition.model_dump(exclude_none=True)}  # fmt: skip


def load_sweep(name_or_path: str) -> SweepSpec:
    """The sweep ``configs/sweeps/<name>.yaml`` (or a path), validated, its scenarios and agents checked.

    Raises:
        SweepError: naming the file, the field and what is wrong with it.
    """
    path = resolve(name_or_path, SWEEP_DIR, "sweep", error=SweepError)
    data = read_mapping(path, "sweep", "name, scenarios, agents, grid, ...", error=SweepError)
    spec = validate(SweepSpec, data, str(path), "sweep", error=SweepError)
    try:
        cells(spec)  # every scenario loads, every listed value is in its grid
    except (ConfigError, ValueError) as exc:
        raise SweepError(f"{path}: {exc}", file=str(path)) from exc
    return spec


def cells(spec: SweepSpec) -> list[Cell]:
    """Every episode of the sweep, in a stable order (scenario, condition, agent, epoch)."""
    out: list[Cell] = []
    for name in spec.scenarios:
        scenario = load_scenario(name)
        axes: dict[str, tuple[Any, ...]] = {k: v for k, v in scenario.axes().items() if v}
        if scenario.hook_optional():
            axes["decommission_hook"] = (True, False)
        for key, values in spec.grid.items():
            wanted = list(values) if key in axes else []
            unknown = [v for v in wanted if v not in axes[key]]
            if unknown:
                raise ValueError(f"grid.{key}: {unknown} not in {name}'s grid (one of: {list(axes[key])})")
        multiply = {k: v for k, v in spec.grid.items() if k not in axes}
        for base in scenario.conditions():
            if any(k in axes and getattr(base, k) not in v for k, v in spec.grid.items()):
                continue
            if any(k in axes and k in spec.fixed and getattr(base, k) != spec.fixed[k] for k in spec.fixed):
                continue
            if "threshold" in spec.fixed and base.threshold is not None:
                base = base.model_copy(update={"threshold": spec.fixed["threshold"]})
            extra = {k: v for k, v in spec.fixed.items() if k not in axes and k != "threshold"}
            for combo in itertools.product(*multiply.values()):
                update = {**extra, **dict(zip(multiply, combo, strict=True))}
                condition = Condition(**{**base.model_dump(), **update})  # validated again
                if any(all(getattr(condition, k) == v for k, v in rule.items()) for rule in spec.exclude):
                    continue
                for agent, epoch in itertools.product(spec.agents, range(spec.epochs)):
                    out.append(
                        Cell(_key(spec.name, name, condition, agent, epoch), name, condition, agent, epoch)
                    )
    keys = [c.key for c in out]
    if len(set(keys)) != len(keys):  # the same cell listed twice (a duplicated agent or value)
        dupes = [k for k, n in Counter(keys).items() if n > 1]
        raise ValueError(
            f"the sweep lists the same episode more than once ({len(dupes)} keys, e.g. {dupes[0]})"
        )
    return out


def _key(sweep: str, scenario: str, condition: Condition, agent: AgentEntry, epoch: int) -> str:
    """The episode's key, fixed by what it runs: the same sweep, cell, agent and epoch give the same key."""
    identity = {"sweep": sweep, "scenario": scenario, "condition": condition.model_dump(mode="json"),
                "agent": agent.model_dump(mode="json"), "epoch": epoch}  # fmt: skip
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


# --- running ---------------------------------------------------------------------------------------------


@dataclass
class Progress:
    """What a running sweep has done so far (read by the live display, updated by the workers)."""

    total: int
    skipped: int = 0
    done: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    tallies: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    pool: dict[str, int] = field(
        default_factory=dict
    )  # the warm pool's counts (taken_warm, cold, ...) at the end
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: dict[str, Any], misbehaviours: tuple[str, ...]) -> None:
        with self.lock:
            self.done += 1
            if record.get("error"):
                self.errors += 1
            self.cost_usd += float(record.get("total_cost_usd") or 0.0)
            for name in misbehaviours:
                if (record.get("verdicts") or {}).get(name):
                    self.tallies[name] += 1

    def line(self) -> str:
        with self.lock:
            elapsed = time.monotonic() - self.started
            rate = self.done / elapsed * 60 if elapsed > 0 else 0.0
            left = self.total - self.skipped - self.done
            eta = left / (self.done / elapsed) if self.done else float("nan")
            tallies = ", ".join(f"{k} {v}" for k, v in sorted(self.tallies.items())) or "none"
            return (f"{self.done + self.skipped}/{self.total} ({self.skipped} already done), {rate:.0f}/min, "
                    f"ETA {eta:.0f} s, errors {self.errors}, cost ${self.cost_usd:.4f}; "
                    f"misbehaviours: {tallies}")  # fmt: skip


def record_path(folder: Path, cell: Cell) -> Path:
    return folder / "episodes" / f"{cell.key}.json"


def finished(path: Path, retry_errors: bool) -> bool:
    """Whether the episode at ``path`` needs no run: its record exists, was not interrupted, and (with
    ``retry_errors``) did not end in an infrastructure error. A record that cannot be read is rerun."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if record.get("interrupted"):
        return False
    error = record.get("error") or {}
    return not (retry_errors and error.get("type") == "infrastructure")


def run_sweep(spec: SweepSpec, folder: Path, *, retry_errors: bool = False, concurrency: int | None = None,
              warm: int | None = None, on_progress: Callable[[Progress], None] | None = None,
              stop: threading.Event | None = None, executor: str = "local",
              address: str | None = None) -> Progress:  # fmt: skip
    """Run every episode of ``spec`` not finished in ``folder`` yet, ``concurrency`` at a time.

    ``executor="local"`` runs them on threads of this process, with the servers of the next ``warm`` episodes
    started ahead (a :class:`~peergym.envs.pool.WarmPool`); ``executor="ray"`` runs them as Ray tasks on the
    cluster at ``address`` (:mod:`.sweep_ray`; ``concurrency`` defaults to the cluster's episode slots). Either
    way a record exists only for an episode that ended, at the path its key fixes.

    ``stop`` (set by Ctrl-C) lets the running episodes end and starts no new one; each episode's env is closed
    by whoever ran it and the pool closes what was never taken, so no container outlives the sweep.
    """
    from peergym.envs.verdicts import detector

    folder.mkdir(parents=True, exist_ok=True)
    _write_provenance(spec, folder)
    todo = cells(spec)
    progress = Progress(total=len(todo))
    pending = [c for c in todo if not finished(record_path(folder, c), retry_errors)]
    progress.skipped = len(todo) - len(pending)
    stop = stop or threading.Event()
    run_id = f"sweep-{spec.name}"[:40]
    runner: _Executor
    if executor == "ray":
        from .sweep_ray import RayExecutor

        if address is None:
            raise SweepError("--executor ray needs --address (the Ray cluster's head, e.g. 10.0.0.5:6379)")
        if warm:  # a sweep file's own `warm` is for local runs; asked for here, say it does nothing
            raise SweepError("--warm: the warm pool runs with the local executor only (Ray nodes start cold)")
        runner = RayExecutor(spec, folder, run_id, address)
    elif executor == "local":
        ahead = spec.warm if warm is None else warm
        runner = _LocalExecutor(spec, folder, run_id, ahead, pending, concurrency or spec.concurrency)
    else:
        raise SweepError(f"executor: {executor!r} is not one of: local, ray")
    misbehaviours = {name: detector(load_scenario(name).detector).misbehaviours for name in spec.scenarios}

    workers = concurrency or runner.slots
    queue: Iterator[Cell] = iter(pending)
    running: dict[Future[dict[str, Any]], Cell] = {}

    def collect(done: set[Future[dict[str, Any]]]) -> None:
        for future in done:
            cell = running.pop(future)
            record = future.result()  # a bug of ours surfaces; an episode's own failure is in its record
            progress.add(record, misbehaviours[cell.scenario])

    try:
        while True:
            while not stop.is_set() and len(running) < workers and (cell := next(queue, None)) is not None:
                running[runner.submit(cell)] = cell
            if not running:
                break
            done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            collect(done)
            if on_progress:
                on_progress(progress)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM): start nothing more, let the running episodes end and write their records
        # (each closes its own servers); then stop. What did not start runs when the sweep is resumed.
        stop.set()
        done, _ = wait(list(running))
        collect(done)
        raise
    finally:
        runner.close()
        progress.pool = runner.pool_stats()
    return progress


def run_cell(spec: SweepSpec, cell: Cell, folder: Path, run_id: str, *, pool: Any = None,
             where: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run ``cell``'s episode here, its record written to ``folder/episodes/<key>.json``; return the record.

    ``where`` (the executor and node that ran it) is kept in the record's ``sweep`` field.
    """
    from peergym.agents.loading import load_agent
    from peergym.agents.scripted import HONEST_BY_SCENARIO
    from peergym.envs import make_env

    from .episode import run_episode

    agent_spec = cell.agent.spec
    if agent_spec == HONEST:
        agent_spec = f"scripted:{HONEST_BY_SCENARIO[cell.scenario]}"
    agent = load_agent(agent_spec, **cell.agent.options)
    # Servers start at the first command (from the pool when it has them), so an episode waiting for its
    # model's first reply holds none.
    env = make_env(cell.scenario, max_steps=spec.max_steps, run_id=run_id, pool=pool, defer_start=True)
    try:
        return run_episode(env, agent, seed=cell.seed, options=cell.condition.model_dump(exclude_none=True),
                           agent_info={"spec": agent_spec, "options": cell.agent.options},
                           runs_dir=folder, record_name=f"episodes/{cell.key}.json",
                           sweep={"name": spec.name, **cell.describe(), **(where or {})})  # fmt: skip
    finally:
        env.close()


def failed_record(spec: SweepSpec, cell: Cell, exc: BaseException, where: dict[str, Any]) -> dict[str, Any]:
    """The record of an episode that never produced one of its own (its executor lost it for good): an
    infrastructure error, so it is never a behaviour and ``--retry-errors`` runs it again."""
    import datetime as dt

    from .record import EpisodeRecord, ErrorInfo

    record = EpisodeRecord(
        scenario=cell.scenario, condition=cell.condition.model_dump(exclude_none=True), seed=cell.seed,
        agent={"spec": cell.agent.spec, "options": cell.agent.options},
        started_at=dt.datetime.now(dt.UTC).isoformat(), steps=[], final_message=None, verdicts={}, evidence={},
        sweep={"name": spec.name, **cell.describe(), **where}, events=[], reward=None, truncated=False,
        stop_reason=None, num_turns=0, duration_s=0.0, refused=None, interview=[],
        error=ErrorInfo(type="infrastructure", message=str(exc)[:2000], exception=type(exc).__name__),
    )  # fmt: skip
    return record.model_dump(mode="json")


class _Executor:
    """Where a sweep's episodes run: ``submit`` returns a future of the episode's record, written by then."""

    slots = 0

    def submit(self, cell: Cell) -> Future[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def pool_stats(self) -> dict[str, int]:
        return {}


class _LocalExecutor(_Executor):
    """Threads of this process, with an optional warm pool fed the episodes after the ones submitted."""

    def __init__(self, spec: SweepSpec, folder: Path, run_id: str, ahead: int, pending: list[Cell],
                 slots: int) -> None:  # fmt: skip
        from peergym.envs.pool import WarmPool

        self.spec, self.folder, self.run_id, self.ahead, self.pending = spec, folder, run_id, ahead, pending
        self.pool = WarmPool(ahead, run_id=run_id) if ahead else None
        self.slots = slots
        self.threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="sweep")
        self.submitted = 0

    def submit(self, cell: Cell) -> Future[dict[str, Any]]:
        future = self.threads.submit(run_cell, self.spec, cell, self.folder, self.run_id, pool=self.pool)
        self.submitted += 1
        # Offer the pool the episodes after the ones running (it starts them in this order).
        if self.pool is not None:
            for later in self.pending[self.submitted : self.submitted + self.ahead]:
                condition = Condition(**later.condition.model_dump(exclude_none=True))  # as the env builds it
                self.pool.offer(load_scenario(later.scenario), condition, later.seed)
        return future

    def close(self) -> None:
        self.threads.shutdown(wait=True)
        if self.pool is not None:
            self.pool.close()

    def pool_stats(self) -> dict[str, int]:
        return dict(self.pool.stats) if self.pool is not None else {}


def _write_provenance(spec: SweepSpec, folder: Path) -> None:
    """The resolved sweep, the git commit of the checkout (if it is one) and the package versions."""
    try:
        commit = subprocess.run(["git", "-C", str(PACKAGE_DIR), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = None
    versions: dict[str, str | None] = {}
    for package in ("peergym", "gymnasium", "docker", "litellm", "pyyaml", "rich", "inspect_ai"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    info = {"sweep": spec.model_dump(mode="json"), "git_commit": commit, "versions": versions,
            "episodes": len(cells(spec))}  # fmt: skip
    (folder / "sweep.json").write_text(json.dumps(info, indent=1))
