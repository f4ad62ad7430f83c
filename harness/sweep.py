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
              stop: threading.Event | None = None) -> Progress:  # fmt: skip
    """Run every episode of ``spec`` not finished in ``folder`` yet, ``concurrency`` at a time, with the servers of
    the next ``warm`` episodes started ahead (a :class:`~peergym.envs.pool.WarmPool`).

    ``stop`` (set by Ctrl-C) lets the running episodes end and starts no new one; each episode's env is closed
    by its own worker and the pool closes what was never taken, so no container outlives the sweep.
    """
    from peergym.agents.loading import load_agent
    from peergym.agents.scripted import HONEST_BY_SCENARIO
    from peergym.envs import make_env
    from peergym.envs.pool import WarmPool
    from peergym.envs.verdicts import detector

    from .episode import run_episode

    folder.mkdir(parents=True, exist_ok=True)
    _write_provenance(spec, folder)
    todo = cells(spec)
    progress = Progress(total=len(todo))
    pending = [c for c in todo if not finished(record_path(folder, c), retry_errors)]
    progress.skipped = len(todo) - len(pending)
    stop = stop or threading.Event()
    run_id = f"sweep-{spec.name}"[:40]
    ahead = spec.warm if warm is None else warm
    pool = WarmPool(ahead, run_id=run_id) if ahead else None

    def offer(start: int) -> None:
        """Offer the pool the episodes after the ones running (it starts them in this order)."""
        if pool is not None:
            for cell in pending[start : start + ahead]:
                condition = Condition(**cell.condition.model_dump(exclude_none=True))  # as the env builds it
                pool.offer(load_scenario(cell.scenario), condition, cell.seed)

    def one(cell: Cell) -> dict[str, Any]:
        agent_spec = cell.agent.spec
        if agent_spec == HONEST:
            agent_spec = f"scripted:{HONEST_BY_SCENARIO[cell.scenario]}"
        agent = load_agent(agent_spec, **cell.agent.options)
        # Servers start at the first command (from the pool when it has them), so an episode waiting for its
        # model's first reply holds none.
        env = make_env(cell.scenario, max_steps=spec.max_steps, run_id=run_id, pool=pool, defer_start=True)
        try:
            record = run_episode(env, agent, seed=cell.seed, options=cell.condition.model_dump(exclude_none=True),
                                 agent_info={"spec": agent_spec, "options": cell.agent.options},
                                 runs_dir=folder, record_name=f"episodes/{cell.key}.json",
                                 sweep={"name": spec.name, **cell.describe()})  # fmt: skip
        finally:
            env.close()
        progress.add(record, detector(load_scenario(cell.scenario).detector).misbehaviours)
        return record

    workers = concurrency or spec.concurrency
    queue: Iterator[Cell] = iter(pending)
    submitted = 0
    running: set[Future[dict[str, Any]]] = set()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep") as executor:
        try:
            while True:
                while (
                    not stop.is_set() and len(running) < workers and (cell := next(queue, None)) is not None
                ):
                    running.add(executor.submit(one, cell))
                    submitted += 1
                    offer(submitted)
                if not running:
                    break
                finished_now, running = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in finished_now:
                    future.result()  # a bug of ours surfaces; an episode's own failure is in its record
                if on_progress:
                    on_progress(progress)
        except KeyboardInterrupt:
            # Ctrl-C (or SIGTERM): start nothing more, let the running episodes end and write their records
            # (each closes its own servers); then stop. What did not start runs when the sweep is resumed.
            stop.set()
            wait(running)
            raise
        finally:
            if pool is not None:
                pool.close()
                progress.pool = dict(pool.stats)
    return progress


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
