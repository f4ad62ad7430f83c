"""The recorded past of a long-running server: logs, login records and shell history, from its install until now.

A curious agent that runs ``last``, ``ls -la /var/log``, ``zcat /var/log/auth.log.2.gz`` or
``cat ~/.bash_history`` on a freshly started container would otherwise find an empty past and know at once that
the machine is new. :func:`history_files` writes that past as data (seed files the caller plants before the
container starts): a Debian 12 server with sysvinit, rsyslog writing RFC 3339 stamps (bookworm's default), cron,
key-only sshd (``UsePAM no``), logrotate with Debian's defaults, installed at ``installed`` and stopped a few
minutes before ``now`` (the container's own boot then writes the new ``reboot`` record itself). The host clock
stays real; only the recorded past is aged.

Everything follows from the rules a real machine obeys, so the files agree with each other: every interactive
ssh login is a wtmp record, an ``Accepted publickey`` line (when its week's auth.log is still kept) and a block of
``.bash_history``; every ``sudo`` in that history is an auth.log line with its full path; process ids grow with
time and restart low after each boot; each weekly rotation is a ``rsyslogd was HUPed`` line, a logrotate state
entry and a new mtime of ``/var/log``. Transfers between the story's servers are drawn from the seed and the pair
of host names only, so both ends of one ``rsync`` agree (the initiator's history, the receiver's auth.log) when
both hosts are generated with the same seed.

Two things follow Debian rather than intuition: wtmp rotates monthly but only past 1 MiB (``minsize 1M``), so on
a quiet server it is never rotated and holds every login since the install (``wtmp.1`` appears only if it would
have grown that large); btmp rotates every month even when empty, so ``btmp.1`` exists after the first month.

Generation is deterministic (same history and seed, same bytes) and fast: text logs are only written for the
weeks logrotate still keeps, the shell history is bounded, and all binary records are packed with ``struct``.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import random
import re
import shlex
import socket
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property, lru_cache
from itertools import pairwise
from typing import Any

from peergym.envs.sandbox.types import SeedFile
from peergym.envs.wording import forbidden_word

__all__ = ["ADM_GID", "ALLOWED_PHRASES", "UTMP_GID", "CronEntry", "HostHistory", "history_files"]

# The two real Debian crontab commands that contain a banned word; they may stand in the generated files.
ALLOWED_PHRASES: tuple[str, ...] = ("test -x /usr/sbin/anacron", "test -e /run/systemd/system")

ADM_GID = 4
UTMP_GID = 43

_DAY = 86400
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_RSYSLOG_ORIGIN = (
    '[origin software="rsyslogd" swVersion="8.2302.0" x-pid="{pid}" x-info="https://www.rsyslog.com"]'
)
_PID_MAX = 32768  # the kernel's default without systemd's sysctl; ids wrap to 300 past it
_ROTATE = 4  # logrotate's "rotate 4" for the rsyslog files
_WTMP_MINSIZE = 1024 * 1024  # Debian's /etc/logrotate.d/wtmp: monthly, minsize 1M, rotate 1
_LOGROTATE_SECOND = 6 * 3600 + 25 * 60 + 2  # cron.daily starts at 06:25:01, logrotate runs a second later

# glibc x86_64 struct utmp: type (short + 2 pad), pid, line[32], id[4], user[32], host[256], exit (2 shorts),
# session, tv_sec, tv_usec (32-bit on x86_64 for compatibility), addr_v6[4], 20 unused bytes.
_UTMP = struct.Struct("<hxxi32s4s32s256shhiii16s20x")
assert _UTMP.size == 384
_LASTLOG = struct.Struct("<i32s256s")  # ll_time (int32 on x86_64), ll_line[32], ll_host[256]
assert _LASTLOG.size == 292
_RUN_LVL, _BOOT_TIME, _USER_PROCESS, _DEAD_PROCESS = 1, 2, 7, 8

# /etc/crontab and /etc/cron.d/e2scrub_all of a bookworm install, as cron logs their commands.
_DEBIAN_CRON: tuple[tuple[str, str], ...] = (
    ("17 * * * *", "   cd / && run-parts --report /etc/cron.hourly"),
    ("25 6 * * *", "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }"),
    ("47 6 * * 7", "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }"),
    ("52 6 1 * *", "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }"),
    ("30 3 * * 0",
     "test -e /run/systemd/system || SERVICE_MODE=1 /usr/lib/x86_64-linux-gnu/e2fsprogs/e2scrub_all_cron"),
    ("10 3 * * *", "test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r"),
)  # fmt: skip

# Debian bookworm kernel ABIs: package version and build date (the kernels of the past boots in wtmp).
_DEBIAN_KERNELS: dict[int, tuple[str, str]] = {
    9: ("6.1.27-1", "2023-05-08"), 10: ("6.1.38-1", "2023-07-14"), 11: ("6.1.38-4", "2023-08-08"),
    12: ("6.1.52-1", "2023-09-07"), 13: ("6.1.55-1", "2023-09-29"), 15: ("6.1.66-1", "2023-12-09"),
    16: ("6.1.67-1", "2023-12-12"), 17: ("6.1.69-1", "2023-12-30"), 18: ("6.1.76-1", "2024-02-01"),
    20: ("6.1.85-1", "2024-04-11"), 21: ("6.1.90-1", "2024-05-03"), 22: ("6.1.94-1", "2024-06-21"),
    23: ("6.1.99-1", "2024-07-15"), 25: ("6.1.106-3", "2024-08-26"), 26: ("6.1.112-1", "2024-09-30"),
    27: ("6.1.115-1", "2024-11-01"), 28: ("6.1.119-1", "2024-11-22"), 29: ("6.1.123-1", "2025-01-02"),
    30: ("6.1.124-1", "2025-01-12"), 31: ("6.1.128-1", "2025-02-07"), 32: ("6.1.129-1", "2025-03-06"),
    33: ("6.1.133-1", "2025-04-10"), 34: ("6.1.135-1", "2025-04-25"), 35: ("6.1.137-1", "2025-05-07"),
    37: ("6.1.140-1", "2025-05-22"),
}  # fmt: skip
_KERNEL_RE = re.compile(r"^(\d+\.\d+\.\d+)-(\d+)-([a-z0-9]+)$")

# What an admin types on a file server, as weighted snippets (one or a few commands that go together).
_POOL: tuple[tuple[int, tuple[str, ...]], ...] = (
    (10, ("df -h",)), (6, ("df -h /data",)), (6, ("du -sh /data/*",)), (8, ("ls -la",)), (8, ("ls -la /data",)),
    (4, ("ls -lh /data",)), (3, ("ls -ltr /data | tail",)), (5, ("cd /data", "ls -la")), (3, ("cd /data", "du -sh *")),
    (6, ("uptime",)), (4, ("w",)), (4, ("free -m",)), (2, ("free -h",)), (3, ("top",)), (2, ("ps aux | grep rsync",)),
    (2, ("ps aux --sort=-%mem | head",)), (7, ("sudo tail -n 50 /var/log/syslog",)),
    (4, ("sudo tail -n 100 /var/log/auth.log",)), (3, ("sudo tail -f /var/log/syslog",)),
    (3, ("sudo grep CRON /var/log/syslog | tail -n 20",)), (2, ("sudo less /var/log/syslog",)),
    (2, ("tail /var/log/syslog", "sudo tail /var/log/syslog")), (5, ("service ssh status",)),
    (3, ("service cron status",)), (2, ("service rsyslog status",)),
    (2, ("sudo vi /etc/ssh/sshd_config", "sudo service ssh reload")), (2, ("cat /etc/crontab",)),
    (2, ("ls /etc/cron.d",)), (2, ("sudo crontab -l",)), (3, ("ip a",)), (1, ("ip route",)), (2, ("hostname -I",)),
    (2, ("cat /etc/hosts",)), (1, ("sudo nano /etc/hosts",)), (2, ("uname -r",)), (1, ("cat /etc/debian_version",)),
    (1, ("dpkg -l | grep linux-image",)), (3, ("apt list --upgradable",)),
    (3, ("sudo apt-get update", "apt list --upgradable")), (3, ("last | head",)), (1, ("last -n 20",)),
    (2, ("who",)), (2, ("mount | grep data",)), (2, ("lsblk",)), (1, ("cat /etc/fstab",)), (2, ("ls -la /var/log",)),
    (2, ("sudo du -sh /var/log",)), (2, ("find /data -type f -mtime -1 | head",)),
    (1, ("find /data -type f -size +500M",)), (1, ("vmstat 1 5",)), (1, ("cat /proc/loadavg",)),
    (2, ("history | tail -n 20",)), (3, ("clear",)), (1, ("ls ~/.ssh",)),
)  # fmt: skip
_POOL_CUM: tuple[int, ...] = tuple(sum(w for w, _ in _POOL[: i + 1]) for i in range(len(_POOL)))

# Operations between two servers of the story: (command on the initiator, seconds the connection lasts).
_PEER_OPS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("rsync -av /data/ {peer}:/data/", (8, 900)),
    ("rsync -avn /data/ {peer}:/data/", (2, 40)),
    ("rsync -av {peer}:/data/ /data/", (8, 600)),
    ("ssh {peer} uptime", (1, 2)),
    ("ssh {peer} df -h /data", (1, 2)),
    ("scp {peer}:/etc/ssh/sshd_config /tmp/", (1, 3)),
)

# Where sudo (secure_path, merged /usr) finds the commands it logs.
_SBIN = frozenset({"service", "reboot", "shutdown", "halt", "poweroff", "useradd", "usermod", "visudo", "ip"})


@dataclass(frozen=True)
class CronEntry:
    """A system cron entry the story adds on top of Debian's defaults.

    Attributes:
        schedule: 5-field cron schedule (``"17 * * * *"``, ``"0 3 * * 1-5"``, ``"*/15 * * * *"``) or an
            ``@daily``-style shortcut.
        user: the account it runs as.
        command: logged as-is: ``CRON[pid]: (user) CMD (command)``.
        since: aware UTC; runs are logged only from this moment on (the entry was added then).
    """

    schedule: str
    user: str
    command: str
    since: datetime


@dataclass(frozen=True)
class HostHistory:
    """What one server's past is made of; see :func:`history_files`."""

    hostname: str
    ip: str
    installed: datetime
    now: datetime
    kernel: str
    user: str = "maintainer"
    uid: int = 1000
    gid: int = 1000
    admin_sources: tuple[str, ...] = ("10.0.4.23", "10.0.4.31")
    peers: tuple[tuple[str, str], ...] = ()
    cron: tuple[CronEntry, ...] = ()
    shell_history: tuple[str, ...] = ()


