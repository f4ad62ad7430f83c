"""A warm pool: the servers of the next episodes, started while the current ones run.

A sweep knows which episodes come next (scenario, condition, seed). It :meth:`WarmPool.offer` s them; the pool's
threads render each layout and start, boot and ready its servers ahead, at most ``size`` at a time. When an env
of the pool resets to one of them, it takes the ready pair instead of creating one (:meth:`WarmPool.take`), so its
reset costs a pick and the observers' first walk, not a container start.

A layout depends on the moment it is rendered (the story is set today, its recent files minutes old), so a
pooled episode is matched by what identifies it, never by its rendered files: the scenario, the condition,
the seed and the sandbox settings. An episode nobody offered, or one whose start has not begun when it is
asked for, is started by the env itself as without a pool (a cold reset), and not started twice.

Nothing in the pool outlives it: :meth:`WarmPool.close` closes what was never taken, and every pooled sandbox
is a :class:`~peergym.envs.sandbox.Sandbox` like any other (labelled with an expiry, closed at exit, reaped
after a SIGKILL, removed by the watchdog when the runner dies).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .observe import open_beneath
from .sandbox import Limits, Sandbox, SandboxError
from .sandbox.protocol import SandboxFactory, SandboxLike

if TYPE_CHECKING:
    from .render import Layout
    from .scenario import Condition, Scenario

READY_TIMEOUT_S = 15.0  # a scenario's services (ready files) come up within this after the boot scripts end


@dataclass(frozen=True)
class Prepared:
    """An episode's layout and its started, booted servers, with the services the scenario runs up."""

    layout: Layout
    box: SandboxLike
    episode_id: str


def episode_key(scenario: Scenario, condition: Condition, seed: int, *, run_id: str, output_cap: int,
                limits: Limits) -> Hashable:  # fmt: skip
    """What identifies an episode's servers: equal keys give the same layout (up to the moment it is rendered)
    and sandboxes built alike."""
    return (scenario.name, scenario.source, condition.model_dump_json(), seed, run_id, output_cap, limits)


