"""Every exit path leaves a record and no container: signals, a killed runner, another pid namespace."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from peergym.envs.sandbox import lifecycle, reap
from tests.containers import ours

pytestmark = pytest.mark.docker
ROOT = str(Path(__file__).resolve().parents[2])
ENV = {**os.environ, "PYTHONPATH": ROOT}

# Holds a two-host sandbox open until killed; prints "ready" once the hosts run.
HOLDER = textwrap.dedent("""
    import sys
    from peergym.envs.sandbox import Sandbox, HostSpec
    hosts = [HostSpec("source", "a", "10.0.12.45"), HostSpec("destination", "b", "10.0.12.46")]
    with Sandbox(hosts, run_id=sys.argv[1]) as box:
        print("ready", flush=True)
        box.exec("sleep 600", timeout=900)
""")


def _hold(run_id: str, prefix: list[str] | None = None) -> subprocess.Popen:
    argv = [*(prefix or []), sys.executable, "-c", HOLDER, run_id]
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    line = proc.stdout.readline()
    assert line == "ready\n", proc.stderr.read()
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)


def test_the_next_run_reaps_what_a_killed_runner_left(docker_api) -> None:
    dead, later = f"dead-{uuid.uuid4().hex[:8]}", f"later-{uuid.uuid4().hex[:8]}"
    proc = _hold(dead)
    proc.kill()  # SIGKILL: no finally, no atexit
    proc.wait(timeout=30)
    assert len(ours(docker_api, dead)) == 2
    successor = _hold(later)  # an ordinary run, not `clean`: its first sandbox reaps
    try:
        assert ours(docker_api, dead) == []
        assert len(ours(docker_api, later)) == 2
    finally:
        _stop(successor)
    reap(docker_api)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_an_owner_in_another_pid_namespace_is_spared_while_it_lives(docker_api) -> None:
    # An owner in a pid namespace of its own (a CI job in a container that shares the engine): its pid there
    # is 1, a number that names another process out here. Its containers carry its owner label.
    code = "from envs.sandbox import lifecycle; print(lifecycle.owner_id(), flush=True); input()"
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL", sys.executable, "-c", code]
    proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    owner = proc.stdout.readline().strip()
    run_id = f"ns-{uuid.uuid4().hex[:8]}"
    try:
        assert owner.split(":")[2] == "1" and lifecycle.owner_alive(owner)
        labels = {**lifecycle.labels_for(run_id, "ep", "source", 600), lifecycle.OWNER: owner}
        from peergym.envs.sandbox.engine import image_name

        docker_api.create_container(image_name(), command=["sleep", "600"], labels=labels)
        reap(docker_api)
        out = subprocess.run([sys.executable, "-m", "peergym.harness.cli", "clean"], cwd=ROOT, env=ENV,
                             capture_output=True, text=True, check=True)  # fmt: skip
        assert "removed" in out.stdout
        assert len(ours(docker_api, run_id)) == 1  # alive in its namespace: spared
        # And the other way round: seen from inside that namespace, owners out here cannot be looked up, so
        # they count as alive (a reap in there once removed every episode of the machine).
        inside = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c",
             "import sys; from envs.sandbox import lifecycle; print(lifecycle.owner_alive(sys.argv[1]))",
             lifecycle.owner_id()], cwd=ROOT, env=ENV, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert inside.stdout.strip() == "True", inside.stderr
    finally:
        _stop(proc)  # unshare dies; --kill-child takes the owner with it
    deadline = time.monotonic() + 10
    while lifecycle.owner_alive(owner) and time.monotonic() < deadline:
        time.sleep(0.1)
    reap(docker_api)
    assert ours(docker_api, run_id) == []  # its namespace is gone, and its owner with it


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_episode_writes_a_partial_record_and_leaves_nothing(docker_api, tmp_path, sig) -> None:
    argv = [sys.executable, "-m", "peergym.harness.cli", "run-episode", "--agent", "scripted:honest",
            "--agent-opt", 'commands=["ls /data", "sleep 60"]', "--runs-dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stdout:  # the transcript shows each step when it is done
            if "exit 0" in line:
                break
        time.sleep(1.0)  # into `sleep 60`
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    assert proc.returncode == 130
    name = signal.Signals(sig).name
    assert f"interrupted: {'Ctrl-C' if sig == signal.SIGINT else 'stopped by signal ' + name}" in err
    (path,) = tmp_path.glob("*/*.json")
    record = json.loads(path.read_text())
    assert record["interrupted"] is True and record["stop_reason"] == "interrupted"
    assert [s["command"] for s in record["steps"]] == ["ls /data", "sleep 60"]
    assert "ls /data" in record["steps"][0]["command"] and record["steps"][0]["exit_code"] == 0
    assert "KeyboardInterrupt" in record["steps"][1]["error"]
    assert ours(docker_api, record["run_id"]) == []


def test_a_broken_sshd_config_is_named(docker_api) -> None:
    from peergym.envs.sandbox import REMOVER, HostSpec, Sandbox, SandboxError, SeedFile

    broken = SeedFile("/etc/ssh/sshd_config", b"Port 22\nThisIsNotAnOption yes\n", mode=0o644, mtime=1.7e9)
    hosts = [
        HostSpec("source", "a", "10.0.12.45", files=(broken,)),
        HostSpec("destination", "b", "10.0.12.46"),
    ]
    run_id = f"sshd-{uuid.uuid4().hex[:8]}"
    box = Sandbox(hosts, run_id=run_id, ready_timeout_s=3).start()  # the shell opens before sshd must listen
    with pytest.raises(SandboxError, match=r"sshd_config.*ThisIsNotAnOption|ThisIsNotAnOption.*sshd_config"):
        box.exec("true")  # the first command waits for every host's sshd
    assert REMOVER.drain(30) and ours(docker_api, run_id) == []


def test_files_the_disk_cannot_hold_are_refused_before_any_container(docker_api) -> None:
    from peergym.envs.sandbox import HostSpec, InsufficientDisk, Sandbox, SeedFile

    def endless() -> object:
        raise AssertionError("nothing may be streamed for a refused episode")

    huge = SeedFile("/data/w.safetensors", endless, size=1 << 50)  # 1 PiB
    run_id = f"disk-{uuid.uuid4().hex[:8]}"
    hosts = [HostSpec("source", "a", "10.0.12.45", files=(huge,)), HostSpec("destination", "b", "10.0.12.46")]
    with pytest.raises(InsufficientDisk, match="free"):
        Sandbox(hosts, run_id=run_id).start()
    assert ours(docker_api, run_id) == []
