"""Signals the runner sends reach only processes inside the namespace it names (no Docker needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from peergym.envs.sandbox.confine import descendants, kill_descendants, pid_namespace, signal_confined

OWN = pid_namespace(os.getpid()) or ""


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "30"])


def test_pids_0_and_1_are_never_signalled() -> None:
    assert not signal_confined(0, 0, OWN)
    assert not signal_confined(1, 0, OWN)
    assert not signal_confined(-1, 0, OWN)
    assert descendants(0) == [] and descendants(1) == [] and descendants(-5) == []


def test_a_process_outside_the_named_namespace_is_refused() -> None:
    child = _sleeper()
    try:
        assert not signal_confined(child.pid, signal.SIGKILL, "pid:[1]")
        assert not signal_confined(child.pid, signal.SIGKILL, "")
        assert child.poll() is None  # untouched
    finally:
        child.kill()
        child.wait()


def test_a_process_inside_the_named_namespace_is_signalled() -> None:
    child = _sleeper()
    assert signal_confined(child.pid, signal.SIGKILL, OWN)
    assert child.wait(timeout=5) == -signal.SIGKILL


def test_a_dead_pid_is_not_signalled() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert not signal_confined(child.pid, signal.SIGKILL, OWN)


def test_kill_descendants_stays_below_its_root_and_inside_the_namespace() -> None:
    parent = subprocess.Popen(["bash", "-c", "sleep 30 & sleep 30 & wait"])
    bystander = _sleeper()
    try:
        for _ in range(100):
            if len(descendants(parent.pid)) == 2:
                break
            time.sleep(0.01)
        assert kill_descendants(parent.pid, "pid:[1]") == 0  # wrong namespace: nothing is signalled
        assert len(descendants(parent.pid)) == 2
        assert kill_descendants(parent.pid, OWN) >= 2  # a zombie not yet reaped may be signalled again
        assert parent.wait(timeout=5) is not None
        assert bystander.poll() is None
    finally:
        for proc in (parent, bystander):
            proc.kill()
            proc.wait()


def _count(marker: str) -> int:
    out = subprocess.run(["pgrep", "-fc", marker], capture_output=True, text=True).stdout.strip()
    return int(out or 0)


def test_a_tree_forking_while_it_is_killed_leaves_no_orphan() -> None:
    # A loop forking background children as fast as it can: killed as it forks, a child forked after a scan
    # would be adopted by init and escape a kill that walks the tree. Frozen first, none does.
    marker = f"sleep 1000.{os.getpid()}"
    root = subprocess.Popen(["bash", "-c", f"bash -c 'while :; do {marker} & done' & wait"])
    try:
        deadline = time.monotonic() + 10
        while _count(marker) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _count(marker) >= 30
        kill_descendants(root.pid, OWN)
        time.sleep(0.2)
        assert _count(marker) == 0
    finally:
        root.kill()
        root.wait()
        subprocess.run(["pkill", "-KILL", "-f", marker])


def test_hosts_on_the_machines_network_or_sharing_one_are_refused() -> None:
    # The engine does no networking for the hosts; their isolation rests on each having its own namespace.
    import pytest

    from peergym.envs.sandbox import SandboxError
    from peergym.envs.sandbox.sandbox import _check_own_network

    with pytest.raises(SandboxError, match="shares its network with this machine"):
        _check_own_network({"source": (os.getpid(), None)})
    isolated = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{isolated.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare did not give the process its own namespace"
            time.sleep(0.01)
        _check_own_network({"source": (isolated.pid, None)})  # its own: accepted
        with pytest.raises(SandboxError, match="shares its network with host source"):
            _check_own_network({"source": (isolated.pid, None), "destination": (isolated.pid, None)})
    finally:
        isolated.kill()
        isolated.wait()
