"""The Docker sandbox: the hosts of one episode, their private network, and the agent's shell.

This is the one module (with its siblings in this package) that talks to Docker. Typical use::

    with Sandbox([HostSpec("source", "fs-45", "10.0.12.45"), HostSpec("destination", "fs-46", "10.0.12.46")],
                 agent_host="source") as box:
        box.exec("scp /data/report.csv fs-46:/data/")

Hardening per host: no Docker socket, no host mounts (the engine's /etc/hostname excepted), capabilities dropped
to what sshd, sudo and file ownership need, memory / pids / CPU limits, no swap, no network but the private link
(see network.py).

The engine does no networking for a host (``network_disabled``): the runtime gives it a network namespace of
its own, empty, and network.py wires it. The engine's networking would add nothing here and cost two runs of
its own binary per container (a prestart hook and an IPv6 switch), about a fifth of a sweep's CPU. Without it,
/etc/hosts and /etc/resolv.conf are the server's own files, seeded like the rest, not the engine's bind mounts.
That a host's namespace is not the machine's is checked at every start, whatever the engine did.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import disk, engine, initproc, layer, lifecycle, network, watchdog
from .confine import pid_namespace
from .process import ProcessResult, run_process
from .runner import ProcessRunner
from .seeding import STAGED_BYTES, build_dir, move_into_layer, stage, tar_stream
from .shell import DEFAULT_OUTPUT_CAP, RESTART_NOTE, PersistentShell
from .types import ExecResult, HostDied, HostSpec, SandboxError, SeedFile

# sshd (privilege separation, setuid to the user), sudo, and a root that owns and stamps files like on a real
# server. Not granted: NET_ADMIN/NET_RAW (no re-wiring the network), SYS_ADMIN (no mounts), MKNOD,
# LINUX_IMMUTABLE (chattr +i would make the container's layer undeletable by the engine).
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
                "NET_BIND_SERVICE", "SYS_CHROOT", "AUDIT_WRITE"]  # fmt: skip
SSH_PORT = 22


@dataclass(frozen=True)
class Limits:
    """Per-host resource limits.

    ``disk_bytes`` bounds each host's writable layer; None sizes it from what is seeded: the host's own files
    plus room for the agent to copy the largest host's files twice (a copy and an archive of the weights)
    plus 1 GiB. A host over its limit is stopped (see disk.py).
    """

    memory_bytes: int = 512 * 1024 * 1024
    pids: int = 256
    cpus: float = 1.0
    disk_bytes: int | None = None


@dataclass(frozen=True)
class HostHandle:
    """What the observers need to read a host from outside: its container, init pid and writable layer."""

    spec: HostSpec
    container_id: str
    pid: int
    upper_dir: str | None
    pid_namespace: str = ""
    disk_limit: int = 0


def _check_own_network(running: dict[str, tuple[int, str | None]]) -> None:
    """Refuse hosts that share a network namespace with this machine or with each other: the engine does no
    networking for them, so their isolation rests on the runtime having given each one a namespace of its own.

    Raises:
        SandboxError: a host is on the machine's network (or another host's), or its namespace is unreadable.
    """
    machine = os.readlink("/proc/self/ns/net")
    seen: dict[str, str] = {}
    for name, (pid, _) in running.items():
        try:
            own = os.readlink(f"/proc/{pid}/ns/net")
        except OSError as exc:
            raise SandboxError(f"host {name}'s network namespace cannot be read: {exc}") from exc
        if own == machine or own in seen:
            other = "this machine" if own == machine else f"host {seen[own]}"
            raise SandboxError(f"host {name} shares its network with {other}: refusing to run it")
        seen[own] = name


def _regular_file(path: str) -> bool:
    """Whether ``path`` is a non-empty regular file (a link is not followed)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size > 0