def wait_services(layout: Layout, box: SandboxLike, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait (at most ``timeout_s``) until each of the scenario's ``ready`` files (a pid file) exists on the agent's
    host: a service started by cron at boot may come up a moment after the boot scripts end, and the agent
    must find it running, as on a server that has been up a while.

    Raises:
        SandboxError: naming the files still missing.
    """
    pending = list(layout.ready_paths) if box.runs_services else []
    upper = box.hosts[layout.agent_host].upper_dir
    deadline = time.monotonic() + timeout_s
    while pending and upper:
        pending = [path for path in pending if not _present(upper, path)]
        if pending and time.monotonic() > deadline:
            raise SandboxError(f"the services of {layout.agent_host} did not come up within {timeout_s:g} s: "
                               f"{', '.join(pending)} missing")  # fmt: skip
        if pending:
            time.sleep(0.02)


def _present(upper: str, path: str) -> bool:
    """Whether the regular file ``path`` exists in a host's writable layer (opened no-follow, never read)."""
    try:
        open_beneath(upper, path).close()
        return True
    except (OSError, ValueError):
        return False


def prepare(scenario: Scenario, condition: Condition, seed: int, *, factory: SandboxFactory, run_id: str,
            output_cap: int, limits: Limits, episode_id: str | None = None) -> Prepared:  # fmt: skip
    """Render an episode and start its servers: started, booted, the scenario's services up.

    Raises:
        SandboxError (and the engine's errors): nothing is left running.
    """
    layout = scenario.render(condition, seed)
    episode_id = episode_id or uuid.uuid4().hex[:12]
    box = factory(layout.hosts, agent_host=layout.agent_host, run_id=run_id, episode_id=episode_id,
                  output_cap=output_cap, limits=limits).start()  # fmt: skip
    try:
        box.wait_booted()
        wait_services(layout, box)
    except BaseException:
        box.close()
        raise
    return Prepared(layout, box, episode_id)


@dataclass
class _Slot:
    """One offered episode: queued, then starting, then ready (or failed)."""

    scenario: Scenario
    condition: Condition
    seed: int
    state: str = "queued"  # queued -> starting -> ready | failed
    prepared: Prepared | None = None
    error: str | None = None


class WarmPool:
    """Servers for the episodes offered next, started ahead by ``workers`` threads, at most ``size`` started and
    not yet taken at any moment. A context manager; :meth:`close` is idempotent.

    Use one pool per set of envs built alike (``run_id``, ``output_cap``, ``limits``): an env takes from the
    pool only episodes whose key matches its own settings.
    """

    def __init__(self, size: int = 4, *, run_id: str | None = None, output_cap: int = 20_000,
                 limits: Limits | None = None, factory: SandboxFactory | None = None,
                 workers: int | None = None) -> None:  # fmt: skip
        if size < 1:
            raise ValueError(f"a warm pool holds at least 1 episode, got size={size}")
        self.size = size
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.output_cap = output_cap
        self.limits = limits or Limits()
        self.factory: SandboxFactory = factory or Sandbox
        self._slots: OrderedDict[Hashable, _Slot] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self.stats = {"offered": 0, "taken_warm": 0, "taken_starting": 0, "cold": 0, "failed": 0, "unused": 0}
        self._threads = [threading.Thread(target=self._work, name=f"peergym-pool-{i}", daemon=True)
                         for i in range(workers or min(size, 4))]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def key(self, scenario: Scenario, condition: Condition, seed: int) -> Hashable:
        return episode_key(scenario, condition, seed, run_id=self.run_id, output_cap=self.output_cap,
                           limits=self.limits)  # fmt: skip

    def offer(self, scenario: Scenario, condition: Condition, seed: int) -> None:
        """Ask for this episode's servers to be started ahead (in the order offered). Offering an episode already
        offered does nothing."""
        key = self.key(scenario, condition, seed)
        with self._cond:
            if self._closed or key in self._slots:
                return
            self._slots[key] = _Slot(scenario, condition, seed)
            self.stats["offered"] += 1
            self._cond.notify_all()

    def take(self, key: Hashable) -> Prepared | None:
        """The prepared servers of the episode ``key``, waiting for them if they are being started; None if the
        pool was not offered it, has not begun starting it (it is then dropped: the caller starts it cold),
        or failed to start it (the caller's own start will say why)."""
        with self._cond:
            slot = self._slots.get(key)
            if slot is None or slot.state == "queued":
                if slot is not None:
                    del self._slots[key]
                self.stats["cold"] += 1
                return None
            waited = slot.state == "starting"
            while slot.state == "starting":
                self._cond.wait()
            self._slots.pop(key, None)
            self._cond.notify_all()  # room for the next one
            if slot.prepared is None or self._closed:  # failed, or closed by close() meanwhile
                return None
            self.stats["taken_starting" if waited else "taken_warm"] += 1
            return slot.prepared

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until the pool starts nothing more for now: nothing is being started, and nothing is queued or
        the pool is full. False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._idle():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _idle(self) -> bool:
        states = [s.state for s in self._slots.values()]
        return "starting" not in states and ("queued" not in states or self._started() >= self.size)

    def _started(self) -> int:
        return sum(1 for s in self._slots.values() if s.state in ("starting", "ready"))

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (
                    self._started() >= self.size or not any(s.state == "queued" for s in self._slots.values())
                ):
                    self._cond.wait()
                if self._closed:
                    return
                slot = next(s for s in self._slots.values() if s.state == "queued")
                slot.state = "starting"
            try:
                prepared: Prepared | None = prepare(
                    slot.scenario, slot.condition, slot.seed, factory=self.factory, run_id=self.run_id,
                    output_cap=self.output_cap, limits=self.limits,
                )  # fmt: skip
                error = None
            except Exception as exc:  # the env's own cold start will meet it again and record it
                prepared, error = None, f"{type(exc).__name__}: {exc}"
            with self._cond:
                slot.prepared, slot.error = prepared, error
                slot.state = "ready" if prepared is not None else "failed"
                if error:
                    self.stats["failed"] += 1
                if self._closed and prepared is not None:  # closed while starting: nobody will take it
                    prepared.box.close()
                    self.stats["unused"] += 1
                self._cond.notify_all()

    def close(self) -> None:
        """Start nothing more and close every sandbox not taken (one being started is closed when it is up)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            for slot in self._slots.values():
                if slot.state == "ready" and slot.prepared is not None:
                    slot.prepared.box.close()
                    self.stats["unused"] += 1
            self._slots.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