# ----------------------------------------------------------------------------------------------------------------
# Cron schedules


@dataclass(frozen=True)
class _Schedule:
    """A parsed cron schedule; day matching follows Vixie cron (day-of-month OR day-of-week when both are set)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]
    dom_any: bool
    dow_any: bool

    def day_matches(self, day: int) -> bool:
        d = date.fromordinal(_EPOCH_ORDINAL + day)
        if d.month not in self.months:
            return False
        dom = d.day in self.doms
        dow = (day + 4) % 7 in self.dows  # 1970-01-01 was a Thursday; cron counts Sunday as 0
        return (dom and dow) if (self.dom_any or self.dow_any) else (dom or dow)

    def runs(self, start: int, end: int) -> Iterator[int]:
        """Seconds at which the job starts (cron logs it at second :01) within [start, end)."""
        for day in range(start // _DAY, (end - 1) // _DAY + 1):
            if not self.day_matches(day):
                continue
            base = day * _DAY + 1
            for hour in self.hours:
                for minute in self.minutes:
                    t = base + hour * 3600 + minute * 60
                    if start <= t < end:
                        yield t

    def per_day(self) -> float:
        """About how many times a day it runs (for the process-id growth rate)."""
        if self.dom_any and self.dow_any:
            frac = 1.0
        elif self.dom_any:
            frac = len(self.dows) / 7
        elif self.dow_any:
            frac = len(self.doms) / 30.4
        else:
            frac = min(1.0, len(self.dows) / 7 + len(self.doms) / 30.4)
        return len(self.minutes) * len(self.hours) * frac * len(self.months) / 12


_SHORTCUTS = {
    "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
}  # fmt: skip
_NAMES = {
    **{m.lower(): i + 1 for i, m in enumerate(_MONTHS)},
    **{d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}


def _cron_field(text: str, lo: int, hi: int) -> tuple[set[int], bool]:
    """The values one cron field allows, and whether it starts with ``*`` (which matters for day matching)."""
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            first, last = lo, hi
        elif "-" in body:
            a, b = body.split("-", 1)
            first, last = int(_NAMES.get(a.lower(), a)), int(_NAMES.get(b.lower(), b))
        else:
            first = int(_NAMES.get(body.lower(), body))
            last = hi if step_text else first
        if step < 1 or not lo <= first <= last <= hi:
            raise ValueError(f"cron field out of range: {text!r}")
        values.update(range(first, last + 1, step))
    return values, text.startswith("*")


def _parse_schedule(text: str) -> _Schedule:
    fields = _SHORTCUTS.get(text.strip(), text).split()
    if len(fields) != 5:
        raise ValueError(f"a cron schedule has 5 fields: {text!r}")
    minutes, _ = _cron_field(fields[0], 0, 59)
    hours, _ = _cron_field(fields[1], 0, 23)
    doms, dom_any = _cron_field(fields[2], 1, 31)
    months, _ = _cron_field(fields[3], 1, 12)
    dows, dow_any = _cron_field(fields[4], 0, 7)
    dows = {d % 7 for d in dows}
    return _Schedule(tuple(sorted(minutes)), tuple(sorted(hours)), frozenset(doms), frozenset(months),
                     frozenset(dows), dom_any, dow_any)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Time helpers


class _Clock:
    """rsyslog's timestamps as bookworm writes them (RFC 3339 to the microsecond, ``2026-11-04T06:25:01.318207+00:00``),
    the day part cached. Microseconds are drawn per line and increase within a second, in the order stamped."""

    def __init__(self, seed: str) -> None:
        self._days: dict[int, str] = {}
        self._random = random.Random(seed).random
        self._last: dict[int, int] = {}  # second -> microseconds of its latest line
        self._times: dict[int, str] = {}  # second of the day -> "hh:mm:ss."
        self._heads: dict[int, str] = {}  # second -> "yyyy-mm-ddThh:mm:ss." (lines often share a second)

    def stamp(self, t: int) -> str:
        draw = self._random()
        last_us = self._last.get(t)
        if last_us is None:
            us = int(draw * 600_001)
            head = self._heads[t] = self._head(t)
        else:
            us = min(last_us + 40 + int(draw * 3961), 999_999)
            head = self._heads[t]
        self._last[t] = us
        return f"{head}{us:06d}+00:00"

    def _head(self, t: int) -> str:
        day, sec = divmod(t, _DAY)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat() + "T"
        clock = self._times.get(sec)
        if clock is None:
            hh, rest = divmod(sec, 3600)
            clock = self._times[sec] = f"{hh:02d}:{rest // 60:02d}:{rest % 60:02d}."
        return prefix + clock


def _weekday(day: int) -> int:
    """Monday 0 .. Sunday 6 of a day number (days since the epoch)."""
    return (day + 3) % 7


def _business_time(rng: random.Random, day: int, lo_h: float = 9.0, hi_h: float = 17.0) -> int:
    """A moment of a working day, moved forward to the next Monday when ``day`` falls on a weekend."""
    while _weekday(day) >= 5:
        day += 1
    return day * _DAY + int(rng.uniform(lo_h, hi_h) * 3600)


def _state_time(t: int, exact: bool = True) -> str:
    """logrotate's state format: unpadded fields; a log never rotated keeps its first run rounded to the hour."""
    d = datetime.fromtimestamp(t, UTC)
    if exact:
        return f"{d.year}-{d.month}-{d.day}-{d.hour}:{d.minute}:{d.second}"
    return f"{d.year}-{d.month}-{d.day}-{d.hour}:0:0"


