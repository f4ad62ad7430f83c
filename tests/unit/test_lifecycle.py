"""Owner identity and labels, the basis of the reaper."""

from __future__ import annotations

import os
import subprocess
import time

from envs.sandbox import lifecycle


def test_own_process_is_alive() -> None:
    assert lifecycle.owner_alive(lifecycle.owner_id())


def test_dead_process_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    owner = lifecycle.owner_id(child.pid)
    child.wait()
    assert not lifecycle.owner_alive(owner)


def test_recycled_pid_is_told_apart_by_start_time() -> None:
    host, pid, ticks = lifecycle.owner_id().rsplit(":", 2)
    assert not lifecycle.owner_alive(f"{host}:{pid}:{int(ticks) + 1}")


def test_other_machines_are_not_judged() -> None:
    assert lifecycle.owner_alive("some-other-machine:1:1")


def test_garbage_owner_is_dead() -> None:
    assert not lifecycle.owner_alive("")


def test_labels_carry_run_episode_owner_and_expiry() -> None:
    labels = lifecycle.labels_for("run1", "ep1", "source", ttl_s=60)
    assert labels[lifecycle.RUN] == "run1" and labels[lifecycle.EPISODE] == "ep1"
    assert labels[lifecycle.OWNER].split(":")[1] == str(os.getpid())
    assert 55 <= int(labels[lifecycle.EXPIRES]) - time.time() <= 61
