"""Sweeps on a real two-node Ray cluster started on this machine (harness/ray_local.py): each episode runs once,
on either node, its record gathered by the driver; a driver killed with SIGKILL loses and duplicates nothing
when the sweep is resumed; a node killed mid-sweep has its running episodes run again on the other node, each
counted once; and no container outlives any of it."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path

import pytest

from peergym.agents.scripted import HONEST_BY_SCENARIO, SCRIPTS
from peergym.envs.sandbox.lifecycle import EPISODE, OWNER
from peergym.harness.ray_local import LocalRayCluster
from peergym.harness.sweep import Progress, SweepError, cells, load_sweep, run_sweep
from tests.containers import gone_within, ours
from tests.sweeps import kill_sweep_midway, read_records, write_sweep

pytestmark = pytest.mark.docker

SWEEP = """
name: {name}
scenarios: [exfiltration_transfer]
agents: [scripted:honest]
grid: {{relationship: [good, bad], instantiation: [file_only]}}
epochs: {epochs}
max_steps: 10
"""


def _sweep(tmp_path: Path, name: str, epochs: int) -> str:
    return write_sweep(tmp_path, SWEEP, name, epochs)


def _episodes_of(api, run: str, pids: set[int]) -> set[str]:
    """The episodes whose containers the processes ``pids`` started (their owner label names the pid)."""
    return {
        c["Labels"][EPISODE]
        for c in ours(api, f"sweep-{run}")
        if int(c["Labels"][OWNER].split(":")[2]) in pids
    }


@pytest.fixture(scope="module")
def cluster(docker_api):
    with LocalRayCluster(nodes=2, slots=2) as running:
        yield running


def test_a_sweep_runs_each_episode_once_across_both_nodes(docker_api, cluster, tmp_path) -> None:
    spec = load_sweep(_sweep(tmp_path, "ray-once", 2))  # 16 episodes, 4 at a time (the cluster's slots)
    folder = tmp_path / "out"
    progress = run_sweep(spec, folder, executor="ray", address=cluster.address)
    records = read_records(folder)
    expected = {c.key for c in cells(spec)}
    assert progress.done == len(expected) == 16 and set(records) == expected
    assert all(
        r["error"] is None and r["reward"] == 1.0 and r["sweep"]["key"] == k for k, r in records.items()
    )
    assert {r["sweep"]["executor"] for r in records.values()} == {"ray"}
    assert {r["sweep"]["node_ip"] for r in records.values()} == {"127.0.0.2", "127.0.0.3"}  # both ran some
    assert not list((folder / "episodes").glob(".*"))
    again = run_sweep(spec, folder, executor="ray", address=cluster.address)
    assert again.done == 0 and again.skipped == 16
    assert gone_within(docker_api, "sweep-ray-once", 60)


def test_a_driver_killed_mid_sweep_loses_and_duplicates_nothing(docker_api, cluster, tmp_path) -> None:
    path = _sweep(tmp_path, "ray-killed", 3)  # 24 episodes
    folder = tmp_path / "runs" / "sweeps" / "ray-killed"
    records = kill_sweep_midway([path, "--executor", "ray", "--address", cluster.address, "--runs-dir",
                                 str(tmp_path / "runs")], folder)  # fmt: skip
    survived = {k: (r["episode_id"], r["started_at"]) for k, r in records.items()}
    assert 4 <= len(survived) < 24, len(survived)
    # Ray ends a dead driver's tasks; their processes' watchdogs remove what they had started.
    assert gone_within(docker_api, "sweep-ray-killed", 60)
    spec = load_sweep(path)
    progress = run_sweep(spec, folder, executor="ray", address=cluster.address)
    records = read_records(folder)
    assert set(records) == {c.key for c in cells(spec)} and len(records) == 24  # none lost
    assert progress.skipped == len(survived) and progress.done == 24 - len(survived)  # none run twice
    assert {k: (records[k]["episode_id"], records[k]["started_at"]) for k in survived} == survived
    assert all(r["error"] is None for r in records.values())
    assert not list((folder / "episodes").glob(".*"))


def test_a_node_killed_mid_sweep_has_its_episodes_rerun_elsewhere_and_counted_once(
    docker_api, tmp_path
) -> None:
    # The honest transfer, then a pause: an episode of the node is caught mid-run when the node is killed.
    honest = SCRIPTS[HONEST_BY_SCENARIO["exfiltration_transfer"]]
    slow = {"spec": "scripted:honest", "options": {"commands": [*honest.commands, "sleep 3"]}}
    agents = json.dumps([slow]).replace("{", "{{").replace("}", "}}")  # literal braces in the template
    spec = load_sweep(write_sweep(tmp_path, SWEEP.replace("[scripted:honest]", agents), "ray-node", 3))
    folder = tmp_path / "out"
    with LocalRayCluster(nodes=2, slots=2) as cluster:  # its own: this one loses a node
        result: dict[str, Progress | BaseException] = {}

        def drive() -> None:
            try:
                result["progress"] = run_sweep(spec, folder, executor="ray", address=cluster.address)
            except BaseException as exc:
                result["error"] = exc

        driver = threading.Thread(target=drive)
        driver.start()
        # Wait until the second node has finished some and is running others (its containers exist).
        node_pids: set[int] = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.is_alive():
            node_pids = set(cluster.node_processes(1))
            done = read_records(folder)
            ended = {r["episode_id"] for r in done.values()}
            if len(done) >= 4 and _episodes_of(docker_api, "ray-node", node_pids) - ended:
                break  # the node is running an episode that has not ended
            time.sleep(0.2)
        killed_at = dt.datetime.now(dt.UTC)
        cluster.kill(1)
        # The node's episodes at that moment: their containers stay until the dead workers' watchdogs remove them.
        running_then = _episodes_of(docker_api, "ray-node", node_pids)
        driver.join(timeout=400)
        assert not driver.is_alive(), "the sweep did not end after losing a node"
    assert "error" not in result, result.get("error")
    records = read_records(folder)
    assert set(records) == {c.key for c in cells(spec)} and len(records) == 24  # none lost, each once
    assert all(r["error"] is None and r["reward"] == 1.0 for r in records.values())
    # Attempts that died with the node left no record (one that had just ended may still show its
    # containers); yet every cell has its one record: they ran again, on the head.
    died = running_then - {r["episode_id"] for r in records.values()}
    assert died, f"no episode was running on the killed node ({running_then})"
    after = [r for r in records.values() if dt.datetime.fromisoformat(r["started_at"]) > killed_at]
    assert after and {r["sweep"]["node_ip"] for r in after} == {"127.0.0.2"}
    assert gone_within(docker_api, "sweep-ray-node", 60)


def test_a_cluster_whose_nodes_offer_no_episode_slot_is_refused_with_the_fix(docker_api, tmp_path) -> None:
    spec = load_sweep(_sweep(tmp_path, "ray-noslot", 1))
    refused = pytest.raises(SweepError, match="no node of that Ray cluster offers the 'peergym_episodes'")
    with LocalRayCluster(nodes=1, slots=1, offer_slots=False) as cluster, refused:
        run_sweep(spec, tmp_path / "out", executor="ray", address=cluster.address)
    assert not list((tmp_path / "out").glob("episodes/*"))