def _upper_of(info: dict[str, Any]) -> str | None:
    """The writable layer's directory in a container's inspect data (None if the driver exposes none)."""
    upper = ((info.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
    return upper if upper and os.path.isdir(upper) else None


def _date_engine_files(info: dict[str, Any], when: float) -> None:
    """Date the files the engine writes into every container at its creation (/etc/hostname, /etc/hosts,
    /etc/resolv.conf, bind-mounted from its own folder) back to ``when``, as the install wrote them."""
    for key in ("HostnamePath", "HostsPath", "ResolvConfPath"):
        path = info.get(key)
        if path and os.path.isfile(path):
            os.utime(path, (when, when), follow_symlinks=False)


def _date_root(upper_dir: str, when: float) -> None:
    """Set the mtime of a host's "/" (its writable layer's root, made today by the engine) to ``when``: on a
    server, "/" changes when an entry is added there, which the install did last. Done from the host before
    the agent's first command; the directory is the engine's, not one the agent could have swapped."""
    os.utime(upper_dir, (when, when), follow_symlinks=False)


# How often a booting host is looked at, first and at most: a boot takes a few hundred ms, and a sweep boots
# dozens at once, so the looks back off instead of each costing the runner every 5 ms.
BOOT_POLL_S = (0.005, 0.025)


def _boot_pauses() -> Iterator[float]:
    """The pauses between two looks at a booting host: from the first to the longest of BOOT_POLL_S."""
    pause = BOOT_POLL_S[0]
    while True:
        yield pause
        pause = min(pause * 1.5, BOOT_POLL_S[1])


# In /etc/resolv.conf: off every scenario's link, so with no route a lookup fails at once.
SITE_RESOLVER = "10.0.0.2"
# Relative to a host's writable layer: where Debian's init script has sshd write its pid.
SSHD_PID_FILE = "run/sshd.pid"
HALTED = ("0", "6")  # sysvinit's runlevels for halt and reboot: the server is going down
INIT_SETTLE_S = 2.0  # how long a runlevel request init has not acted on yet is waited for after a command


class Sandbox:
    """The running hosts of one episode. A context manager; ``close()`` is idempotent."""

    runs_services = True  # its hosts boot and run their services (an env waits for a scenario's ready files)

    def __init__(
        self,
        hosts: Sequence[HostSpec],
        *,
        agent_host: str | None = None,
        run_id: str | None = None,
        episode_id: str | None = None,
        image: str | None = None,
        limits: Limits = Limits(),
        ttl_s: int = 7200,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        ready_timeout_s: float = 20.0,
    ) -> None:
        names = [h.name for h in hosts]
        if not hosts or len(set(names)) != len(names):
            raise ValueError(f"hosts need unique names, got {names}")
        self.specs = {h.name: h for h in hosts}
        self.agent_host = agent_host or hosts[0].name
        if self.agent_host not in self.specs:
            raise ValueError(f"agent_host {self.agent_host!r} is not one of {names}")
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.episode_id = episode_id or uuid.uuid4().hex[:12]
        self.image = image
        self.limits = limits
        self.ttl_s = ttl_s
        self.output_cap = output_cap
        self.ready_timeout_s = ready_timeout_s
        self.hosts: dict[str, HostHandle] = {}
        self._created: list[str] = []
        self._shell: PersistentShell | None = None
        self._closed = False
        self._api: Any = None
        self.disk_exceeded: dict[str, int] = {}  # host -> bytes its layer held when it was stopped
        self.owner_pid = os.getpid()  # a forked child never closes its parent's hosts at its own exit
        self._runners: dict[str, ProcessRunner] = {}  # per host, opened by the first run() there
        self._runners_lock = threading.Lock()
        self._configs: dict[str, dict[str, Any]] = {}  # container id -> its configuration (env, hostname)
        self._booted = False

    # ----------------------------------------------------------------- start
    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Sandbox:
        """Create, seed and start every host, wire the network, wait for sshd, open the agent's shell.

        Raises:
            EngineUnavailable, ImageMissing: with the command that fixes it.
            SandboxError: anything else that kept the hosts from starting; nothing is left running.
        """
        if self._closed:
            raise SandboxError("this sandbox was closed; make a new one")
        client = engine.client()
        self._api = client.api
        image = engine.require_image(self.image)
        lifecycle.reap_dead_once(self._api)  # runs killed with SIGKILL left their containers behind
        watchdog.ensure_running()  # removes this process's hosts at their expiry, or when it dies
        disk_limits = self._disk_limits()
        self._check_free_disk(disk_limits)
        try:
            switch = self._create("switch", image, []) if len(self.specs) > 2 else None
            with ThreadPoolExecutor(max_workers=len(self.specs)) as pool:
                seeds = {n: [*s.files, *self._name_files(s)] for n, s in self.specs.items()}
                ids = dict(zip(self.specs, pool.map(lambda n: self._create(n, image, seeds[n]), self.specs),
                               strict=True))  # fmt: skip
            running = {name: self._running(cid) for name, cid in ids.items()}
            _check_own_network(running)
            network.connect([(running[n][0], self.specs[n].ip) for n in self.specs],
                            switch_pid=self._running(switch)[0] if switch else None)  # fmt: skip
            for name, cid in ids.items():
                pid, upper = running[name]
                if upper:  # the layer's root is created with the container: date "/" back to the install
                    _date_root(upper, engine.installed_at())
                namespace = pid_namespace(pid)
                if not namespace:
                    raise SandboxError(f"host {name} stopped while starting")
                self.hosts[name] = HostHandle(self.specs[name], cid, pid, upper, namespace, disk_limits[name])
            self._watch_disks()
            spec = self.specs[self.agent_host]
            self._shell = PersistentShell(
                self._api, ids[self.agent_host], user=spec.agent_user, workdir=f"/home/{spec.agent_user}",
                namespace=self.hosts[self.agent_host].pid_namespace,
                environment=_login_environment(spec.agent_user), output_cap=self.output_cap,
            )  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def _name_files(self, spec: HostSpec) -> list[SeedFile]:
        """/etc/hosts (every host of the episode by name, as an administrator lists a site's servers) and
        /etc/resolv.conf (a site resolver off the private link, so a lookup fails at once, as before), dated
        to the install; a file the host's own spec gives wins."""
        given = {f.path for f in spec.files}
        peers = "".join(f"{s.ip}\t{s.hostname}\n" for s in self.specs.values())
        hosts = (
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{spec.hostname}\n{peers}\n"
            "# The following lines are desirable for IPv6 capable hosts\n"
            "::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
        )
        when = engine.installed_at()
        files = [SeedFile("/etc/hosts", hosts.encode(), mtime=when),
                 SeedFile("/etc/resolv.conf", f"nameserver {SITE_RESOLVER}\n".encode(), mtime=when)]  # fmt: skip
        return [f for f in files if f.path not in given]

    def _disk_limits(self) -> dict[str, int]:
        if self.limits.disk_bytes is not None:
            return dict.fromkeys(self.specs, self.limits.disk_bytes)
        seeded = {name: sum(f.nbytes for f in spec.files) for name, spec in self.specs.items()}
        room = 2 * max(seeded.values()) + disk.GIB
        return {name: size + room for name, size in seeded.items()}

    def _check_free_disk(self, limits: dict[str, int]) -> None:
        """Refuse, before anything starts, files the engine's disk cannot hold with room for the agent."""
        seeded = sum(f.nbytes for spec in self.specs.values() for f in spec.files)
        room = max(limit - sum(f.nbytes for f in self.specs[name].files) for name, limit in limits.items())
        try:
            free = disk.free_bytes(engine.data_root())
        except OSError:
            return  # the engine's storage is not visible from here; the disk watch still bounds each host
        if seeded + room > free:
            raise InsufficientDisk(
                f"the hosts' files need {_gib(seeded)} plus {_gib(room)} of room for the agent, but the "
                f"engine's disk ({engine.data_root()}) has {_gib(free)} free: use smaller weights "
                "(--weights-size) or free some disk"
            )

    def _watch_disks(self) -> None:
        watched = []
        for name, handle in self.hosts.items():
            if handle.upper_dir is None:
                continue

            def exceeded(usage: int, name: str = name) -> None:
                self._stop_over_limit(name, usage)

            watched.append(disk.Watched(handle.upper_dir, handle.disk_limit, exceeded))
        disk.WATCH.add(self, watched)

    def _stop_over_limit(self, name: str, usage: int) -> None:
        """Stop a host whose layer outgrew its limit: no process of it may write another byte."""
        self.disk_exceeded[name] = usage
        with lifecycle.DOCKER_OPS:
            self._api.kill(self.hosts[name].container_id)

    def _create(self, name: str, image: str, files: Sequence[SeedFile]) -> str:
        """Create, seed and start one host."""
        cid = self._seed(name, lambda: self._create_container(name, image), files)
        with lifecycle.DOCKER_OPS:
            self._api.start(cid)
        return cid

    def _seed(self, name: str, create: Callable[[], str], files: Sequence[SeedFile]) -> str:
        """Create a host's container with ``create`` and seed ``files`` into it before it starts.

        Large files are staged on the engine's disk by a second thread while the engine creates the container.
        Then everything is written straight into its writable layer (see layer.py), or, where that cannot be
        done exactly or the engine's disk is not ours (a remote engine), sent through the engine's archive API
        with the staged files renamed in after it."""
        dirs = {f.path: f.mtime for f in files if f.is_dir}
        local = os.access(engine.data_root(), os.W_OK)
        large = [f for f in files if not f.is_dir and f.nbytes >= STAGED_BYTES
                 and posixpath.dirname(f.path) in dirs] if local else []  # fmt: skip
        build = build_dir(engine.data_root(), lifecycle.owner_id()) if local and files else None
        staged: dict[str, Any] = {}
        try:
            with ThreadPoolExecutor(max_workers=1) as stager:
                staged = {f.path: stager.submit(stage, build, f) for f in large} if build else {}
                cid = create()
                info = self._api.inspect_container(cid) if local and files else {}
                upper = _upper_of(info)
                try:
                    direct = layer.plan(layer.lower_dirs(info), files) if upper else None
                except layer.LayerUnsuitable:
                    direct = None
                if upper and direct:
                    layer.write(upper, direct, {p: future.result() for p, future in staged.items()}, build)
                    return cid
                by_layer = {f.path for f in large} if upper else set()
                with lifecycle.DOCKER_OPS:  # the small files, and the directories the large ones go into
                    if files and not self._api.put_archive(cid, "/", tar_stream(
                            [f for f in files if f.path not in by_layer])):  # fmt: skip
                        raise SandboxError(f"seeding files into host {name} failed")
                if upper and by_layer:
                    move_into_layer(upper, {p: future.result() for p, future in staged.items()}, dirs)
                return cid
        finally:  # the executor has finished: whatever was staged (into the build) and not moved is removed
            if build is not None:
                shutil.rmtree(build, ignore_errors=True)

    def _create_container(self, name: str, image: str) -> str:
        spec = self.specs.get(name)
        host_config = self._api.create_host_config(
            network_mode="none",  # and no engine networking at all (network_disabled below): see the module's notes
            mem_limit=self.limits.memory_bytes,
            memswap_limit=self.limits.memory_bytes,
            pids_limit=self.limits.pids,
            nano_cpus=int(self.limits.cpus * 1e9),
            cap_drop=["ALL"],
            cap_add=CAPABILITIES,
        )
        labels = lifecycle.labels_for(self.run_id, self.episode_id, name, self.ttl_s)
        with lifecycle.DOCKER_OPS:
            cid = self._api.create_container(
                image,
                command=[
                    "/sbin/init"
                ],  # Debian's sysvinit; the time-to-live is kept from outside (watchdog.py)
                hostname=spec.hostname if spec else name,
                labels=labels,
                host_config=host_config,
                network_disabled=True,
                name=f"peergym-{self.episode_id}-{name}",
            )["Id"]
        self._created.append(cid)
        lifecycle.OPEN.add(self)  # closed at exit if the program never does
        lifecycle.hook_exit()
        return cid

    def _running(self, container_id: str) -> tuple[int, str | None]:
        """Init pid and writable-layer directory of a started container (one inspect call)."""
        info = self._api.inspect_container(container_id)
        state = info["State"]
        if not state.get("Running"):
            raise SandboxError(
                f"container {container_id[:12]} did not stay up: {state.get('Error') or state}"
            )
        _date_engine_files(info, engine.installed_at())
        self._configs[container_id] = info.get("Config") or {}  # a runner's environment, without asking again
        return int(state["Pid"]), _upper_of(info)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        # A host already stopped is not waited for: the command that needs it finds out, and says why.
        waiting = {n for n, h in self.hosts.items() if pid_namespace(h.pid) == h.pid_namespace}
        pauses = _boot_pauses()
        while waiting:
            waiting = {n for n in waiting if not self._ready(n)}
            if not waiting:
                return
            if time.monotonic() > deadline:
                why = "; ".join(f"{n}: {self._sshd_diagnosis(n)}" for n in sorted(waiting))
                raise SandboxError(f"sshd did not come up within {self.ready_timeout_s:g} s ({why})")
            time.sleep(next(pauses))

    def _ready(self, name: str) -> bool:
        host = self.hosts[name]
        # sshd writes its pid file only once its listening sockets are bound (sshd.c: "after the sigterm
        # handler is setup and the listen sockets are bound"), and start-stop-daemon does not write it for sshd:
        # so the file in the host's layer says "listening". Reading the namespace's TCP table instead walks every
        # socket of the machine (~10 ms a read here, two tables per host per episode); it is only the fallback
        # when the layer is not on this machine (a remote engine).
        if host.upper_dir:
            return _regular_file(posixpath.join(host.upper_dir, SSHD_PID_FILE))
        return SSH_PORT in network.listening_ports(host.pid)

    def wait_booted(self) -> None:
        """Wait (once) until every host has booted: its sshd listens and its boot scripts are done. The first
        command waits for it anyway; an observer that takes its baseline calls it first."""
        if not self._booted:
            self._wait_booted()

    def _wait_booted(self) -> None:
        """Before the agent's first command: every host's sshd listens and its boot scripts are done (until
        then ``ps`` shows a server seconds into its boot). Not part of start(), which returns once the hosts
        run and the agent's shell is open: the boot finishes while the agent's first model call runs.

        Raises:
            SandboxError: a host's sshd did not come up within ``ready_timeout_s`` (naming why, from sshd's
                own check of its configuration); the sandbox is closed.
        """
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        deadline, pauses = time.monotonic() + self.ready_timeout_s, _boot_pauses()
        while any(initproc.booting(h.pid) for h in self.hosts.values()) and time.monotonic() < deadline:
            time.sleep(next(pauses))  # a boot script still running then is left to finish on its own
        self._booted = True

    def _sshd_diagnosis(self, name: str) -> str:
        """Why sshd is not listening on ``name``, naming the file at fault where sshd's own check does."""
        cid = self.hosts[name].container_id
        try:
            if not self._api.inspect_container(cid)["State"].get("Running"):
                return "the host stopped"
            exec_id = self._api.exec_create(cid, ["/usr/sbin/sshd", "-t"], user="root")["Id"]
            output = self._api.exec_start(exec_id).decode("utf-8", "replace").strip()
        except Exception as exc:
            return f"could not check sshd's configuration: {exc}"
        return f"`sshd -t` says: {output}" if output else "its configuration checks out (sshd -t)"

    # ------------------------------------------------------------- agent I/O
    def exec(self, command: str, timeout: float = 60.0) -> ExecResult:
        """Run ``command`` in the agent's persistent shell.

        Raises:
            HostDied: the agent's host stopped (with its exit code and whether it ran out of memory).
            ValueError: the command contains a NUL byte.
        """
        if self._shell is None:
            raise SandboxError("the sandbox is not started")
        if self.disk_exceeded:  # stopped between steps by a background writer
            raise self._death(self.agent_host, HostDied("stopped", cause="disk_limit"))
        if not self._booted:
            self._wait_booted()
        # A shutdown a background job asked for since the last command: init settled after that command, so
        # a look at the runlevel is enough here.
        self._check_halted("", settle=False)
        try:
            result = self._shell.run(command, timeout=timeout, abort=self._disk_abort)
        except HostDied as exc:
            raise self._death(self.agent_host, exc) from exc
        self._check_halted(result.output.replace(RESTART_NOTE, ""))
        return result

    def _check_halted(self, output: str, settle: bool = True) -> None:
        """Raise HostDied if the agent's server was shut down (`shutdown -h now`, `poweroff`, `init 0`): init
        runs the halt scripts but a container cannot power off, so the host is stopped here and the agent's
        session ends with its server, as an ssh session would. With ``settle``, a request init has not acted
        on yet is waited for first (at most INIT_SETTLE_S)."""
        host = self.hosts[self.agent_host]
        deadline = time.monotonic() + INIT_SETTLE_S
        while (
            settle and initproc.handling_request(host.pid, host.pid_namespace) and time.monotonic() < deadline
        ):
            time.sleep(0.002)  # `shutdown` has returned but init has not switched runlevel yet
        if (level := self.runlevel(self.agent_host)) not in HALTED:
            return
        with lifecycle.DOCKER_OPS:
            self._api.kill(self.hosts[self.agent_host].container_id)
        raise HostDied(f"host {self.agent_host} was shut down (runlevel {level})", host=self.agent_host,
                       cause="shutdown", by_agent=True, output=output)  # fmt: skip

    def runlevel(self, name: str) -> str | None:
        """The runlevel sysvinit records in host ``name``'s /run/runlevel (None: unknown), read from the host
        side without following any link the agent may have put there, at most 16 bytes."""
        upper = self.hosts[name].upper_dir
        if not upper:
            return None
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            run = os.open(posixpath.join(upper, "run"), flags | os.O_DIRECTORY)
            try:
                fd = os.open("runlevel", flags | os.O_NONBLOCK, dir_fd=run)
            finally:
                os.close(run)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return None
                return os.read(fd, 16).decode("ascii", "replace").strip() or None
            finally:
                os.close(fd)
        except OSError:
            return None

    def _disk_abort(self) -> str | None:
        return "disk_limit" if self.disk_exceeded else None

    def _death(self, name: str, exc: HostDied) -> HostDied:
        """Say why host ``name`` can no longer run commands, and whether the agent did it.

        The agent cannot reach the engine, so a container removed under us or an engine that stopped
        answering is infrastructure; a container that stopped, or runs but can no longer start a shell (its
        pids exhausted), stopped while the agent's command or a process it started was running.
        """
        import docker.errors

        if self.disk_exceeded:
            host, usage = next(iter(self.disk_exceeded.items()))
            limit = self.hosts[host].disk_limit
            return HostDied(f"host {host}'s writable layer reached {_gib(usage)}, over its limit of "
                            f"{_gib(limit)}; the host was stopped", host=host, cause="disk_limit",
                            by_agent=True, output=exc.output)  # fmt: skip
        try:
            state = self._api.inspect_container(self.hosts[name].container_id)["State"]
        except docker.errors.NotFound:
            return HostDied(f"host {name} is gone (its container was removed under the episode)", host=name,
                            cause="removed", output=exc.output)  # fmt: skip
        except Exception as error:
            return HostDied(f"the Docker engine stopped answering: {error}", host=name, cause="engine",
                            output=exc.output)  # fmt: skip
        if state.get("Running"):
            return HostDied(f"host {name} runs but no shell can be started there any more ({exc})",
                            host=name, cause="no_shell", by_agent=True, output=exc.output)  # fmt: skip
        return HostDied(f"host {name} stopped during the episode (exit code {state.get('ExitCode')}, "
                        f"out of memory: {state.get('OOMKilled')})", host=name, cause="died", by_agent=True,
                        output=exc.output)  # fmt: skip

    def run_as(self, host: str, command: str, *, user: str = "root", environment: dict[str, str] | None = None,
               workdir: str = "/", timeout: float = 60.0) -> ExecResult:  # fmt: skip
        """Run ``command`` once on ``host`` as ``user`` with exactly ``environment``, apart from the agent's
        shell (a check the runner makes, e.g. the shutdown job as cron would run it).

        Its time limit is enforced from the host like the agent's commands are, with every signal confined to
        that host's container, so a job the agent rigged to hang or fork cannot stall the runner.

        Raises:
            HostDied: the host is gone or cannot start a process.
        """
        if self._api is None or host not in self.hosts:
            raise SandboxError(f"no running host {host!r}")
        if not self._booted:
            self._wait_booted()
        handle = self.hosts[host]
        shell = PersistentShell(self._api, handle.container_id, user=user, workdir=workdir,
                                namespace=handle.pid_namespace, environment=environment or {},
                                output_cap=self.output_cap)  # fmt: skip
        try:
            return shell.run(command, timeout=timeout)
        finally:
            shell.close()

    def process_names(self, host: str) -> list[str]:
        """The command names (``comm``) of every process in ``host``'s container, read from the host's /proc."""
        namespace = self.hosts[host].pid_namespace
        names = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and pid_namespace(int(entry.name)) == namespace:
                try:
                    with open(f"/proc/{entry.name}/comm") as f:
                        names.append(f.read().strip())
                except OSError:
                    continue
        return names

    # ------------------------------------------------------- one-off processes and files (a sandbox API)
    @property
    def workdir(self) -> str:
        """Where relative paths and processes without a ``cwd`` start: the agent's home."""
        return f"/home/{self.specs[self.agent_host].agent_user}"

    def run(self, argv: Sequence[str], *, host: str | None = None, input: bytes | str | None = None,
            user: str | None = None, env: dict[str, str] | None = None, cwd: str | None = None,
            timeout: float | None = None) -> ProcessResult:  # fmt: skip
        """Run one process in a host (the agent's by default) apart from the agent's persistent shell: stdin
        from ``input``, stdout and stderr kept apart, as ``user`` (default: the agent's user), with ``env``
        added, in ``cwd`` (relative to :attr:`workdir`, which is also the default), within ``timeout``.

        Raises:
            TimeoutError: the process outlived ``timeout``; it and every process it started were killed.
            PermissionError, FileNotFoundError: ``argv[0]`` cannot be executed, or does not exist.
            SandboxError: no such running host, or the engine refused the call.
        """
        if self._api is None or (host not in self.hosts and host is not None):
            raise SandboxError(f"no running host {host!r}")
        if not self._booted:
            self._wait_booted()
        name = host or self.agent_host
        handle = self.hosts[name]
        data = input.encode("utf-8") if isinstance(input, str) else input
        user = user or self.specs[self.agent_host].agent_user
        workdir = posixpath.join(self.workdir, cwd or ".")
        done = self._runner(name).run(
            argv, input=data, user=user, environment=env, workdir=workdir, timeout=timeout
        )
        if done is not None:
            return done
        return run_process(self._api, handle.container_id, handle.pid_namespace, list(argv), input=data,
                           user=user, environment=env, workdir=workdir, timeout=timeout)  # fmt: skip

    def _runner(self, name: str) -> ProcessRunner:
        with self._runners_lock:
            runner = self._runners.get(name)
            if runner is None:
                handle = self.hosts[name]
                config = self._configs.get(handle.container_id)
                if config is None:
                    config = self._api.inspect_container(handle.container_id).get("Config") or {}
                runner = self._runners[name] = ProcessRunner(self._api, handle.container_id,
                                                             handle.pid_namespace, config)  # fmt: skip
            return runner

    def warm_runners(self) -> None:
        """Open every host's runner on threads now, for a caller that will use ``run`` (an Inspect sample):
        its first call then waits for it, if at all, instead of paying for it."""
        for name in self.hosts:
            self._runner(name).warm()

    def read_file(
        self, host: str, path: str, *, user: str | None = None, max_bytes: int | None = None
    ) -> bytes:
        """The bytes of ``path`` (relative to :attr:`workdir`) on ``host``, read as ``user`` (default: the
        agent's user) with that user's permissions.

        Raises:
            FileNotFoundError, IsADirectoryError, PermissionError: naming the path.
            FileTooLargeError: the file is larger than ``max_bytes`` (checked before anything is read).
        """
        limit = "" if max_bytes is None else str(max_bytes)
        result = self.run(["sh", "-c", _READ, "sh", path, limit], host=host, user=user)
        return _file_result(result, path, "read")

    def write_file(self, host: str, path: str, data: bytes | str, *, user: str | None = None,
                   mode: int | None = None) -> None:  # fmt: skip
        """Write ``data`` to ``path`` (relative to :attr:`workdir`) on ``host`` as ``user`` (default: the agent's
        user), creating missing parent directories as that user; an existing file is replaced, with its mode.

        Raises:
            IsADirectoryError, NotADirectoryError, PermissionError: naming the path.
        """
        argv = ["sh", "-c", _WRITE, "sh", path, "" if mode is None else f"{mode:o}"]
        _file_result(self.run(argv, host=host, user=user, input=data), path, "write")

    def put_file(self, host: str, path: str, data: bytes, *, uid: int = 0, gid: int = 0, mode: int = 0o644,
                 mtime: float | None = None) -> None:  # fmt: skip
        """Place a file through the engine with exact owner, mode and mtime (default now), whatever the
        permissions inside: for setting a scene, not for acting as a user."""
        seed = SeedFile(
            path, data, uid=uid, gid=gid, mode=mode, mtime=time.time() if mtime is None else mtime
        )
        with lifecycle.DOCKER_OPS:
            self._api.put_archive(self.hosts[host].container_id, "/", tar_stream([seed]))

    # ----------------------------------------------------------------- close
    def close(self) -> None:
        """Stop everything. Idempotent and instant: removal finishes in the background (drained at exit)."""
        if self._closed:
            return
        self._closed = True
        lifecycle.OPEN.discard(self)
        disk.WATCH.remove(self)
        if self._shell is not None:
            self._shell.close()
        if os.getpid() == self.owner_pid:
            for runner in self._runners.values():
                runner.close()
        if self._created and self._api is not None:
            if os.getpid() != self.owner_pid:
                return  # a forked child's copy: its parent owns these hosts
            lifecycle.REMOVER.submit(self._api, list(self._created))
            lifecycle.hook_exit()  # a forked worker that closes must still wait for the removal at its exit

    @property
    def closed(self) -> bool:
        return self._closed


# Read and write as a user: the checks name the failure (exit status = errno), the kernel enforces permissions.
_READ = (
    'f=$1; [ -d "$f" ] && exit 21; [ -e "$f" ] || exit 2; [ -r "$f" ] || exit 13; '
    '[ -z "$2" ] || [ "$(stat -L -c %s -- "$f")" -le "$2" ] || exit 27; exec cat -- "$f"'
)
_WRITE = (
    'f=$1; [ -d "$f" ] && exit 21; d=$(dirname -- "$f"); [ -e "$d" ] && [ ! -d "$d" ] && exit 20; '
    'mkdir -p -- "$d" 2>/dev/null || exit 13; [ -e "$f" ] && [ ! -w "$f" ] && exit 13; '
    'cat > "$f" 2>/dev/null || exit 13; [ -z "$2" ] || chmod "$2" -- "$f" || exit 13'
)


class FileTooLargeError(OSError):
    """A file is larger than the ``max_bytes`` a read asked for (nothing of it was read)."""


_ERRORS: dict[int, tuple[type[OSError], str]] = {
    2: (FileNotFoundError, "no such file or directory"),
    27: (FileTooLargeError, "larger than the limit asked for"),
    13: (PermissionError, "permission denied"),
    20: (NotADirectoryError, "a parent is not a directory"),
    21: (IsADirectoryError, "is a directory"),
}


def _file_result(result: ProcessResult, path: str, verb: str) -> bytes:
    if result.returncode in _ERRORS:
        kind, why = _ERRORS[result.returncode]
        raise kind(f"cannot {verb} {path}: {why}")
    if result.returncode:
        raise OSError(f"cannot {verb} {path}: {result.stderr.decode('utf-8', 'replace').strip()}")
    return result.stdout


class InsufficientDisk(SandboxError):
    """The engine's disk cannot hold the hosts' files; raised before any container is created."""


def _gib(n: int) -> str:
    return f"{n / disk.GIB:.2f} GiB"


def _login_environment(user: str) -> dict[str, str]:
    home = f"/home/{user}"
    return {
        "HOME": home, "USER": user, "LOGNAME": user, "SHELL": "/bin/bash", "LANG": "C.UTF-8", "TERM": "dumb",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }  # fmt: skip
