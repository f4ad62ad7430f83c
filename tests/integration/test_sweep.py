"""Sweeps on real servers: every episode of a sweep runs once, a rerun skips what finished, and a runner killed
with SIGKILL mid-sweep loses and duplicates nothing when the sweep is resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from peergym.harness.sweep import cells, load_sweep, record_path, run_sweep
from tests.sweeps import kill_sweep_midway, read_records, write_sweep

pytestmark = pytest.mark.docker

SMALL = """
name: {name}
scenarios: [exfiltration_deletion]
agents: [scripted:honest-cleanup]
grid: {{relationship: [good, bad], instantiation: [file_only]}}
epochs: {epochs}
concurrency: 2
max_steps: 10
"""


def _sweep(tmp_path: Path, name: str, epochs: int) -> str:
    return write_sweep(tmp_path, SMALL, name, epochs)


def test_a_sweep_runs_each_episode_once_and_a_rerun_skips_them(docker_api, tmp_path) -> None:
    spec = load_sweep(_sweep(tmp_path, "twice", 2))
    folder = tmp_path / "out"
    progress = run_sweep(spec, folder)
    records = read_records(folder)
    expected = {c.key for c in cells(spec)}
    assert progress.done == len(expected) == 8 and set(records) == expected
    assert all(
        r["error"] is None and r["reward"] == 1.0 and r["sweep"]["key"] == k for k, r in records.items()
    )
    provenance = json.loads((folder / "sweep.json").read_text())
    assert (
        provenance["sweep"]["name"] == "twice"
        and provenance["episodes"] == 8
        and "peergym" in provenance["versions"]
    )
    before = {k: record_path(folder, c).stat().st_mtime_ns for c in cells(spec) for k in [c.key]}
    again = run_sweep(spec, folder)
    assert again.done == 0 and again.skipped == 8
    assert {k: record_path(folder, c).stat().st_mtime_ns for c in cells(spec) for k in [c.key]} == before


def test_a_runner_killed_mid_sweep_loses_and_duplicates_nothing(docker_api, tmp_path) -> None:
    path = _sweep(tmp_path, "killed", 5)  # 20 episodes
    folder = tmp_path / "runs" / "sweeps" / "killed"
    records = kill_sweep_midway([path, "--runs-dir", str(tmp_path / "runs")], folder)
    survived = {k: (r["episode_id"], r["started_at"]) for k, r in records.items()}
    assert 4 <= len(survived) < 20, len(survived)
    # The killed runner's servers are reaped as any dead run's are (peergym clean; the watchdog otherwise).
    subprocess.run([sys.executable, "-m", "peergym.harness.cli", "clean"], check=True, capture_output=True)
    spec = load_sweep(path)
    progress = run_sweep(spec, folder)
    records = read_records(folder)
    assert set(records) == {c.key for c in cells(spec)} and len(records) == 20  # none lost
    assert progress.skipped == len(survived) and progress.done == 20 - len(survived)  # none run twice
    assert {k: (records[k]["episode_id"], records[k]["started_at"]) for k in survived} == survived
    assert not list((folder / "episodes").glob(".*"))  # no half-written record left behind


def test_a_sweep_with_a_warm_pool_takes_started_servers_and_leaves_none(docker_api, tmp_path) -> None:
    from peergym.envs.sandbox.lifecycle import MANAGED, REMOVER, RUN

    spec = load_sweep(_sweep(tmp_path, "warm", 3))  # 12 episodes, 2 at a time, 3 started ahead
    progress = run_sweep(spec, tmp_path / "out", warm=3)
    records = read_records(tmp_path / "out")
    assert progress.done == len(records) == 12
    assert all(r["error"] is None and r["reward"] == 1.0 for r in records.values())
    # After the first ones, every episode took servers the pool had started (ready, or being started).
    taken = progress.pool["taken_warm"] + progress.pool["taken_starting"]
    assert taken >= 12 - 2 - 1, progress.pool
    assert progress.pool["taken_warm"] >= 1, progress.pool
    assert progress.pool["unused"] == 0  # the pool was offered only what the sweep ran
    REMOVER.drain()
    left = docker_api.containers(all=True, filters={"label": [MANAGED, f"{RUN}=sweep-warm"]})
    assert left == []