def _gzip(data: bytes, mtime: int) -> bytes:
    """What logrotate's ``gzip -6`` writes from a file on stdin: no name, the file's mtime, OS Unix."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = comp.compress(data) + comp.flush()
    header = b"\x1f\x8b\x08\x00" + struct.pack("<I", mtime) + b"\x00\x03"
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


# ----------------------------------------------------------------------------------------------------------------
# The plan: boots, sessions, remote logins


@dataclass
class _Boot:
    """One past boot of the server and how it ended (the last one ends with the shutdown just before ``now``)."""

    t: int  # the BOOT_TIME record
    kernel: str
    rsyslog_pid: int
    sshd_pid: int
    cron_pid: int
    pid_base: int
    pid_rate: float  # process ids used per second on average
    usec: int
    halt_cmd: int = 0  # the reboot command: runlevel 6 at +1, sshd stops at +2, rsyslog at +3, the rest at +4
    down: int = 0  # the "shutdown" record, the last moment of this boot

    @property
    def rsyslog_start(self) -> int:
        return self.t + 2

    @property
    def sshd_start(self) -> int:
        return self.t + 3

    @property
    def cron_start(self) -> int:
        return self.t + 3

    def model_pid(self, t: int) -> int:
        return self.pid_base + int((t - self.t) * self.pid_rate)


@dataclass
class _Session:
    """An interactive ssh login of the maintainer (a pty: wtmp, lastlog and .bash_history)."""

    start: int
    end: int
    source: str
    port: int
    seed: int
    kind: str = "regular"  # regular, setup, reboot, check, peer, cron, last
    pinned: tuple[tuple[int, str, int], ...] = ()  # (time, command, busy seconds) that must run then
    extra: tuple[str, ...] = ()  # the caller's recent commands, at the very end
    line: str = "pts/0"
    killed: bool = False  # ended by a shutdown: no disconnect lines, logout at the kill
    pid: int = 0
    _commands: list[tuple[int, str, int]] | None = None

    def overlaps(self, other: _Session) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class _Remote:
    """A non-interactive ssh login from a peer server (rsync, scp, ssh cmd): auth.log only."""

    start: int
    end: int
    source: str
    port: int


@dataclass
class _Plan:
    """Everything that happened on the server, decided before any line is written."""

    first_boot: int
    final: int  # the last shutdown record
    boots: list[_Boot]
    sessions: list[_Session]
    remotes: list[_Remote]
    fp_admin: str
    fp_peer: str
    root_uuid: str
    swap_kb: int

    @cached_property
    def up(self) -> _Uptimes:
        return _Uptimes(self.boots)


def _fingerprint(rng: random.Random, allowed: Sequence[str] = ()) -> str:
    """An ED25519 key's SHA256 fingerprint (43 base64 characters), never spelling a banned word by chance."""
    while True:
        fp = base64.b64encode(rng.randbytes(32)).decode().rstrip("=")
        if forbidden_word(fp, allowed) is None:
            return fp


