"""``make bench``: the figures the issues ask for, each beside a baseline measured in the same run.

Figures are reported, never asserted: timings depend on the machine, ratios against a same-run
baseline much less.
Results are printed as a table and written to ``bench/results/latest.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from envs.sandbox import REMOVER, HostSpec, Sandbox, SeedFile, lifecycle  # noqa: E402
from envs.sandbox.engine import client  # noqa: E402

console = Console(width=150)
RESULTS: list[dict[str, object]] = []
BENCHES: list[Callable[[], None]] = []


def bench(fn: Callable[[], None]) -> Callable[[], None]:
    BENCHES.append(fn)
    return fn


def report(
    name: str, value: float, unit: str, target: str, baseline: str = "", ok: bool | None = None
) -> None:
    RESULTS.append({"figure": name, "value": round(value, 4), "unit": unit, "target": target,
                    "baseline": baseline, "met": ok})  # fmt: skip


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def two_hosts() -> list[HostSpec]:
    data = SeedFile("/data", is_dir=True, uid=1000, gid=1000, mode=0o755, mtime=1.7e9)
    files = (
        data,
        *(SeedFile(f"/data/f{i}.txt", b"x" * 1000, uid=1000, gid=1000, mtime=1.7e9) for i in range(5)),
    )
    return [HostSpec("source", "fs-45", "10.0.12.45", files=files),
            HostSpec("destination", "fs-46", "10.0.12.46", files=(data,))]  # fmt: skip


@bench
def shell_round_trip() -> None:
    with Sandbox(two_hosts()) as box:
        for _ in range(50):
            box.exec("true")
        shell = []
        for _ in range(500):
            t = time.perf_counter()
            box.exec("true")
            shell.append(time.perf_counter() - t)
        container = client().containers.get(box.hosts["source"].container_id)
        exec_run = []
        for _ in range(30):
            t = time.perf_counter()
            container.exec_run(["true"], user="maintainer")
            exec_run.append(time.perf_counter() - t)
    ratio = ms(shell) / ms(exec_run)
    report("shell round trip `true` (median)", ms(shell), "ms", "<= 2 ms", ok=ms(shell) <= 2)
    report("shell / SDK exec_run (median)", ratio, "ratio", "<= 0.05",
           f"exec_run {ms(exec_run):.1f} ms", ok=ratio <= 0.05)  # fmt: skip


@bench
def start_and_close() -> None:
    starts, closes = [], []
    for _ in range(10):
        t = time.perf_counter()
        box = Sandbox(two_hosts()).start()
        starts.append(time.perf_counter() - t)
        t = time.perf_counter()
        box.close()
        closes.append(time.perf_counter() - t)
    t = time.perf_counter()
    REMOVER.drain()
    drain = time.perf_counter() - t
    report("two-host episode start (median of 10)", ms(starts), "ms", "<= 1000 ms", ok=ms(starts) <= 1000)
    report("close on the caller's path (median)", ms(closes), "ms", "<= 100 ms", ok=ms(closes) <= 100)
    report("background removal of 10 episodes finished", drain * 1000, "ms", "finishes", ok=True)


@bench
def sixteen_concurrent() -> None:
    errors: list[str] = []

    def one(_: int) -> None:
        try:
            with Sandbox(two_hosts(), run_id="bench16") as box:
                out = box.exec("scp -q /data/f0.txt fs-46:/data/ && ssh fs-46 ls /data").output
                if "f0.txt" not in out:
                    errors.append(out)
        except Exception as exc:
            errors.append(repr(exc))

    t = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(16)))
    REMOVER.drain()
    wall = time.perf_counter() - t
    leaked = client().api.containers(all=True, filters={"label": f"{lifecycle.RUN}=bench16"})
    report("16 concurrent two-host episodes: errors", len(errors), "count", "0", f"wall {wall:.1f} s",
           ok=not errors)  # fmt: skip
    report("16 concurrent two-host episodes: leaked containers", len(leaked), "count", "0", ok=not leaked)


@bench
def step_with_observation() -> None:
    """env.step(`true`) (command + observation of both hosts), 1 MB vs 1 GB weights, both episodes open at once
    and stepped alternately so that neither gets a quieter machine than the other."""
    import gymnasium as gym

    import envs  # noqa: F401
    from agents.base import ShellCommand

    sizes = {"1 MB": 1024 * 1024, "1 GB": 1024 * 1024 * 1024}
    times: dict[str, list[float]] = {name: [] for name in sizes}
    shell: list[float] = []
    opened = {name: gym.make("peergym/ExfiltrationTransfer-v0", max_episode_steps=10_000) for name in sizes}
    try:
        for name, env in opened.items():
            env.reset(seed=1, options={"weights_size": sizes[name]})
        for i in range(420):
            for name, env in opened.items():
                t = time.perf_counter()
                env.step(ShellCommand("true"))
                if i >= 20:  # warm-up
                    times[name].append(time.perf_counter() - t)
            t = time.perf_counter()
            opened["1 MB"].unwrapped.box.exec("true")
            shell.append(time.perf_counter() - t)
        t = time.perf_counter()
        client().api.diff(opened["1 MB"].unwrapped.box.hosts["source"].container_id)
        docker_diff = time.perf_counter() - t
    finally:
        for env in opened.values():
            env.close()
        REMOVER.drain()
    small, big = ms(times["1 MB"]), ms(times["1 GB"])
    baseline = f"bare shell {ms(shell):.2f} ms; Docker diff API {docker_diff * 1000:.0f} ms"
    report("step + observation, nothing changed, 1 MB weights (median)", small, "ms", "<= 5 ms", baseline,
           ok=small <= 5)  # fmt: skip
    report("same with 1 GB weights / with 1 MB weights", big / small, "ratio", "0.8 .. 1.2", f"1 GB: {big:.2f} ms",
           ok=0.8 <= big / small <= 1.2)  # fmt: skip


@bench
def whole_scripted_episode() -> None:
    import tempfile

    import gymnasium as gym

    import envs  # noqa: F401
    from agents.scripted import SCRIPTS, Script, ScriptedAgent
    from harness.episode import run_episode

    honest = SCRIPTS["honest"]
    eight = Script((*honest.commands, "df -h /data", "ls -la /home/maintainer", "cat /etc/hostname",
                    "ssh 10.0.12.46 ls /data", "echo done"), honest.final)  # fmt: skip
    times = []
    with tempfile.TemporaryDirectory() as runs:
        for seed in range(6):
            t = time.perf_counter()
            env = gym.make("peergym/ExfiltrationTransfer-v0")
            record = run_episode(env, ScriptedAgent(eight), seed=seed, runs_dir=runs)
            times.append(time.perf_counter() - t)
            assert record["num_turns"] == 9 and record["correct"], record["error"]
    REMOVER.drain()
    report("whole scripted episode: reset, 8 steps, verdicts, close, record (median of 6)", ms(times), "ms",
           "<= 1500 ms", ok=ms(times) <= 1500)  # fmt: skip


def main() -> int:
    only = set(sys.argv[1:])
    for fn in BENCHES:
        if not only or fn.__name__ in only:
            console.print(f"[dim]running {fn.__name__} ...[/dim]")
            fn()
    table = Table(title="peergym bench")
    for col in ("figure", "value", "unit", "target", "baseline", "met"):
        table.add_column(col)
    for row in RESULTS:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: ""}[row["met"]]  # type: ignore[index]
        table.add_row(*(str(row[c]) for c in ("figure", "value", "unit", "target", "baseline")), met)
    console.print(table)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(RESULTS, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
