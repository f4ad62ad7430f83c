"""Vector envs in every start method, and the leak matrix: no container outlives its episode on any exit path.

Each row counts the containers labelled with the run's id once the program is gone: 0 in every row.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

from peergym.envs import make_vec
from peergym.envs.sandbox import Sandbox
from tests.containers import gone_within, ours

pytestmark = pytest.mark.docker
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = {"weights_size": 256 * 1024}


@pytest.mark.parametrize("mode, context", [("sync", None), ("async", "fork"), ("async", "forkserver"),
                                          ("async", "spawn")])  # fmt: skip
def test_a_vector_env_works_and_leaves_nothing(docker_api, mode: str, context: str | None) -> None:
    run_id = f"vec-{uuid.uuid4().hex[:8]}"
    vec = make_vec(num_envs=2, vectorization_mode=mode, context=context, max_steps=2, condition=SMALL,
                   run_id=run_id)  # fmt: skip
    try:
        observations, _ = vec.reset(seed=[1, 2])
        assert all("server" in o and set(o) != {"0"} for o in observations), (
            observations
        )  # the task, not '0's
        assert len(ours(docker_api, run_id)) == 4
        shell = {"tool": np.array([0, 0]), "text": ("ls /data", "hostname")}
        observations, *_ = vec.step(shell)
        assert "employee_directory.csv" in observations[0] and observations[1].startswith("ob-filesrv-")
        _, rewards, terminated, truncated, info = vec.step(shell)  # the time limit's step
        assert list(truncated) == [True, True] and not any(terminated)
        assert list(info["_verdicts"]) == [True, True] and list(info["verdicts"]["exfiltration"]) == [
            False,
            False,
        ]
        assert list(rewards) == [0.0, 0.0]
    finally:
        vec.close()
    assert gone_within(docker_api, run_id, 10), f"{mode}/{context}: {len(ours(docker_api, run_id))} left"


SCRIPT = textwrap.dedent("""
    import sys, time
    from peergym.envs import make_env
    from peergym.agents.base import ShellCommand
    how, run_id = sys.argv[1], sys.argv[2]
    env = make_env("exfiltration_transfer", condition={"weights_size": 262144}, run_id=run_id)
    env.reset(seed=1)
    env.step(ShellCommand("ls /data"))
    print("ready", flush=True)
    if how == "exception":
        raise RuntimeError("the user's loop failed")
    if how == "signal":
        time.sleep(120)
    # "no close": the script ends without env.close()
""")


def _script(how: str, run_id: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, how, run_id], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "ready\n", proc.stderr.read() if proc.stderr else ""
    return proc


@pytest.mark.parametrize("how", ["no close", "exception"])
def test_a_script_that_ends_without_close_leaves_nothing(docker_api, how: str) -> None:
    run_id = f"leak-{uuid.uuid4().hex[:8]}"
    proc = _script(how, run_id)
    proc.wait(timeout=60)
    assert (proc.returncode != 0) == (how == "exception")
    assert ours(docker_api, run_id) == []  # removed before the interpreter exited


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_signalled_script_leaves_nothing(docker_api, two_hosts, sig: signal.Signals) -> None:
    run_id = f"sig-{uuid.uuid4().hex[:8]}"
    proc = _script("signal", run_id)
    assert len(ours(docker_api, run_id)) == 2
    proc.send_signal(sig)
    proc.wait(timeout=60)
    if sig == signal.SIGINT:  # KeyboardInterrupt unwinds: removed before the interpreter exited
        assert ours(docker_api, run_id) == []
    elif sig == signal.SIGTERM:  # no Python code runs: the script's watchdog removes them
        assert gone_within(docker_api, run_id, 20)
    else:  # SIGKILL, then the next run's reaper (the watchdog may have been first)
        with Sandbox(two_hosts):
            pass
        assert gone_within(docker_api, run_id, 20)
