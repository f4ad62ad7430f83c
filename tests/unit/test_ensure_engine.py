"""containers/ensure-engine.sh decides what to install and whether to start dockerd: driven with stubs.

The script runs on a PATH made only of small stub scripts (docker, dockerd, id, apt-get, setsid, nohup, timeout,
sleep, debootstrap, ip, nsenter) and symlinks to the few real tools it needs (bash, seq, tail): /usr/bin is never
on it, so a real dockerd or apt-get cannot be found. Every stub appends its name and arguments to a log, which
the tests read to see what the script decided.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "containers" / "ensure-engine.sh"
BASH = shutil.which("bash") or "/bin/bash"
REAL_TOOLS = ("bash", "seq", "tail")
SLEEP = shutil.which("sleep") or "/bin/sleep"
MV = shutil.which("mv") or "/bin/mv"

# Each stub logs "name args..." then behaves as below. STUB_DIR holds the stubs, the log and the flag files.
LOGGED = '#!{bash}\necho "{name} $*" >> "$STUB_DIR/calls.log"\n'
STUBS = {
    # `docker info` answers per STUB_ENGINE: up, down, or "started" (up once the dockerd stub has run)
    "docker": """
if [ "$1" = info ]; then
  case "$STUB_ENGINE" in
    up) exit 0 ;;
    started) [ -e "$STUB_DIR/dockerd-running" ] && exit 0; exit 1 ;;
    *) echo "Cannot connect to the Docker daemon" >&2; exit 1 ;;
  esac
fi
""",
    # a daemon that comes up, or (STUB_DOCKERD_FAILS=1) one that only writes its failure to its log
    "dockerd": """
if [ "${STUB_DOCKERD_FAILS:-}" = 1 ]; then echo "failed to start daemon: iptables not found"; exit 1; fi
echo "API listen on /var/run/docker.sock"
: > "$STUB_DIR/dockerd-running"
""",
    "id": '[ "$1" = -u ] && echo "${STUB_UID:-0}"\n',
    # installing docker.io puts the dockerd stub on PATH, as the real package would
    "apt-get": """
if [ "$1" = install ]; then
  for arg in "$@"; do
    if [ "$arg" = docker.io ] && [ -e "$STUB_DIR/pending/dockerd" ]; then
      {mv} "$STUB_DIR/pending/dockerd" "$STUB_DIR/bin/dockerd"
    fi
  done
