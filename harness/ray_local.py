"""A Ray cluster of a few nodes on this machine: to try ``--executor ray`` without a cluster, and to test it.

    with LocalRayCluster(nodes=2, slots=2) as cluster:
        run_sweep(spec, folder, executor="ray", address=cluster.address)

Each node is one ``ray start --block`` process in a session of its own, so stopping or killing a node (``kill``)
takes exactly that node's processes with it. Ray replaces the address 127.0.0.1 by the machine's routed one
(it assumes a cluster spans machines), so the nodes take the other loopback addresses 127.0.0.2, 127.0.0.3, ...:
the cluster's traffic stays on this machine. No dashboard, no usage statistics, its own temporary folder (a
cluster someone else runs here is not touched).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .sweep_ray import RESOURCE

START_TIMEOUT_S = 90.0


class LocalRayClusterError(RuntimeError):
    """A node did not start; the message holds the end of its log."""


class LocalRayCluster:
    """``nodes`` Ray nodes on loopback addresses, each offering ``slots`` episode slots (and as many CPUs)."""

    def __init__(
        self, nodes: int = 2, slots: int = 2, port: int | None = None, offer_slots: bool = True
    ) -> None:
        # offer_slots=False: nodes that offer no episode slot (a cluster started without --resources).
        self.nodes, self.slots, self.offer_slots = nodes, slots, offer_slots
        self.port = port or _free_port()
        self.head_ip = "127.0.0.2"
        self.address = f"{self.head_ip}:{self.port}"
        self.temp_dir = Path(tempfile.mkdtemp(prefix="pgray-"))  # short: Ray's socket paths live under it
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ray = str(Path(sys.executable).with_name("ray"))

    def __enter__(self) -> LocalRayCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for index in range(self.nodes):
            self._start_node(index)
            if index == 0:
                _wait_for_port(self.head_ip, self.port, self._log(0))
        self._wait_for_slots(self.nodes * self.slots, RESOURCE if self.offer_slots else "CPU")

    def _start_node(self, index: int) -> None:
        ip = f"127.0.0.{index + 2}"
        common = [f"--node-ip-address={ip}", f"--num-cpus={self.slots}", "--disable-usage-stats", "--block"]
        if self.offer_slots:
            common.append(f"--resources={json.dumps({RESOURCE: self.slots})}")
        where = (
            ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp_dir}"]
            if index == 0
            else [f"--address={self.address}"]
        )
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        with open(self._log(index), "wb") as log:
            node = subprocess.Popen([self.ray, "start", *where, *common], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
        self.processes.append(node)

    def _log(self, index: int) -> Path:
        return self.temp_dir / f"node{index}.log"

    def _wait_for_slots(self, wanted: int, resource: str) -> None:
        """Until the cluster reports ``wanted`` of ``resource`` (every node registered)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for index, process in enumerate(self.processes):
                if process.poll() is not None:
                    raise LocalRayClusterError(f"ray node {index} exited: {_tail(self._log(index))}")
            if self.available_slots(resource) >= wanted:
                return
            time.sleep(0.5)
        raise LocalRayClusterError(
            f"the cluster did not reach {wanted} {resource} in {START_TIMEOUT_S:.0f} s"
        )

    def available_slots(self, resource: str = RESOURCE) -> int:
        """The cluster's total of ``resource`` (episode slots) as its head reports it, from ``ray status``."""
        out = subprocess.run([self.ray, "status", f"--address={self.address}"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}).stdout  # fmt: skip
        for line in out.splitlines():  # " 0.0/4.0 peergym_episodes"
            if line.strip().endswith(f" {resource}"):
                return int(float(line.split()[0].split("/")[1]))
        return 0

    def kill(self, index: int) -> None:
        """Kill node ``index`` (not the head, 0) and everything it runs, with SIGKILL: a machine lost."""
        if index == 0:
            raise ValueError("killing the head ends the cluster; kill a worker node (1, 2, ...)")
        for pid in self.node_processes(index):  # its raylet, agents and workers, whatever their group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def node_processes(self, index: int) -> list[int]:
        """The processes of node ``index``: those of its ``ray start`` session."""
        return [pid for pid in _pids() if _session(pid) == self.processes[index].pid]

    def stop(self) -> None:
        """Stop every node (worker nodes first), then remove the cluster's folder."""
        for process in reversed(self.processes):
            _kill_group(process, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _kill_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        # `ray start --block` stops its node's processes on SIGTERM; anything left of its session goes now.
        for process in self.processes:
            _kill_group(process, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)  # the node's session: its pid is the group's id
    except (ProcessLookupError, PermissionError):
        pass


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:  # gone meanwhile
        return None


def _wait_for_port(host: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise LocalRayClusterError(f"the head did not listen on {host}:{port}: {_tail(log)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