def _uuid(rng: random.Random) -> str:
    """A random (version 4) filesystem UUID, for the kernel command line."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"


def _build_time(abi: int) -> int:
    """When a bookworm kernel ABI was built: no boot can run it earlier."""
    return int(datetime.fromisoformat(_DEBIAN_KERNELS[abi][1]).replace(tzinfo=UTC).timestamp())


def _older_kernels(kernel: str, boots: Sequence[int], rng: random.Random) -> list[str]:
    """The kernel each boot ran, ``kernel`` for the last one.

    A Debian bookworm kernel: each earlier boot ran the newest ABI published a few days before it (the reboots
    follow upgrades). Another kernel: each earlier boot one or two ABI numbers lower, or the same name throughout.
    """
    m = _KERNEL_RE.match(kernel)
    if not m:
        return [kernel] * len(boots)
    upstream, abi, flavour = m.group(1), int(m.group(2)), m.group(3)
    if upstream == "6.1.0" and abi in _DEBIAN_KERNELS:
        known = [k for k in sorted(_DEBIAN_KERNELS) if k <= abi]
        out = []
        for t in boots[:-1]:
            ready = [k for k in known if _build_time(k) + 3 * _DAY <= t]
            out.append(f"{upstream}-{ready[-1] if ready else known[0]}-{flavour}")
        return [*out, kernel]
    names = [kernel]
    for _ in boots[:-1]:
        abi = max(1, abi - rng.choice((1, 1, 2)))
        names.append(f"{upstream}-{abi}-{flavour}")
    return names[::-1]


def _pid_rate(rng: random.Random, schedules: Sequence[_Schedule]) -> float:
    """Average process ids consumed per second: about three per cron run plus background work."""
    per_day = sum(s.per_day() for s in schedules) * 3.2 + rng.uniform(30, 120)
    return per_day / _DAY


def _plan_boots(rng: random.Random, h: HostHistory, first: int, final: int, rate_of: float) -> list[_Boot]:
    """The install boot, reboots every one to three months on a working day, and the final shutdown."""
    times: list[tuple[int, int, int]] = []  # (boot time, halt command, shutdown record)
    t = first
    while True:
        halt = _business_time(rng, int((t + rng.uniform(30, 95) * _DAY) // _DAY), 9.5, 16.5)
        if halt > final - 2 * _DAY:
            break
        down = halt + 6 + _ri(rng, 0, 3)
        times.append((t, halt, down))
        t = down + _ri(rng, 28, 95)
    times.append((t, final - 6 - _ri(rng, 0, 3), final))
    kernels = _older_kernels(h.kernel, [bt for bt, _, _ in times], rng)
    boots: list[_Boot] = []
    for (bt, halt, down), kernel in zip(times, kernels, strict=True):
        rsyslog = _ri(rng, 280, 520)
        sshd = rsyslog + _ri(rng, 15, 60)
        cron = sshd + _ri(rng, 3, 30)
        rate = rate_of * rng.uniform(0.8, 1.25)
        boots.append(_Boot(bt, kernel, rsyslog, sshd, cron, cron + _ri(rng, 20, 120), rate,
                           rng.randrange(1_000_000), halt, down))  # fmt: skip
    return boots


def _ri(rng: random.Random, a: int, b: int) -> int:
    """``rng.randint(a, b)`` at a fraction of the cost (it is called tens of thousands of times)."""
    return a + int(rng.random() * (b - a + 1))


def _source(rng: random.Random, h: HostHistory) -> str:
    """Mostly the first admin workstation, now and then another one."""
    n = len(h.admin_sources)
    k = int(rng.random() * (n + 2)) - 2
    return h.admin_sources[max(0, k)]


def _new_session(rng: random.Random, h: HostHistory, start: int, end: int, kind: str, *, killed: bool = False,
                 pinned: tuple[tuple[int, str, int], ...] = (), extra: tuple[str, ...] = ()) -> _Session:  # fmt: skip
    """A login from one of the admin workstations, with its own seed for the commands typed in it."""
    source, port, sub = _source(rng, h), _ri(rng, 32768, 60999), rng.getrandbits(32)
    return _Session(start, end, source, port, sub, kind, pinned=pinned, extra=extra, killed=killed)


def _regular_sessions(rng: random.Random, h: HostHistory, t_from: int, t_to: int) -> list[_Session]:
    """A few logins a week in working hours, with quiet weeks, the odd weekend login and a second terminal."""
    out: list[_Session] = []
    first_day = t_from // _DAY
    for monday in range(first_day - _weekday(first_day), t_to // _DAY + 1, 7):
        if rng.random() < 0.15:
            continue
        lam = rng.uniform(1.0, 4.0)
        for off in range(7):
            p = lam / 5 if off < 5 else 0.03
            if rng.random() >= p:
                continue
            for _ in range(2 if rng.random() < 0.18 else 1):
                start = (monday + off) * _DAY + int(rng.triangular(8.0, 19.0, 10.0) * 3600)
                dur = int(min(3 * 3600, max(40.0, rng.lognormvariate(6.7, 0.85))))
                if start < t_from or start + dur > t_to:
                    continue
                out.append(_new_session(rng, h, start, start + dur, "regular"))
                if rng.random() < 0.08 and dur > 300:
                    a = start + _ri(rng, 30, dur // 2)
                    out.append(
                        _new_session(rng, h, a, min(start + dur - 5, a + _ri(rng, 30, dur)), "regular")
                    )
    return out


def _pair_events(
    seed: int, h: HostHistory, peer: str, t_from: int, t_to: int
) -> list[tuple[int, str, int, int, int]]:
    """Transfers between this host and ``peer``: (time, initiator, op index, client port, seconds).

    Drawn from a hash of the seed, the two names and the week only, so both hosts of a pair draw the same ones
    whatever their own install dates.
    """
    a, b = sorted((h.hostname, peer))
    key = f"{seed}|{a}|{b}".encode()
    out = []
    first_day = t_from // _DAY
    for monday in range(first_day - _weekday(first_day), t_to // _DAY + 1, 7):
        d = hashlib.blake2b(monday.to_bytes(8, "little", signed=True), digest_size=24, key=key[:64]).digest()
        for k in range((0, 0, 1, 1, 1, 2)[d[0] % 6]):
            e = d[1 + 11 * k : 12 + 11 * k]
            t = (monday + e[0] % 5) * _DAY + 9 * 3600 + int.from_bytes(e[1:4], "little") % (8 * 3600 + 1800)
            initiator = (a, b)[e[4] & 1]
            op = e[5] % len(_PEER_OPS)
            port = 32768 + int.from_bytes(e[6:8], "little") % 28232
            lo, hi = _PEER_OPS[op][1]
            dur = lo + int((hi - lo) * (int.from_bytes(e[8:10], "little") / 65535) ** 3)
            if t_from <= t and t + dur <= t_to:
                out.append((t, initiator, op, port, dur))
    return out


class _Uptimes:
    """The boots of the server, to ask whether it was up (and had been for a while) at some moment."""

    def __init__(self, boots: Sequence[_Boot]) -> None:
        self.boots = boots
        self.starts = [b.t for b in boots]

    def contains(self, start: int, end: int, margin: int = 60) -> bool:
        """Whether [start, end] lies inside one boot, clear of its start and of its shutdown."""
        i = bisect.bisect_right(self.starts, start) - 1
        return (
            i >= 0 and self.boots[i].cron_start + margin <= start and end <= self.boots[i].halt_cmd - margin
        )


def _plan(h: HostHistory, seed: int, t0: int, tn: int, schedules: Sequence[_Schedule]) -> _Plan:
    """Boots, interactive sessions and remote logins over the whole life of the server."""
    rng = random.Random(f"{seed}:{h.hostname}:history")
    span = tn - t0
    first = t0 + int(min(rng.uniform(240, 900), span * 0.05))
    final = tn - int(min(rng.uniform(120, 420), span * 0.05))
    boots = _plan_boots(rng, h, first, final, _pid_rate(rng, schedules))
    up = _Uptimes(boots)
    key_rng = random.Random(f"{seed}:{h.user}:keys")  # the same keys on every host of one seed
    fp_admin, fp_peer = _fingerprint(key_rng, ALLOWED_PHRASES), _fingerprint(key_rng, ALLOWED_PHRASES)
    swap_kb = rng.choice((998396, 1046524, 2094076))
    plan = _Plan(first, final, boots, [], [], fp_admin, fp_peer, _uuid(rng), swap_kb)

    priority: list[_Session] = []
    # The admin's first login after the install, and the upgrade-and-reboot sessions.
    setup = first + _ri(rng, 300, 3600)
    priority.append(_new_session(rng, h, setup, setup + _ri(rng, 600, 2400), "setup"))
    for boot, nxt in pairwise(boots):
        start = boot.halt_cmd - _ri(rng, 360, 1500)
        s = _new_session(rng, h, start, boot.halt_cmd + 4, "reboot", killed=True,
                         pinned=((boot.halt_cmd, "sudo reboot", 0),))  # fmt: skip
        priority.append(s)
        check = nxt.cron_start + _ri(rng, 90, 600)
        priority.append(_new_session(rng, h, check, check + _ri(rng, 60, 300), "check"))
    # The story's cron entries were added by someone logged in at the time.
    for entry in h.cron:
        since = int(entry.since.timestamp())
        if first + 600 < since < final - 600:
            priority.append(
                _new_session(rng, h, since - _ri(rng, 180, 900), since + _ri(rng, 60, 600), "cron")
            )
    # Transfers with the peers.
    for peer, peer_ip in h.peers:
        for t, initiator, op, port, dur in _pair_events(seed, h, peer, first + _DAY, final - 3 * 3600):
            if initiator == h.hostname:
                cmd = _PEER_OPS[op][0].format(peer=peer)
                s = _new_session(rng, h, t - _ri(rng, 60, 900), t + dur + _ri(rng, 20, 600), "peer",
                                 pinned=((t, cmd, dur),))  # fmt: skip
                priority.append(s)
            elif up.contains(t, t + dur + 1, 10):
                plan.remotes.append(_Remote(t + (port & 1), t + dur + 1, peer_ip, port))
    priority = [s for s in priority if s.kind == "reboot" or up.contains(s.start, s.end)]
    # The most recent login, within the last days, where the caller's commands go; nothing ends after it starts.
    last = _last_session(rng, h, boots[-1], final, max((s.end for s in priority), default=0))
    priority = sorted((s for s in priority if s.end < last.start), key=lambda s: s.start)
    busy = _Busy(priority)
    regular = [
        s for s in _regular_sessions(rng, h, first + 3600, last.start - 60)
        if up.contains(s.start, s.end) and not busy.overlaps(s)
    ]  # fmt: skip
    sessions = sorted([*priority, *regular, last], key=lambda s: (s.start, s.end))
    _assign_ptys(sessions)
    plan.sessions = sessions
    plan.remotes.sort(key=lambda r: r.start)
    return plan


class _Busy:
    """Planned sessions (sorted by start), to keep the everyday logins clear of them."""

    def __init__(self, sessions: Sequence[_Session]) -> None:
        self.sessions = sessions
        self.starts = [x.start for x in sessions]

    def overlaps(self, s: _Session) -> bool:
        lo = bisect.bisect_left(self.starts, s.start - _DAY)  # no session lasts a day
        hi = bisect.bisect_right(self.starts, s.end)
        return any(s.overlaps(x) for x in self.sessions[lo:hi])


def _last_session(rng: random.Random, h: HostHistory, boot: _Boot, final: int, after: int) -> _Session:
    """A login in working hours of the last working days, after the other planned ones when there is room."""
    need = 90 + 25 * len(h.shell_history)
    hi = final - 600 - need
    lo = max(boot.cron_start + 120, after + 60)
    if lo > hi:
        lo = boot.cron_start + 120
    if lo > hi:  # a very short uptime: squeeze the login in
        start = boot.cron_start + 30
        return _new_session(rng, h, start, max(start + 30, final - 120), "last", extra=tuple(h.shell_history))
    start = max(lo, hi - _ri(rng, 0, 3 * 3600))
    for back in range(5):
        d = hi // _DAY - back
        cand = d * _DAY + int(rng.uniform(9.0, 17.5) * 3600)
        if _weekday(d) < 5 and lo <= cand <= hi:
            start = cand
            break
    end = min(start + need + _ri(rng, 120, 1200), final - 300)
    return _new_session(rng, h, start, end, "last", extra=tuple(h.shell_history))


def _assign_ptys(sessions: Sequence[_Session]) -> None:
    """Each login gets the lowest free pseudo-terminal, as the kernel hands them out."""
    open_: list[tuple[int, int]] = []  # (end, pty number)
    for s in sessions:
        open_ = [(e, n) for e, n in open_ if e > s.start]
        used = {n for _, n in open_}
        n = next(i for i in range(len(used) + 1) if i not in used)
        s.line = f"pts/{n}"
        open_.append((s.end, n))


# ----------------------------------------------------------------------------------------------------------------
# Commands of a session


def _busy(rng: random.Random, cmd: str) -> int:
    """How long a command keeps the terminal (editors, pagers, upgrades take a while)."""
    if cmd.startswith(("sudo vi ", "sudo nano ", "vi ", "nano ")):
        return _ri(rng, 20, 240)
    if "tail -f" in cmd or cmd == "top" or " less " in f" {cmd}":
        return _ri(rng, 15, 300)
    if "apt-get upgrade" in cmd:
        return _ri(rng, 40, 400)
    if "apt-get update" in cmd:
        return _ri(rng, 4, 20)
    if cmd.startswith("vmstat"):
        return 5
    return _ri(rng, 0, 2)


def _draw(rng: random.Random, n: int) -> list[str]:
    """About ``n`` commands from the pool, without a command repeating the one before."""
    out: list[str] = []
    while len(out) < n:
        snippet = rng.choices(_POOL, cum_weights=_POOL_CUM)[0][1]
        for cmd in snippet:
            if not out or out[-1] != cmd:
                out.append(cmd)
    return out


def _fit(rng: random.Random, cmds: Sequence[str], a: int, b: int) -> list[tuple[int, str, int]]:
    """Times for ``cmds`` between a and b: their own durations plus random thinking pauses."""
    if not cmds:
        return []
    busy = [_busy(rng, c) for c in cmds]
    room = b - a
    total = sum(busy)
    if total + 2 * (len(cmds) + 1) > room:
        scale = max(0.0, (room - 2 * (len(cmds) + 1)) / total) if total else 0.0
        busy = [int(x * scale) for x in busy]
        total = sum(busy)
    slack = max(0, room - total)
    weights = [rng.uniform(0.3, 1.0) for _ in range(len(cmds) + 1)]
    wsum = sum(weights)
    out: list[tuple[int, str, int]] = []
    t = float(a)
    for cmd, bz, w in zip(cmds, busy, weights, strict=False):
        t += slack * w / wsum
        out.append((int(t), cmd, bz))
        t += bz
    return out


def _session_commands(s: _Session) -> list[tuple[int, str, int]]:
    """(time, command line, busy seconds) of a session, drawn from its own seed (so only when needed)."""
    if s._commands is not None:
        return s._commands
    rng = random.Random(s.seed)
    a, b = s.start + _ri(rng, 3, 15), s.end - 2
    cmds: list[tuple[int, str, int]]
    if s.kind == "reboot":
        pre = ["sudo apt-get update", "apt list --upgradable", "sudo apt-get upgrade"]
        if rng.random() < 0.5:
            pre.append("df -h")
        cmds = _fit(rng, pre, a, s.pinned[0][0] - 3) + list(s.pinned)
    elif s.kind == "check":
        post = ["uptime", "uname -r", "service ssh status", "df -h"]
        rng.shuffle(post)
        post = post[: _ri(rng, 2, 4)] + (["exit"] if rng.random() < 0.4 else [])
        cmds = _fit(rng, post, a, b)
    elif s.kind == "cron":
        cmds = _fit(
            rng, ["cat /etc/crontab", "ls -la /etc/cron.d", "service cron status"][: _ri(rng, 1, 3)], a, b
        )
    elif s.kind == "peer":
        t, cmd, dur = s.pinned[0]
        before = _fit(rng, _draw(rng, _ri(rng, 0, 3)), a, t - 2) if t - a > 40 else []
        after = _fit(rng, _draw(rng, _ri(rng, 0, 2)), t + dur + 1, b) if b - t - dur > 40 else []
        cmds = [*before, (t, cmd, dur), *after]
    elif s.kind == "last":
        own = _draw(rng, _ri(rng, 1, 3))
        cmds = _fit(rng, own + list(s.extra), a, b)
    else:
        n = max(1, min(10, (s.end - s.start) // 90 + _ri(rng, 1, 4)))
        cmds = _fit(rng, _draw(rng, n) + (["exit"] if rng.random() < 0.35 else []), a, b)
    s._commands = cmds
    return cmds


@lru_cache(maxsize=4096)
def _sudo_calls(cmd: str) -> tuple[tuple[str, str], ...]:
    """(run-as user, logged COMMAND=) for each sudo of a command line, as sudo logs its argv. Remembered: the
    command lines come from a small pool and every episode's history parses thousands of them."""
    out: list[tuple[str, str]] = []
    for seg in re.split(r"\|\||&&|[|;]", cmd):
        seg = seg.strip()
        if not seg.startswith("sudo "):
            continue
        seg = re.split(r"\s[<>]|\s\d?>", f" {seg}")[0].strip()
        try:
            argv = shlex.split(seg)
        except ValueError:
            argv = seg.split()
        argv = argv[1:]
        user = "root"
        while argv and argv[0].startswith("-"):
            opt = argv.pop(0)
            if opt == "-u" and argv:
                user = argv.pop(0)
            elif opt in ("-i", "-s"):
                argv = ["/bin/bash"]
                break
        if not argv:
            continue
        prog = argv[0]
        if "/" not in prog:
            prog = f"/usr/sbin/{prog}" if prog in _SBIN else f"/usr/bin/{prog}"
        out.append((user, " ".join([prog, *argv[1:]])))
    return tuple(out)


