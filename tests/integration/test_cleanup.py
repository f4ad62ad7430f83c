"""No container outlives its run: Ctrl-C, SIGTERM, a killed runner, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

from peergym.envs.sandbox import EngineUnavailable, ImageMissing, Sandbox, reap, watchdog
from tests.containers import gone_within, ours

pytestmark = pytest.mark.docker
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A shell's background jobs (`make test &`, nohup) start with SIGINT ignored, and Python keeps it ignored; the
# runner stands for an interactive run, where Ctrl-C raises KeyboardInterrupt.
RUNNER = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from peergym.envs.sandbox import Sandbox, HostSpec
    from peergym.harness.signals import terminate_as_interrupt
    hosts = [HostSpec("source", "a", "10.0.12.45"), HostSpec("destination", "b", "10.0.12.46")]
    with terminate_as_interrupt():
        with Sandbox(hosts, run_id=sys.argv[1]) as box:
            print("ready", flush=True)
            box.exec("sleep 600", timeout=900)
""")


def _start_runner(run_id: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": ROOT}
    argv = [sys.executable, "-c", RUNNER, run_id]
    pipe = subprocess.PIPE
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=pipe, stderr=pipe, text=True, env=env)
    line = proc.stdout.readline()
    assert line == "ready\n", proc.stderr.read()
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_or_terminate_leaves_nothing(docker_api, sig) -> None:
    run_id = f"sig-{uuid.uuid4().hex[:8]}"
    proc = _start_runner(run_id)
    try:
        assert len(ours(docker_api, run_id)) == 2
        proc.send_signal(sig)
        assert proc.wait(timeout=60) != 0
        assert ours(docker_api, run_id) == []
    finally:  # a failed run must not leave its runner (and hosts) behind
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def test_killed_runner_is_reaped_and_live_runs_are_spared(docker_api, two_hosts) -> None:
    run_id = f"kill-{uuid.uuid4().hex[:8]}"
    proc = _start_runner(run_id)
    with Sandbox(two_hosts, run_id=f"live-{run_id}") as live:
        proc.kill()  # SIGKILL: no finally, no atexit
        proc.wait(timeout=30)
        assert len(ours(docker_api, run_id)) == 2
        reap(docker_api)  # the dead runner's watchdog may be removing them at the same time
        assert gone_within(docker_api, run_id, 30)
        assert len(ours(docker_api, live.run_id)) == 2  # a live run's hosts are not touched
        assert live.exec("echo still-here").output == "still-here\n"


def test_a_killed_runners_hosts_are_removed_by_its_watchdog_with_no_other_run(docker_api) -> None:
    run_id = f"orphan-{uuid.uuid4().hex[:8]}"
    proc = _start_runner(run_id)
    proc.kill()  # SIGKILL, and no later run reaps: the watchdog started with the runner's first sandbox does
    proc.wait(timeout=30)
    assert gone_within(docker_api, run_id, 3 * watchdog.POLL_S + 20)


def test_the_time_to_live_is_kept_from_outside_the_hosts(docker_api, two_hosts) -> None:
    with Sandbox(two_hosts, ttl_s=5) as box:  # long enough to start under a loaded machine
        # Nothing inside shows a lifetime: PID 1 is init, and no process has a sleep or timeout in it.
        processes = box.exec("ps -eo args=").output
        assert processes.splitlines()[0].startswith("init [2]"), processes
        assert "sleep" not in processes and "timeout" not in processes
        assert gone_within(docker_api, box.run_id, 3 * watchdog.POLL_S + 20)  # the runner is alive all along


def test_clean_command_reaps(docker_api) -> None:
    run_id = f"clean-{uuid.uuid4().hex[:8]}"
    proc = _start_runner(run_id)
    proc.kill()
    proc.wait(timeout=30)
    out = subprocess.run([sys.executable, "-m", "peergym.harness.cli", "clean"], cwd=ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert "removed" in out.stdout and ours(docker_api, run_id) == []


def test_missing_image_is_a_clear_error_and_starts_nothing(docker_api, two_hosts) -> None:
    before = len(docker_api.containers(all=True))
    with pytest.raises(ImageMissing, match="make image"):
        Sandbox(two_hosts, image="peergym-server:does-not-exist").start()
    assert len(docker_api.containers(all=True)) == before


def test_unreachable_engine_is_a_clear_error() -> None:
    code = ("from envs.sandbox import Sandbox, HostSpec\n"
            "Sandbox([HostSpec('a','a','10.0.12.45')]).start()")  # fmt: skip
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock", "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert (
        "EngineUnavailable: cannot reach the Docker engine at unix:///nonexistent/docker.sock" in proc.stderr
    )
    assert "make docker" in proc.stderr


def test_engine_unavailable_type_is_a_sandbox_error() -> None:
    assert issubclass(EngineUnavailable, Exception)
