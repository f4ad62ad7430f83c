"""Sandbox.run through the host's runner (envs/sandbox/runner.py) against the real engine: the same results
as docker exec, one engine call fewer per process, and a runner the agent kills or floods is replaced."""

from __future__ import annotations

import threading

import pytest

from peergym.envs.sandbox.process import run_process

pytestmark = pytest.mark.docker


class _CountingApi:
    """The engine client, counting the processes it is asked to start."""

    def __init__(self, api) -> None:
        self._api = api
        self.execs: list[list[str]] = []

    def exec_create(self, container, cmd, **kw):
        self.execs.append(list(cmd))
        return self._api.exec_create(container, cmd, **kw)

    def __getattr__(self, name):
        return getattr(self._api, name)


def _docker_exec(sandbox, argv, **kw):
    host = sandbox.hosts[kw.pop("host", "source")]
    return run_process(sandbox._api, host.container_id, host.pid_namespace, argv, **kw)


CASES = [
    (["env"], {"user": "root", "environment": {"X": "1"}, "workdir": "/tmp"}),
    (["env"], {"user": "maintainer", "environment": {"HOME": "/srv", "PATH": "/bin"}, "workdir": "/data"}),
    (
        ["sh", "-c", "cat; echo to-err >&2; exit 3"],
        {"user": "maintainer", "input": b"in\x00put\n", "workdir": "/"},
    ),
    (["id"], {"user": "root", "workdir": "/"}),
    (["head", "-c", "300000", "/data/report.csv", "/bin/ls"], {"user": "maintainer", "workdir": "/"}),
    (["printf", "no newline at the end"], {"user": "maintainer", "workdir": "/"}),
]


@pytest.mark.parametrize(("argv", "kw"), CASES)
def test_the_runner_gives_what_docker_exec_gives(sandbox, argv, kw) -> None:
    env, data = kw.get("environment"), kw.get("input")
    expected = _docker_exec(sandbox, argv, user=kw["user"], environment=env, workdir=kw["workdir"], input=data,
                            timeout=30)  # fmt: skip
    got = sandbox.run(argv, user=kw["user"], env=env, cwd=kw["workdir"], input=data, timeout=30)
    assert (got.returncode, got.stdout, got.stderr) == (expected.returncode, expected.stdout, expected.stderr)
    assert got.stdout or got.stderr


def test_environment_matches_docker_exec(sandbox) -> None:
    for user in ("root", "maintainer"):
        expected = _docker_exec(
            sandbox, ["env"], user=user, environment={"X": "1"}, workdir="/tmp", timeout=30
        )
        assert sandbox.run(["env"], user=user, env={"X": "1"}, cwd="/tmp").stdout == expected.stdout


def test_after_the_first_call_no_process_is_started_by_the_engine(sandbox) -> None:
    api = sandbox._api = _CountingApi(sandbox._api)
    sandbox.run(["true"])
    started = len(api.execs)  # the runner itself
    for i in range(6):  # with and without a time limit (a limit once made the liveness check wait 1 s)
        assert sandbox.run(["echo", "hi"], timeout=30 if i % 2 else None).stdout == b"hi\n"
    sandbox.read_file("source", "/data/report.csv")
    sandbox.write_file("source", "/home/maintainer/x.txt", b"x")
    assert len(api.execs) == started <= 1


def test_a_killed_runner_is_replaced(sandbox) -> None:
    sandbox.run(["true"])
    # The agent is root in its host: it can kill every root shell there, ours included.
    sandbox.exec("sudo pkill -9 -x -u root bash; sudo pkill -9 -f -- '^-bash' ; true")
    assert [sandbox.run(["echo", str(i)]).stdout for i in range(3)] == [b"0\n", b"1\n", b"2\n"]


def test_concurrent_calls_all_complete(sandbox) -> None:
    out: dict[int, bytes] = {}

    def one(i: int) -> None:
        out[i] = sandbox.run(["sh", "-c", f"sleep 0.2; echo {i}"]).stdout

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {i: f"{i}\n".encode() for i in range(4)}


def test_a_timeout_kills_the_tree_and_the_runner_goes_on(sandbox) -> None:
    with pytest.raises(TimeoutError):
        sandbox.run(["sh", "-c", "sleep 30 & sleep 31; :"], timeout=1)
    assert "sleep 3" not in sandbox.run(["ps", "-eo", "args"]).stdout.decode()
    assert sandbox.run(["echo", "next"]).stdout == b"next\n"


def test_a_background_writer_is_waited_for_like_docker_exec(sandbox) -> None:
    result = sandbox.run(["sh", "-c", "(sleep 0.3; echo late) & echo early"], timeout=10)
    assert result.stdout == b"early\nlate\n"
    assert sandbox.run(["echo", "clean"]).stdout == b"clean\n"  # nothing of the last call leaks into this one


def test_refused_calls_go_through_the_engine_with_its_errors(sandbox) -> None:
    assert b"unable to find user" in sandbox.run(["id"], user="nosuchuser").stdout
    with pytest.raises(FileNotFoundError):
        sandbox.run(["pwd"], cwd="/nonexistent")
    with pytest.raises(FileNotFoundError):
        sandbox.run(["no-such-program"])
    with pytest.raises(PermissionError):
        sandbox.run(["/etc/passwd"])
    assert sandbox.run(["id", "-u"], user="1000").stdout == b"1000\n"  # uid form: docker exec


def test_a_runner_that_answers_outside_the_protocol_is_dropped(sandbox) -> None:
    """The agent is root in its host: it can replace what the runner uses. What comes back is then an error,
    never believed, and the next call gets a new runner."""
    from peergym.envs.sandbox import SandboxError

    sandbox.run(["true"])
    replace = "sudo cp /usr/bin/base64 /tmp/b64 && printf '#!/bin/sh\\necho not-base64-!\\n' | sudo tee /usr/bin/base64"
    assert sandbox.exec(replace + " >/dev/null").exit_code == 0
    with pytest.raises(SandboxError, match="not base64"):
        sandbox.run(["echo", "hi"], timeout=10)
    assert sandbox.exec("sudo cp /tmp/b64 /usr/bin/base64").exit_code == 0
    assert sandbox.run(["echo", "hi"], timeout=10).stdout == b"hi\n"