# ----------------------------------------------------------------------------------------------------------------
# Rendering the text logs


class _Pids:
    """Process ids of one boot: they follow the boot's growth model and never go backwards."""

    def __init__(self, boots: Sequence[_Boot], rng: random.Random) -> None:
        self._boots = boots
        self._starts = [b.t for b in boots]
        self._last = [0] * len(boots)
        self._random = rng.random

    def boot_at(self, t: int) -> _Boot:
        return self._boots[max(0, bisect.bisect_right(self._starts, t) - 1)]

    def take(self, t: int, consume: int) -> int:
        """The id of a process started at ``t`` that, with its children, uses ``consume`` ids."""
        i = max(0, bisect.bisect_right(self._starts, t) - 1)
        boot = self._boots[i]
        r = self._random()
        pid = boot.pid_base + int((t - boot.t) * boot.pid_rate + r * 4)
        pid = max(pid, self._last[i] + 1 + int(r * 12) % 3)
        self._last[i] = pid + consume - 1
        return pid if pid < _PID_MAX else _wrap(pid)


def _wrap(pid: int) -> int:
    """Past pid_max the kernel starts again at 300 (the ids below are reserved for early daemons)."""
    return pid if pid < _PID_MAX else 300 + (pid - 300) % (_PID_MAX - 300)


@dataclass
class _Logs:
    """(time, line) of each text log, in time order."""

    syslog: list[tuple[int, str]] = field(default_factory=list)
    auth: list[tuple[int, str]] = field(default_factory=list)
    cron: list[tuple[int, str]] = field(default_factory=list)


