"""Reading what a host's init is doing from /proc (no Docker needed: plain processes stand in for init)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from peergym.envs.sandbox import initproc
from peergym.envs.sandbox.confine import pid_namespace

OWN = pid_namespace(os.getpid()) or ""


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    # A name with a space and a parenthesis: /proc's stat line must be split after the last ")".
    odd = tmp_path / "init) S x"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", odd)
    child = subprocess.Popen([str(odd), "30"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def _state_becomes(pid: int, wanted: str) -> str | None:
    deadline = time.monotonic() + 5
    while (seen := initproc.state(pid)) != wanted and time.monotonic() < deadline:
        time.sleep(0.01)
    return seen


def test_a_sleeping_init_with_nothing_queued_is_idle(sleeper) -> None:
    assert _state_becomes(sleeper.pid, "S") == "S"
    assert initproc.pending_request_bytes(sleeper.pid) == 0
    assert not initproc.handling_request(sleeper.pid, OWN)


def test_an_init_that_has_not_run_yet_is_still_handling(sleeper) -> None:
    os.kill(sleeper.pid, signal.SIGSTOP)
    assert _state_becomes(sleeper.pid, "T") == "T"
    assert initproc.handling_request(sleeper.pid, OWN)


def test_a_pid_outside_the_hosts_namespace_is_never_waited_on(sleeper) -> None:
    os.kill(sleeper.pid, signal.SIGSTOP)
    assert _state_becomes(sleeper.pid, "T") == "T"
    assert not initproc.handling_request(sleeper.pid, "pid:[1]")
    assert not initproc.handling_request(sleeper.pid, "")
    assert not initproc.handling_request(1, OWN) and not initproc.handling_request(0, OWN)


def test_a_vanished_process_reads_as_unknown() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert initproc.state(child.pid) is None
    assert initproc.pending_request_bytes(child.pid) == 0
    assert not initproc.booting(child.pid)
