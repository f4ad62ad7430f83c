"""Owner identity and labels, the basis of the reaper."""

from __future__ import annotations

import os
import subprocess
import time

from peergym.envs.sandbox import lifecycle


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


def test_owner_in_a_vanished_namespace_is_dead_seen_from_the_initial_one() -> None:
    # No process of pid namespace 1 exists; from the machine's initial namespace every namespace is
    # visible, so its owner is gone. (The live case, a runner under `unshare --pid`, is an integration test.)
    host, _ns, pid, ticks = lifecycle.owner_id().split(":")
    assert not lifecycle.owner_alive(f"{host}:1:{pid}:{ticks}")


def test_owner_written_before_namespaces_were_recorded_is_still_judged() -> None:
    host, _ns, pid, ticks = lifecycle.owner_id().split(":")
    assert lifecycle.owner_alive(f"{host}:{pid}:{ticks}")
    assert not lifecycle.owner_alive(f"{host}:{pid}:{int(ticks) + 1}")


def test_other_machines_are_not_judged() -> None:
    assert lifecycle.owner_alive("some-other-machine:1:1")


def test_garbage_owner_is_dead() -> None:
    assert not lifecycle.owner_alive("")


def test_labels_carry_run_episode_owner_and_expiry() -> None:
    labels = lifecycle.labels_for("run1", "ep1", "source", ttl_s=60)
    assert labels[lifecycle.RUN] == "run1" and labels[lifecycle.EPISODE] == "ep1"
    _host, namespace, pid, _ticks = labels[lifecycle.OWNER].split(":")
    assert pid == str(os.getpid()) and namespace == os.readlink("/proc/self/ns/pid")[5:-1]
    assert 55 <= int(labels[lifecycle.EXPIRES]) - time.time() <= 61