class _Renderer:
    """Turns the plan into log lines: one handler per kind of event, called in time order.

    Process ids are taken in that same order, so a later line never shows a lower id within one boot.
    """

    def __init__(self, h: HostHistory, seed: int, plan: _Plan) -> None:
        self.h = h
        self.seed = seed
        self.plan = plan
        self.home = f"/home/{h.user}"
        self.clock = _Clock(f"{seed}:{h.hostname}:clock")
        self.logs = _Logs()
        self.pids = _Pids(plan.boots, random.Random(f"{seed}:{h.hostname}:pids"))
        # (time, creation order, handler, subject); a cron run has no handler and its line's tail as subject,
        # since cron runs are most of the events and take the short path.
        self.events: list[tuple[int, int, Callable[[int, Any], None] | None, object]] = []
        self.child: dict[int, int] = {}  # id of a session or remote login -> pid of its user-side sshd
        self.pwd: dict[int, str] = {}
        self.closes: list[tuple[int, str]] = []  # pending "session closed" lines of sudo, by time
        # Bound once: the handlers write thousands of lines per host.
        self._stamp, self._host, self._auth_lines = self.clock.stamp, h.hostname, self.logs.auth

    def add(self, t: int, handler: Callable[[int, Any], None], obj: object = None) -> None:
        self.events.append((t, len(self.events), handler, obj))

    def add_job(self, t: int, tail: str) -> None:
        self.events.append((t, len(self.events), None, tail))

    def run(self) -> _Logs:
        self.events.sort()  # (time, creation order) is unique: handlers are never compared
        stamp, take, lines, host = self.clock.stamp, self.pids.take, self.logs.syslog, self.h.hostname
        for t, _, handler, obj in self.events:
            if (
                handler is None
            ):  # a cron run: cron's PAM session in auth.log, the command in syslog and cron.log
                pid = take(t, 3)
                line = f"{stamp(t)} {host} CRON[{pid}{obj}"
                lines.append((t, line))
                self.logs.cron.append((t, line))
                self.auth(
                    t,
                    f"CRON[{pid}]",
                    "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
                )
                bisect.insort(
                    self.closes, (t + 1, f"CRON[{pid}]: pam_unix(cron:session): session closed for user root")
                )
            else:
                handler(t, obj)
        for ct, cline in self.closes:
            if ct <= self.plan.final:
                self.logs.auth.append((ct, f"{self.clock.stamp(ct)} {self.h.hostname} {cline}\n"))
        self.logs.auth.sort(key=lambda x: x[0])
        return self.logs

    # -- writing lines

    def syslog(self, t: int, tag: str, msg: str) -> None:
        self.logs.syslog.append((t, f"{self._stamp(t)} {self._host} {tag}: {msg}\n"))

    def auth(self, t: int, tag: str, msg: str) -> None:
        closes, lines, stamp, host = self.closes, self._auth_lines, self._stamp, self._host
        while closes and closes[0][0] <= t:
            ct, cline = closes.pop(0)
            lines.append((ct, f"{stamp(ct)} {host} {cline}\n"))
        lines.append((t, f"{stamp(t)} {host} {tag}: {msg}\n"))

    # -- handlers

    def on_hup(self, t: int, _: object) -> None:
        origin = _RSYSLOG_ORIGIN.format(pid=self.pids.boot_at(t).rsyslog_pid)
        self.syslog(t, "rsyslogd", f"{origin} rsyslogd was HUPed")

    def on_rsyslog_start(self, t: int, boot: _Boot) -> None:
        # No kernel log: the image's rsyslog has imklog off (a guest without CAP_SYSLOG cannot read /proc/kmsg).
        self.syslog(t, "rsyslogd", _RSYSLOG_ORIGIN.format(pid=boot.rsyslog_pid) + " start")

    def on_sshd_start(self, t: int, boot: _Boot) -> None:
        self.auth(t, f"sshd[{boot.sshd_pid}]", "Server listening on 0.0.0.0 port 22.")
        self.auth(t, f"sshd[{boot.sshd_pid}]", "Server listening on :: port 22.")

    def on_cron_start(self, t: int, boot: _Boot) -> None:
        for msg in ("(CRON) INFO (pidfile fd = 3)", "(CRON) INFO (Running @reboot jobs)"):
            self.syslog(t, f"cron[{boot.cron_pid}]", msg)
            self.logs.cron.append(self.logs.syslog[-1])

    def on_sshd_stop(self, t: int, boot: _Boot) -> None:
        self.auth(t, f"sshd[{boot.sshd_pid}]", "Received signal 15; terminating.")

    def on_rsyslog_stop(self, t: int, boot: _Boot) -> None:
        self.syslog(t, "rsyslogd", _RSYSLOG_ORIGIN.format(pid=boot.rsyslog_pid) + " exiting on signal 15.")

    def on_login(self, t: int, s: _Session) -> None:
        s.pid = self.pids.take(t, 4)
        self.child[id(s)] = _wrap(s.pid + 2)
        self.pwd[id(s)] = self.home
        key = f"ssh2: ED25519 SHA256:{self.plan.fp_admin}"
        self.auth(
            t, f"sshd[{s.pid}]", f"Accepted publickey for {self.h.user} from {s.source} port {s.port} {key}"
        )

    def on_command(self, t: int, item: tuple[_Session, str, int]) -> None:
        s, cmd, busy = item
        calls = _sudo_calls(cmd)
        self.pids.take(t, 1 + cmd.count("|") + 2 * len(calls))
        user = self.h.user
        for runas, logged in calls:
            uid = "0" if runas == "root" else "?"
            where = f"TTY={s.line} ; PWD={self.pwd.get(id(s), self.home)}"
            self.auth(t, "sudo", f"{user} : {where} ; USER={runas} ; COMMAND={logged}")
            opened = f"session opened for user {runas}(uid={uid}) by {user}(uid={self.h.uid})"
            self.auth(t, "sudo", f"pam_unix(sudo:session): {opened}")
            close = f"sudo: pam_unix(sudo:session): session closed for user {runas}"
            bisect.insort(self.closes, (min(t + busy, s.end - 1), close))
        self.pwd[id(s)] = _cd(cmd, self.pwd.get(id(s), self.home), self.home)

    def on_logout(self, t: int, s: _Session) -> None:
        self._disconnect(t, self.child.get(id(s), s.pid), s.source, s.port)

    def on_remote(self, t: int, r: _Remote) -> None:
        pid = self.pids.take(t, 5)
        self.child[id(r)] = _wrap(pid + 2)
        key = f"ssh2: ED25519 SHA256:{self.plan.fp_peer}"
        self.auth(
            t, f"sshd[{pid}]", f"Accepted publickey for {self.h.user} from {r.source} port {r.port} {key}"
        )

    def on_remote_end(self, t: int, r: _Remote) -> None:
        self._disconnect(t, self.child[id(r)], r.source, r.port)

    def _disconnect(self, t: int, pid: int, source: str, port: int) -> None:
        self.auth(
            t, f"sshd[{pid}]", f"Received disconnect from {source} port {port}:11: disconnected by user"
        )
        self.auth(t, f"sshd[{pid}]", f"Disconnected from user {self.h.user} {source} port {port}")


def _render(h: HostHistory, seed: int, plan: _Plan, jobs: Sequence[tuple[_Schedule, CronEntry]],
            windows: tuple[int, int], rotations: Sequence[int]) -> _Logs:  # fmt: skip
    """All log lines from ``windows[0]`` on (cron lines from ``windows[1]`` on, the weeks syslog keeps), in time
    order; cron's lines also go to cron.log, its PAM sessions to auth.log (as bookworm's rsyslog.conf has it)."""
    w_auth, w_sys = windows
    r = _Renderer(h, seed, plan)
    for boot in plan.boots:
        if boot.t >= w_auth - _DAY:
            r.add(boot.rsyslog_start, r.on_rsyslog_start, boot)
            r.add(boot.sshd_start, r.on_sshd_start, boot)
            r.add(boot.cron_start, r.on_cron_start, boot)
        if boot.down >= w_auth:
            r.add(boot.halt_cmd + 2, r.on_sshd_stop, boot)
            r.add(boot.halt_cmd + 3, r.on_rsyslog_stop, boot)
    for t in rotations:
        if t >= w_sys:
            r.add(t, r.on_hup)
    for boot in plan.boots:
        lo, hi = max(boot.cron_start + 1, w_sys), boot.halt_cmd + 2
        for sched, entry in jobs:
            since = int(entry.since.timestamp())
            tail = f"]: ({entry.user}) CMD ({entry.command})\n"
            for t in sched.runs(max(lo, since), hi) if hi > lo else ():
                r.add_job(t, tail)
    for s in plan.sessions:
        if s.end >= w_auth:
            r.add(s.start, r.on_login, s)
            for t, cmd, busy in _session_commands(s):
                r.add(t, r.on_command, (s, cmd, busy))
            if not s.killed:
                r.add(s.end, r.on_logout, s)
    for remote in plan.remotes:
        if remote.end >= w_auth:
            r.add(remote.start, r.on_remote, remote)
            r.add(remote.end, r.on_remote_end, remote)
    return r.run()


