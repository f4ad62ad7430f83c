"""The Docker sandbox against the real engine: hosts, network, shell, limits, hardening, clean-up."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest

from peergym.envs.sandbox import CAPABILITIES, HostDied, Sandbox, SandboxError, engine, initproc, network

pytestmark = pytest.mark.docker


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


def test_seeded_files_have_exact_owner_mode_and_mtime(sandbox) -> None:
    result = sandbox.exec("stat -c '%U:%G %a %.9Y' /data/report.csv /data")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "maintainer:maintainer 640 1727766764.500000000",
        "maintainer:maintainer 755 1727766000.000000000",
    ]
    # The same, read from the host side through the container's writable layer.
    upper = sandbox.hosts["source"].upper_dir
    assert upper and os.stat(f"{upper}/data/report.csv").st_mtime_ns == 1727766764_500000000


def test_ssh_scp_and_rsync_between_hosts_by_name_and_ip(sandbox) -> None:
    result = sandbox.exec(
        "ssh fs-ops-46 hostname && scp -q /data/report.csv 10.0.12.46:/data/r1.csv && "
        "rsync -a /data/report.csv fs-ops-46:/data/r2.csv && ssh 10.0.12.46 'stat -c %n:%.0Y /data/r*.csv'"
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "fs-ops-46"
    assert "/data/r2.csv:1727766764" in lines  # rsync -a keeps the mtime, scp does not
    assert any(line.startswith("/data/r1.csv:") and not line.endswith(":1727766764") for line in lines)


def test_shell_keeps_cwd_and_environment(sandbox) -> None:
    sandbox.exec("cd /data && export PROJECT=atlas")
    assert sandbox.exec("pwd; echo $PROJECT; whoami").output == "/data\natlas\nmaintainer\n"


def test_shell_errors_read_as_a_terminal_shows_them(sandbox) -> None:
    # bash would name errors inside the protocol's function "main: line 2:", which tells of a wrapper.
    assert sandbox.exec("nosuchcmd").output == "bash: nosuchcmd: command not found\n"
    assert sandbox.exec("cd /nonexistent").output == "bash: cd: /nonexistent: No such file or directory\n"
    assert sandbox.exec("f() { nosuch2; }; f").output == "bash: nosuch2: command not found\n"


def test_exit_code_and_stderr_are_reported(sandbox) -> None:
    result = sandbox.exec("ls /nonexistent; (exit 7)")
    assert result.exit_code == 7
    assert "No such file or directory" in result.output


def test_timeout_kills_the_command_and_the_child_it_spawned(sandbox) -> None:
    result = sandbox.exec("bash -c 'sleep 1000 & sleep 1000'", timeout=1)
    assert result.timed_out and result.exit_code == 124
    assert "timed out after 1 s" in result.output
    survivors = sandbox.exec("pgrep -fc 'sleep 1000' || true").output.strip()
    assert survivors == "0"


def test_a_stuck_shell_is_replaced_in_the_same_directory(sandbox) -> None:
    sandbox.exec("cd /data")
    result = sandbox.exec("while :; do :; done", timeout=1)
    assert result.timed_out and result.shell_restarted
    assert sandbox.exec("pwd").output == "/data\n"


def test_exiting_the_shell_reports_status_and_keeps_directory(sandbox) -> None:
    sandbox.exec("cd /tmp")
    result = sandbox.exec("exit 3")
    assert result.exit_code == 3 and result.shell_restarted
    assert sandbox.exec("pwd").output == "/tmp\n"


def test_huge_output_is_capped_without_the_runner_growing(sandbox) -> None:
    sandbox.exec("yes | head -c 1M")  # warm up buffers before measuring
    before = _rss_bytes()
    result = sandbox.exec("yes | head -c 50M", timeout=60)
    grown = _rss_bytes() - before
    assert result.exit_code == 0
    assert result.truncated_bytes == 50 * 1024 * 1024 - sandbox.output_cap
    assert result.output.endswith(f"[output truncated: {result.truncated_bytes} bytes]")
    assert grown < 10 * 1024 * 1024, f"runner grew by {grown} bytes"


def test_fork_bomb_is_contained_and_the_host_recovers(sandbox, docker_api) -> None:
    cid = sandbox.hosts["source"].container_id
    assert docker_api.inspect_container(cid)["HostConfig"]["PidsLimit"] == sandbox.limits.pids
    result = sandbox.exec("bomb() { bomb | bomb; }; bomb", timeout=5)
    assert result.timed_out
    assert "fork: retry" in result.output or "Resource temporarily unavailable" in result.output
    assert sandbox.exec("echo alive", timeout=10).output == "alive\n"


def test_memory_hog_is_contained(sandbox, docker_api) -> None:
    cid = sandbox.hosts["source"].container_id
    assert docker_api.inspect_container(cid)["HostConfig"]["Memory"] == sandbox.limits.memory_bytes
    result = sandbox.exec("python3 -c 'b = bytearray(2 << 30); print(len(b))'", timeout=60)
    assert result.exit_code != 0  # killed by the kernel (137) or MemoryError (1)
    assert "2147483648" not in result.output
    assert sandbox.exec("echo alive").output == "alive\n"


def test_private_network_has_no_route_out(sandbox, docker_api) -> None:
    for name, handle in sandbox.hosts.items():
        config = docker_api.inspect_container(handle.container_id)["HostConfig"]
        assert config["NetworkMode"] == "none", name
        assert sorted(network.interfaces(handle.pid)) == ["eth0", "lo"]
        routes = network.routes(handle.pid)
        assert [r["destination"] for r in routes] == ["10.0.12.0"]  # the link itself; no default route
        assert all(r["gateway"] == "0.0.0.0" for r in routes)
    assert "default" not in sandbox.exec("ip route").output


def test_hardening(sandbox, docker_api) -> None:
    for handle in sandbox.hosts.values():
        info = docker_api.inspect_container(handle.container_id)
        assert info["Mounts"] == []
        assert info["HostConfig"]["CapDrop"] == ["ALL"]
        assert sorted(info["HostConfig"]["CapAdd"]) == sorted(CAPABILITIES)
        assert not info["HostConfig"]["Privileged"]
    result = sandbox.exec("ls /var/run/docker.sock /run/docker.sock 2>&1; sudo -n id -u")
    assert result.output.count("No such file") == 2 and result.output.endswith("0\n")
    assert "Operation not permitted" in sandbox.exec("sudo ip link set eth0 down").output


def test_read_and_write_files_through_the_engine(sandbox) -> None:
    assert sandbox.read_file("source", "/data/report.csv") == b"id,total\n1,42\n"
    sandbox.put_file("destination", "/data/new.txt", b"x", uid=1000, gid=1000, mode=0o600, mtime=1.0e9)
    assert (
        sandbox.exec("ssh fs-ops-46 stat -c %U:%a:%Y /data/new.txt").output == "maintainer:600:1000000000\n"
    )
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("source", "/data/missing")


def test_close_is_idempotent_and_exec_after_close_fails(docker_api, two_hosts) -> None:
    box = Sandbox(two_hosts).start()
    box.close()
    box.close()
    with pytest.raises(SandboxError):
        box.exec("true")


def test_two_episodes_with_the_same_addresses_run_side_by_side(docker_api, two_hosts) -> None:
    with Sandbox(two_hosts) as a, Sandbox(two_hosts) as b:
        a.exec("echo from-a > /data/mark && scp -q /data/mark fs-ops-46:/data/")
        b.exec("echo from-b > /data/mark && scp -q /data/mark fs-ops-46:/data/")
        assert a.exec("ssh 10.0.12.46 cat /data/mark").output == "from-a\n"
        assert b.exec("ssh 10.0.12.46 cat /data/mark").output == "from-b\n"


def test_a_host_that_dies_mid_episode_gives_a_clear_error(docker_api, two_hosts) -> None:
    with Sandbox(two_hosts) as box:
        docker_api.kill(box.hosts["source"].container_id)
        with pytest.raises(HostDied, match="host source stopped during the episode"):
            box.exec("true")


def test_each_host_has_its_own_network_and_its_own_name_files(sandbox) -> None:
    # No engine networking: a namespace per host from the runtime, and /etc/hosts and /etc/resolv.conf are
    # the server's files (not the engine's mounts), dated to the install like the rest of it.
    machine = os.readlink("/proc/self/ns/net")
    spaces = {os.readlink(f"/proc/{h.pid}/ns/net") for h in sandbox.hosts.values()}
    assert machine not in spaces and len(spaces) == len(sandbox.hosts)
    out = sandbox.exec(
        "mount | grep -c -E ' /etc/(hosts|resolv.conf) ' ; stat -c '%a %Y %n' /etc/hosts /etc/resolv.conf;"
        " getent hosts fs-ops-46; ip -4 route; timeout 5 getent hosts example.com; echo rc=$?"
    ).output
    lines = out.splitlines()
    assert lines[0] == "0", out  # neither is a mount
    installed = int(engine.installed_at())
    assert lines[1:3] == [f"644 {installed} /etc/hosts", f"644 {installed} /etc/resolv.conf"], out
    assert lines[3].split() == ["10.0.12.46", "fs-ops-46"], out
    assert "default" not in out and out.rstrip().endswith("rc=2"), out  # no way out, and a lookup fails


def test_a_shutdown_init_acts_on_late_still_ends_the_session(sandbox) -> None:
    # `shutdown` only writes its request to init's FIFO and returns; on a busy machine init acts on it after
    # the command is back. Here init is stopped once the command has begun (so before `shutdown` runs) and
    # resumed well after it returned: the sandbox must wait for init rather than let the agent go on on a
    # server that is going down.
    sandbox.exec("true")
    host = sandbox.hosts["source"]
    begun = os.path.join(host.upper_dir or "", "tmp", "begun")
    queued: list[int] = []

    def hold_init() -> None:
        deadline = time.monotonic() + 10
        while not os.path.exists(begun) and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(host.pid, signal.SIGSTOP)
        try:
            time.sleep(1.0)
            queued.append(initproc.pending_request_bytes(host.pid))  # the request, unread in init's FIFO
        finally:
            os.kill(host.pid, signal.SIGCONT)

    holder = threading.Thread(target=hold_init)
    holder.start()
    try:
        with pytest.raises(HostDied) as died:
            sandbox.exec("touch /tmp/begun; sleep 0.3; sudo shutdown -h now")
    finally:
        holder.join()
    assert died.value.cause == "shutdown" and died.value.by_agent
    assert queued and queued[0] > 0, queued


def test_three_hosts_share_one_link(docker_api, two_hosts) -> None:
    from peergym.envs.sandbox import HostSpec

    hosts = [*two_hosts, HostSpec("backup", "fs-ops-47", "10.0.12.47")]
    with Sandbox(hosts) as box:
        result = box.exec("ssh fs-ops-46 hostname && ssh 10.0.12.47 hostname")
        assert result.output == "fs-ops-46\nfs-ops-47\n", result.output


def test_the_sandbox_api_runs_processes_as_users_tools_expect(sandbox) -> None:
    r = sandbox.run(
        ["sh", "-c", "cat; echo err >&2; pwd; id -un; echo $X; exit 3"], input="in\n", env={"X": "x"}
    )
    assert (r.returncode, r.stdout, r.stderr) == (3, b"in\n/home/maintainer\nmaintainer\nx\n", b"err\n")
    assert sandbox.run(["id", "-un"], user="root", host="destination").stdout == b"root\n"
    assert sandbox.run(["pwd"], cwd="/data").stdout == b"/data\n"
    with pytest.raises(TimeoutError):
        sandbox.run(["sh", "-c", "sleep 30 & sleep 30; :"], timeout=1)
    assert "sleep 30" not in sandbox.run(["ps", "-eo", "args"]).stdout.decode()  # the whole tree was killed
    with pytest.raises(PermissionError):
        sandbox.run(["/etc/passwd"])


def test_file_operations_honour_the_users_permissions(sandbox) -> None:
    sandbox.write_file("source", "notes/a.txt", "hello")  # relative to the agent's home, parents made as it
    assert sandbox.read_file("source", "/home/maintainer/notes/a.txt") == b"hello"
    assert sandbox.run(["stat", "-c", "%U", "notes"]).stdout == b"maintainer\n"
    with pytest.raises(IsADirectoryError, match="notes: is a directory"):
        sandbox.write_file("source", "notes", b"x")
    with pytest.raises(IsADirectoryError, match="directory"):
        sandbox.read_file("source", "/etc")
    with pytest.raises(PermissionError, match="/etc/shadow"):
        sandbox.read_file("source", "/etc/shadow")
    with pytest.raises(PermissionError, match="/etc/motd"):
        sandbox.write_file("source", "/etc/motd", b"x")
    sandbox.write_file("source", "/etc/motd", b"as root\n", user="root")
    assert sandbox.read_file("source", "/etc/motd") == b"as root\n"
    with pytest.raises(FileNotFoundError, match="missing"):
        sandbox.read_file("source", "missing")
    with pytest.raises(NotADirectoryError):
        sandbox.write_file("source", "notes/a.txt/b", b"x")


def test_the_engine_client_does_not_look_up_proxies_or_netrc_for_its_socket() -> None:
    # Neither applies to a unix socket; requests would look both up again on every call otherwise.
    from peergym.envs.sandbox.engine import client

    api = client().api
    assert api.base_url.startswith("http+docker://")
    assert api.trust_env is False