fi
""",
    "setsid": 'exec "$@"\n',
    "nohup": 'exec "$@"\n',
    "timeout": 'shift; exec "$@"\n',
    "sleep": "{sleep} 0.02\n",
    "debootstrap": "",
    "ip": "",
    "nsenter": "",
}


@dataclass
class Machine:
    """A fake machine: which commands exist, who we are, and how the engine behaves."""

    root: Path
    present: set[str] = field(default_factory=lambda: set(STUBS) - {"dockerd"})
    uid: int = 0
    engine: str = "down"  # up | down | started
    dockerd_fails: bool = False

    def run(self) -> subprocess.CompletedProcess[str]:
        bin_dir, pending, real = self.root / "bin", self.root / "pending", self.root / "real"
        for d in (bin_dir, pending, real):
            d.mkdir(parents=True, exist_ok=True)
        for name in REAL_TOOLS:
            target = shutil.which(name)
            assert target, f"{name} is needed to run the script"
            (real / name).symlink_to(target)
        for name, body in STUBS.items():
            # dockerd absent: it appears only if apt-get installs docker.io
            where = bin_dir if name in self.present else pending if name == "dockerd" else None
            if where is None:
                continue
            text = LOGGED.format(bash=BASH, name=name) + body.replace("{mv}", MV).replace("{sleep}", SLEEP)
            (where / name).write_text(text)
            (where / name).chmod(0o755)
        env = {
            "PATH": f"{bin_dir}:{real}",
            "STUB_DIR": str(self.root),
            "STUB_UID": str(self.uid),
            "STUB_ENGINE": self.engine,
            "STUB_DOCKERD_FAILS": "1" if self.dockerd_fails else "",
            "PEERGYM_ENGINE_WAIT_TRIES": "20",
            "PEERGYM_DOCKERD_LOG": str(self.dockerd_log),
        }
        return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)

    @property
    def dockerd_log(self) -> Path:
        return self.root / "dockerd.log"

    def calls(self, name: str | None = None) -> list[list[str]]:
        log = self.root / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line.split() for line in lines if name is None or line.split()[0] == name]


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def machine(tmp_path) -> Machine:
    return Machine(tmp_path / "machine")


def test_script_is_executable_and_parses():
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run([BASH, "-n", str(SCRIPT)], check=True)


def test_cli_only_as_root_installs_docker_io_then_starts_dockerd(machine):
    machine.engine = "started"  # no dockerd yet: `docker info` fails until the installed one is started
    result = machine.run()
    assert result.returncode == 0, result.stderr
    installs = [c for c in machine.calls("apt-get") if c[1] == "install"]
    assert len(installs) == 1 and "docker.io" in installs[0]
    assert ["apt-get", "update", "-qq"] in machine.calls("apt-get")
    assert machine.calls("dockerd") == [["dockerd"]]
    names = [c[0] for c in machine.calls()]
    assert names.index("apt-get") < names.index("dockerd")  # installed before it is started
    assert "dockerd is up" in result.stderr
    assert "API listen" in machine.dockerd_log.read_text()  # the daemon's output went to PEERGYM_DOCKERD_LOG


def test_engine_installed_but_stopped_starts_dockerd_without_installing(machine):
    machine.present.add("dockerd")
    machine.engine = "started"
    result = machine.run()
    assert result.returncode == 0, result.stderr
    assert machine.calls("apt-get") == []
    assert machine.calls("dockerd") == [["dockerd"]]
    assert machine.calls("setsid") == [["setsid", "nohup", "dockerd"]]  # detached, so it outlives make
    assert "dockerd is up" in result.stderr


def test_engine_running_does_nothing(machine):
    machine.present.add("dockerd")
    machine.engine = "up"
    result = machine.run()
    assert result.returncode == 0, result.stderr
    assert machine.calls("apt-get") == [] and machine.calls("dockerd") == [] and machine.calls("setsid") == []
    assert result.stderr == ""


def test_engine_running_without_dockerd_on_path_is_enough(machine):
    # rootless, Docker Desktop, a remote DOCKER_HOST: the client answers, no local daemon to install
    machine.engine = "up"
    result = machine.run()
    assert result.returncode == 0, result.stderr
    assert machine.calls("apt-get") == [] and machine.calls("dockerd") == []


def test_not_root_with_engine_missing_says_what_to_install(machine):
    machine.uid = 1000
    result = machine.run()
    assert result.returncode == 2
    assert machine.calls("apt-get") == [] and machine.calls("dockerd") == []
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: missing docker.io")
    assert "apt-get install -y docker.io" in lines[0]


def test_not_root_with_engine_stopped_says_to_start_it(machine):
    machine.uid = 1000
    machine.present.add("dockerd")
    result = machine.run()
    assert result.returncode == 2
    assert machine.calls("apt-get") == [] and machine.calls("dockerd") == []
    assert len(error_lines(result)) == 1 and "no Docker engine answers" in error_lines(result)[0]


def test_root_with_host_tools_missing_installs_only_those(machine):
    machine.present -= {"debootstrap", "ip", "nsenter"}
    machine.engine = "up"
    result = machine.run()
    assert result.returncode == 0, result.stderr
    installs = [c for c in machine.calls("apt-get") if c[1] == "install"]
    assert len(installs) == 1
    assert {"debootstrap", "iproute2", "util-linux"} <= set(installs[0]) and "docker.io" not in installs[0]
    assert machine.calls("dockerd") == []


def test_root_without_apt_get_says_what_to_install(machine):
    machine.present -= {"apt-get", "ip"}
    machine.present.add("dockerd")
    machine.engine = "up"
    result = machine.run()
    assert result.returncode == 2
    assert len(error_lines(result)) == 1 and "missing iproute2" in error_lines(result)[0]


def test_dockerd_that_never_answers_fails_with_its_log(machine):
    machine.present.add("dockerd")
    machine.engine = "started"
    machine.dockerd_fails = True
    result = machine.run()
    assert result.returncode == 1
    assert "failed to start daemon: iptables not found" in result.stderr  # the log's tail is shown
    assert len(error_lines(result)) == 1 and "did not come up" in error_lines(result)[0]
    assert len(machine.calls("sleep")) == 20  # PEERGYM_ENGINE_WAIT_TRIES tries