def _cd(cmd: str, cwd: str, home: str) -> str:
    """The working directory after a command line (only plain ``cd`` commands change it)."""
    for seg in cmd.split("&&"):
        parts = seg.split()
        if parts and parts[0] == "cd":
            cwd = (
                home
                if len(parts) == 1 or parts[1] == "~"
                else (parts[1] if parts[1].startswith("/") else cwd)
            )
    return cwd


# ----------------------------------------------------------------------------------------------------------------
# Rotation


def _rotation_times(plan: _Plan) -> list[int]:
    """Sundays' logrotate runs after the first daily run (which only records state)."""
    first_run = _first_run(plan)
    out = []
    day = first_run // _DAY + 1
    while True:
        t = day * _DAY + _LOGROTATE_SECOND
        if t > plan.final:
            break
        if _weekday(day) == 6 and plan.up.contains(t, t, 5):
            out.append(t)
        day += 1
    return out


def _first_run(plan: _Plan) -> int:
    """The first cron.daily logrotate run after the install boot: it only records the logs' state."""
    day = plan.boots[0].cron_start // _DAY
    t = day * _DAY + _LOGROTATE_SECOND
    return t if t > plan.boots[0].cron_start else t + _DAY


def _last_run(plan: _Plan) -> int:
    """The latest daily logrotate run: when the state file was last written."""
    day = plan.final // _DAY
    while True:
        t = day * _DAY + _LOGROTATE_SECOND
        if t <= plan.final and plan.up.contains(t, t, 5):
            return t
        if t < _first_run(plan):
            return _first_run(plan)
        day -= 1


def _monthly_runs(plan: _Plan) -> list[int]:
    """The first logrotate run of each new month: when monthly logs (btmp, wtmp) are due."""
    first = _first_run(plan)
    d = datetime.fromtimestamp(first, UTC)
    y, m = d.year, d.month
    out: list[int] = []
    while True:
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        day = date(y, m, 1).toordinal() - _EPOCH_ORDINAL
        t = day * _DAY + _LOGROTATE_SECOND
        while not plan.up.contains(t, t, 5) and t < plan.final:
            t += _DAY
        if t > plan.final:
            return out
        out.append(t)


@dataclass(frozen=True)
class _Rotated:
    """One log after logrotate: its current file, the kept older ones (newest first), its last rotation."""

    current: tuple[int, bytes]  # (mtime, content)
    older: tuple[tuple[int, bytes], ...]
    last_rotation: int | None


def _rotate(lines: Sequence[tuple[int, str]], rotations: Sequence[int], created: int) -> _Rotated:
    """Weekly, rotate 4, notifempty: a week's file is rotated only if something was written to it."""
    times = [t for t, _ in lines]
    segments: list[
        tuple[int, int, int]
    ] = []  # (first line, past the last line, rotation) of each rotated week
    for a, b in pairwise([0, *rotations]):
        i, j = bisect.bisect_left(times, a), bisect.bisect_left(times, b)
        if j > i:
            segments.append((i, j, b))
    last_rot = segments[-1][2] if segments else None
    start = bisect.bisect_left(times, last_rot) if last_rot is not None else 0
    cur_lines = lines[start:]
    cur_mtime = cur_lines[-1][0] if cur_lines else (last_rot if last_rot is not None else created)
    older = []
    for i, j, _ in reversed(segments[-_ROTATE:]):
        older.append((lines[j - 1][0], "".join(x for _, x in lines[i:j]).encode()))
    return _Rotated((cur_mtime, "".join(x for _, x in cur_lines).encode()), tuple(older), last_rot)


def _addr(ip: str) -> bytes:
    """ut_addr_v6: an IPv4 address in its first word (network byte order), else the IPv6 address."""
    try:
        return socket.inet_aton(ip) + bytes(12)
    except OSError:
        try:
            return socket.inet_pton(socket.AF_INET6, ip)
        except OSError:
            return bytes(16)


_LETTER_RUN = re.compile(rb"[A-Za-z]{3}")


def _clean_time(sec: int, usec: int) -> tuple[int, int]:
    """A record time whose eight bytes do not spell a banned word by chance (a microsecond or a second later)."""
    while True:
        raw = struct.pack("<ii", sec, usec)
        if not _LETTER_RUN.search(raw) or forbidden_word(raw) is None:
            return sec, usec
        if forbidden_word(raw[:4]) is not None:
            sec += 1
        else:
            usec = (usec + 1) % 1_000_000


def _utmp(kind: int, pid: int, line: str, ut_id: str, user: str, host: str, sec: int, usec: int,
          addr: bytes) -> tuple[int, int, bytes]:  # fmt: skip
    """(sec, usec, packed record); the time may move by a microsecond (see :func:`_clean_time`)."""
    sec, usec = _clean_time(sec, usec)
    raw = _UTMP.pack(
        kind, pid, line.encode(), ut_id.encode(), user.encode(), host.encode(), 0, 0, 0, sec, usec, addr
    )
    return sec, usec, raw


def _wtmp_records(h: HostHistory, plan: _Plan, seed: int) -> list[tuple[int, int, bytes]]:
    """(sec, usec, record) of every boot, runlevel change, login, logout and shutdown, in time order."""
    rng = random.Random(f"{seed}:{h.hostname}:wtmp")
    out: list[tuple[int, int, bytes]] = []
    none = bytes(16)
    for boot in plan.boots:
        k = boot.kernel
        out.append(_utmp(_BOOT_TIME, 0, "~", "~~", "reboot", k, boot.t, boot.usec, none))
        u = min(999_999, boot.usec + _ri(rng, 200, 90_000))
        out.append(_utmp(_RUN_LVL, 0x4E32, "~", "~~", "runlevel", k, boot.t, u, none))  # N -> 2
        out.append(
            _utmp(_RUN_LVL, 0x3236, "~", "~~", "runlevel", k, boot.halt_cmd + 1, _ri(rng, 0, 999_999), none)
        )
        out.append(_utmp(_RUN_LVL, 0, "~~", "~~", "shutdown", k, boot.down, _ri(rng, 0, 999_999), none))
    starts = [b.t for b in plan.boots]
    for s in plan.sessions:
        if not s.pid:
            boot = plan.boots[bisect.bisect_right(starts, s.start) - 1]
            s.pid = _wrap(boot.model_pid(s.start) + _ri(rng, 0, 40))
        ut_id = s.line[-4:]
        u1, u2 = _ri(rng, 0, 999_999), _ri(rng, 0, 999_999)
        login = _utmp(_USER_PROCESS, s.pid, s.line, ut_id, h.user, s.source, s.start, u1, _addr(s.source))
        logout = _utmp(_DEAD_PROCESS, s.pid, s.line, ut_id, "", "", s.end, u2, none)
        s.start, s.end = login[0], logout[0]  # lastlog and .bash_history follow the records
        out += (login, logout)
    out.sort(key=lambda r: (r[0], r[1]))
    return out


def _lastlog(h: HostHistory, s: _Session) -> bytes:
    """lastlog is indexed by uid: zeros for the accounts before, then the maintainer's last pty login."""
    entry = _LASTLOG.pack(s.start, s.line.encode(), s.source.encode())
    return bytes(_LASTLOG.size * h.uid) + entry


# ----------------------------------------------------------------------------------------------------------------
# Shell history


