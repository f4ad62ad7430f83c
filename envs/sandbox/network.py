"""The private network between the hosts of one episode, wired from the host side.

Why not a Docker network: every episode wants the scenario's own addresses (10.0.12.45 and 10.0.12.46), and
Docker refuses two networks with overlapping subnets ("Pool overlaps with other one on this address space"),
so a sweep could run only one episode at a time; its bridge networks also exhaust the default address pools
after ~31. Instead each host starts with ``network_mode=none`` (loopback only, no route anywhere) and we
create
a veth pair directly inside the two hosts' network namespaces. The link exists only between those namespaces:
there is no route out by construction, nothing to allocate, and it vanishes with the containers.
For three or more hosts, every host gets a veth to a bridge inside a dedicated "switch" container.

Needs root on the machine that runs the Docker engine (the runner and the engine share a kernel).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from .types import SandboxError

PREFIX_LEN = 24


def _run(argv: list[str], stdin: str | None = None) -> None:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=20, check=False)
    except FileNotFoundError as exc:
        raise SandboxError(
            f"{argv[0]} is missing on this machine: install iproute2 and util-linux (apt-get install -y "
            "iproute2 util-linux)"
        ) from exc
    if proc.returncode != 0:
        hint = (
            " (peergym must run as root on the Docker host to wire the hosts' network)"
            if ("Operation not permitted" in proc.stderr)
            else ""
        )
        raise SandboxError(f"network setup failed: {' '.join(argv)}: {proc.stderr.strip()}{hint}")


def _address(ip: str) -> str:
    return f"addr add {ip}/{PREFIX_LEN} dev eth0\nlink set eth0 up\nlink set lo up\n"


def _configure(pid: int, ip: str, before: str = "") -> None:
    """Run ``before`` (ip batch lines) and then give ``eth0`` its address, in the namespace of ``pid``."""
    _run(["nsenter", "-t", str(pid), "-n", "ip", "-b", "-"], stdin=before + _address(ip))


def connect(hosts: Sequence[tuple[int, str]], switch_pid: int | None = None) -> None:
    """Give each ``(pid, ip)`` host an ``eth0`` with that address on one shared link.

    Args:
        hosts: host pid (any process in the container's network namespace) and its address.
        switch_pid: the pid of a switch container; required when there are more than two hosts.
    """
    if len(hosts) < 2:
        return
    if len(hosts) == 2:
        # The pair is made from inside the first host (its other end goes straight into the second's
        # namespace) in the same batch that addresses it: two processes fewer per episode than a separate
        # `ip link add` on the machine. (nsenter -n leaves the pid namespace as is: the pid names the host.)
        (pid_a, ip_a), (pid_b, ip_b) = hosts
        _configure(pid_a, ip_a, before=f"link add eth0 type veth peer name eth0 netns {pid_b}\n")
        _configure(pid_b, ip_b)
        return
    if switch_pid is None:
        raise ValueError("more than two hosts need a switch container")
    batch = ["link add br0 type bridge", "link set br0 up"]
    for index, (pid, _) in enumerate(hosts):
        _run(["ip", "link", "add", "eth0", "netns", str(pid), "type", "veth",
              "peer", "name", f"port{index}", "netns", str(switch_pid)])  # fmt: skip
        batch += [f"link set port{index} master br0", f"link set port{index} up"]
    _run(["nsenter", "-t", str(switch_pid), "-n", "ip", "-b", "-"], stdin="\n".join(batch) + "\n")
    for pid, ip in hosts:
        _configure(pid, ip)


def listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state in the network namespace of ``pid``, read from the host's /proc."""
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def routes(pid: int) -> list[dict[str, str]]:
    """IPv4 routes in the namespace of ``pid`` (destination, gateway, interface), from the host's /proc."""
    out = []
    with open(f"/proc/{pid}/net/route") as f:
        next(f)
        for line in f:
            iface, dest, gateway = line.split()[:3]
            out.append({"iface": iface, "destination": _hex_ip(dest), "gateway": _hex_ip(gateway)})
    return out


def interfaces(pid: int) -> list[str]:
    """Interface names in the namespace of ``pid``."""
    with open(f"/proc/{pid}/net/dev") as f:
        return [line.split(":", 1)[0].strip() for line in list(f)[2:]]


def _hex_ip(little_endian_hex: str) -> str:
    raw = bytes.fromhex(little_endian_hex)[::-1]
    return ".".join(str(b) for b in raw)