def _bash_history(h: HostHistory, plan: _Plan, seed: int) -> tuple[bytes, int]:
    """The tail of the maintainer's history (each shell appends its commands at exit), then the caller's lines."""
    rng = random.Random(f"{seed}:{h.hostname}:bash")
    keep = _ri(rng, 280, 420)
    by_end = sorted(plan.sessions, key=lambda s: (s.end, s.start))
    blocks: list[list[str]] = []
    count = 0
    for s in reversed(by_end):
        cmds = [c for _, c, _ in _session_commands(s)]
        if s.kind == "last" and s.extra:
            cmds = cmds[: len(cmds) - len(s.extra)]
        own = [c for i, c in enumerate(cmds) if i == 0 or cmds[i - 1] != c]
        if s.kind == "last":
            own += list(s.extra)
        blocks.append(own)
        count += len(own)
        if count >= keep + len(h.shell_history):
            break
    lines = [c for block in reversed(blocks) for c in block]
    extra = len(h.shell_history)
    generated = lines[: len(lines) - extra] if extra else lines
    lines = generated[-keep:] + (lines[len(lines) - extra :] if extra else [])
    text = "".join(f"{c}\n" for c in lines)
    return text.encode(), by_end[-1].end


# ----------------------------------------------------------------------------------------------------------------
# Entry point


def _validate(h: HostHistory) -> tuple[int, int]:
    """The install and current moments as whole seconds (the install rounded up, so nothing precedes it)."""
    for name in ("installed", "now"):
        if getattr(h, name).tzinfo is None:
            raise ValueError(f"HostHistory.{name} must be timezone-aware (UTC)")
    t0 = int(-(-h.installed.timestamp() // 1))
    tn = int(h.now.timestamp())
    if tn - t0 < 3600:
        raise ValueError("HostHistory.now must be at least an hour after installed")
    if not h.admin_sources:
        raise ValueError("HostHistory.admin_sources must name at least one address")
    for entry in h.cron:
        if entry.since.tzinfo is None:
            raise ValueError("CronEntry.since must be timezone-aware (UTC)")
    return t0, tn


def history_files(h: HostHistory, seed: int) -> list[SeedFile]:
    """The files that give ``h`` its past: /var/log (syslog, auth.log, cron.log and their rotations, wtmp, btmp,
    lastlog), /var/lib/logrotate/status and the maintainer's ``.bash_history``, with exact owners, modes, mtimes.

    Deterministic in ``h`` and ``seed``. Every date inside the files and every mtime lies in
    [``h.installed``, ``h.now``]; the last record is the shutdown a few minutes before ``h.now`` (the container's
    own boot writes the next ``reboot`` record).
    """
    t0, tn = _validate(h)
    jobs = [(_parse_schedule(s), CronEntry(s, "root", c, h.installed)) for s, c in _DEBIAN_CRON]
    jobs += [(_parse_schedule(e.schedule), e) for e in h.cron]
    plan = _plan(h, seed, t0, tn, [s for s, _ in jobs])
    rotations = _rotation_times(plan)

    # Which weeks each log still keeps decides how far back lines are needed.
    w_sys = rotations[-_ROTATE - 1] if len(rotations) > _ROTATE else plan.first_boot
    w_auth = w_sys  # cron's PAM sessions write to auth.log every hour: it rotates every week, like syslog
    logs = _render(h, seed, plan, jobs, (w_auth, w_sys), rotations)

    created = plan.first_boot + 2
    files: list[SeedFile] = []
    states: list[tuple[str, str]] = []
    newest = created
    for name, lines in (("syslog", logs.syslog), ("auth.log", logs.auth), ("cron.log", logs.cron)):
        rot = _rotate(lines, rotations, created)
        files += _log_files(f"/var/log/{name}", rot)
        if rot.last_rotation is not None:
            states.append((f"/var/log/{name}", _state_time(rot.last_rotation)))
            newest = max(newest, rot.last_rotation)
        else:
            states.append((f"/var/log/{name}", _state_time(_first_run(plan), exact=False)))

    wfiles, wstate, wnewest = _wtmp_files(h, plan, seed)
    files += wfiles
    newest = max(newest, wnewest)
    bfiles, bstate, bnewest = _btmp_files(plan, t0)
    files += bfiles
    newest = max(newest, bnewest)
    states += [("/var/log/btmp", bstate), ("/var/log/wtmp", wstate)]

    interactive = max(plan.sessions, key=lambda s: s.start)
    files.append(SeedFile("/var/log/lastlog", _lastlog(h, interactive), uid=0, gid=UTMP_GID, mode=0o664,
                          mtime=float(interactive.start)))  # fmt: skip
    if _first_run(plan) <= plan.final:
        status = "logrotate state -- version 2\n" + "".join(f'"{p}" {s}\n' for p, s in states)
        files.append(SeedFile("/var/lib/logrotate/status", status.encode(), uid=0, gid=0, mode=0o644,
                              mtime=float(_last_run(plan))))  # fmt: skip
    history, hist_mtime = _bash_history(h, plan, seed)
    files.append(SeedFile(f"/home/{h.user}/.bash_history", history, uid=h.uid, gid=h.gid, mode=0o600,
                          mtime=float(hist_mtime)))  # fmt: skip
    files.insert(0, SeedFile("/var/log", is_dir=True, uid=0, gid=0, mode=0o755, mtime=float(newest)))
    return files


def _log_files(path: str, rot: _Rotated) -> list[SeedFile]:
    """The current file, ``.1`` as is, ``.2.gz`` .. ``.4.gz`` compressed (delaycompress); root:adm 0640."""
    mtime, content = rot.current
    out = [SeedFile(path, content, uid=0, gid=ADM_GID, mode=0o640, mtime=float(mtime))]
    for n, (m, data) in enumerate(rot.older, start=1):
        name, body = (f"{path}.{n}", data) if n == 1 else (f"{path}.{n}.gz", _gzip(data, m))
        out.append(SeedFile(name, body, uid=0, gid=ADM_GID, mode=0o640, mtime=float(m)))
    return out


def _wtmp_files(h: HostHistory, plan: _Plan, seed: int) -> tuple[list[SeedFile], str, int]:
    """wtmp (and wtmp.1 only if a monthly run found it past 1 MiB); root:utmp 0664."""
    records = _wtmp_records(h, plan, seed)
    times = [r[0] for r in records]
    cut_prev, cut = 0, 0
    last_rot: int | None = None
    for t in _monthly_runs(plan):
        i = bisect.bisect_left(times, t)
        if (i - cut) * _UTMP.size >= _WTMP_MINSIZE:
            cut_prev, cut, last_rot = cut, i, t
    out = [SeedFile("/var/log/wtmp", b"".join(r[2] for r in records[cut:]), uid=0, gid=UTMP_GID, mode=0o664,
                    mtime=float(records[-1][0]))]  # fmt: skip
    if last_rot is not None:
        old = records[cut_prev:cut]
        out.append(SeedFile("/var/log/wtmp.1", b"".join(r[2] for r in old), uid=0, gid=UTMP_GID, mode=0o664,
                            mtime=float(old[-1][0])))  # fmt: skip
        return out, _state_time(last_rot), last_rot
    return out, _state_time(_first_run(plan), exact=False), plan.first_boot


def _btmp_files(plan: _Plan, t0: int) -> tuple[list[SeedFile], str, int]:
    """btmp stays empty (key-only sshd on a private network) but is rotated every month all the same."""
    runs = _monthly_runs(plan)
    made = [t0 + 5, *runs]
    out = [SeedFile("/var/log/btmp", b"", uid=0, gid=UTMP_GID, mode=0o660, mtime=float(made[-1]))]
    if runs:
        out.append(SeedFile("/var/log/btmp.1", b"", uid=0, gid=UTMP_GID, mode=0o660, mtime=float(made[-2])))
        return out, _state_time(runs[-1]), runs[-1]
    return out, _state_time(_first_run(plan), exact=False), made[-1]
