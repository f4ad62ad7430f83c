"""The aged past of a server (logs, wtmp, lastlog, shell history) is plausible, consistent and deterministic."""

from __future__ import annotations

import gzip
import re
import shutil
import socket
import struct
import subprocess
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from peergym.envs.history import ALLOWED_PHRASES, CronEntry, HostHistory, history_files
from peergym.envs.sandbox.types import SeedFile
from peergym.envs.wording import forbidden_word

INSTALLED = datetime(2024, 5, 14, 9, 12, 40, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 10, 3, 17, tzinfo=UTC)  # a Tuesday
CHECK_SINCE = datetime(2026, 11, 18, 14, 30, tzinfo=UTC)
CHECK = CronEntry("0 7 * * *", "root", "/usr/local/sbin/check-replication --quiet", CHECK_SINCE)
RECENT = ("sudo crontab -l", "ls -la /data", "df -h /data", "sudo tail -n 20 /var/log/syslog")

UTMP = struct.Struct("<hxxi32s4s32s256shhiii16s20x")
LASTLOG = struct.Struct("<i32s256s")
# bookworm's rsyslog: RFC 3339 to the microsecond in UTC, then the host name and the tag.
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00) (\S+) ([\w.-]+)(?:\[(\d+)\])?: \S")
LOGS = ("syslog", "auth.log", "cron.log")
SUFFIXES = (".4.gz", ".3.gz", ".2.gz", ".1", "")  # oldest first


BASE = HostHistory(
    hostname="ob-filesrv-03", ip="10.0.12.45", installed=INSTALLED, now=NOW, kernel="6.1.0-26-amd64",
    peers=(("ob-filesrv-04", "10.0.12.46"),), cron=(CHECK,), shell_history=RECENT,
)  # fmt: skip


def host(**kw: Any) -> HostHistory:
    return replace(BASE, **kw)


def by_path(files: list[SeedFile]) -> dict[str, SeedFile]:
    paths = [f.path for f in files]
    assert len(paths) == len(set(paths)), "a path is produced twice"
    return {f.path: f for f in files}


def data(f: SeedFile) -> bytes:
    assert isinstance(f.content, bytes)
    return gzip.decompress(f.content) if f.path.endswith(".gz") else f.content


def parse(f: SeedFile) -> list[tuple[datetime, str, str, str]]:
    """(time, host, tag, line) of each line of an rsyslog file in bookworm's RFC 3339 format."""
    out = []
    for line in data(f).decode().splitlines():
        m = STAMP.match(line)
        assert m, f"{f.path}: not an RFC 3339 rsyslog line: {line!r}"
        t = datetime.fromisoformat(m[1])
        assert t.utcoffset() == timedelta(0)
        out.append((t, m[2], m[3], line))
    return out


def line_times(f: SeedFile) -> list[datetime]:
    """The timestamps of an rsyslog file, microseconds included (the year is in the stamp)."""
    return [t for t, _, _, _ in parse(f)]


def chain(fs: dict[str, SeedFile], name: str) -> list[SeedFile]:
    """A log and its rotations that exist, oldest first."""
    return [fs[p] for p in (f"/var/log/{name}{s}" for s in SUFFIXES) if p in fs]


class Rec(NamedTuple):
    type: int
    pid: int
    line: str
    id: str
    user: str
    host: str
    t: int
    usec: int
    addr: bytes


def wtmp(raw: bytes) -> list[Rec]:
    assert len(raw) % 384 == 0 and UTMP.size == 384
    out = []
    for i in range(0, len(raw), 384):
        kind, pid, line, ut_id, user, hostf, _e1, _e2, _sess, sec, usec, addr = UTMP.unpack_from(raw, i)
        line, ut_id, user, hostf = (x.rstrip(b"\0").decode() for x in (line, ut_id, user, hostf))
        out.append(Rec(kind, pid, line, ut_id, user, hostf, sec, usec, addr))
    return out


@pytest.fixture(scope="module")
def files() -> dict[str, SeedFile]:
    return by_path(history_files(host(), 7))


def test_same_history_and_seed_give_identical_files() -> None:
    a, b = history_files(host(), 11), history_files(host(), 11)
    assert a == b


def test_seeds_vary_the_past() -> None:
    a, b = by_path(history_files(host(), 1)), by_path(history_files(host(), 2))
    for path in (
        "/var/log/wtmp",
        "/var/log/auth.log.1",
        "/home/maintainer/.bash_history",
        "/var/log/syslog.1",
        "/var/log/cron.log.1",
    ):
        assert a[path].content != b[path].content, path


def test_paths_owners_and_modes(files: dict[str, SeedFile]) -> None:
    expected = {
        "/var/log": (0, 0, 0o755),
        "/var/log/wtmp": (0, 43, 0o664), "/var/log/btmp": (0, 43, 0o660), "/var/log/btmp.1": (0, 43, 0o660),
        "/var/log/lastlog": (0, 43, 0o664), "/var/lib/logrotate/status": (0, 0, 0o644),
        "/home/maintainer/.bash_history": (1000, 1000, 0o600),
    }  # fmt: skip
    for name in LOGS:  # no kern.log: the image's rsyslog has imklog off
        expected[f"/var/log/{name}"] = (0, 4, 0o640)
        expected[f"/var/log/{name}.1"] = (0, 4, 0o640)
        for n in (2, 3, 4):
            expected[f"/var/log/{name}.{n}.gz"] = (0, 4, 0o640)
    assert set(files) == set(expected)
    for path, (uid, gid, mode) in expected.items():
        f = files[path]
        assert (f.uid, f.gid, f.mode) == (uid, gid, mode), path
        assert f.is_dir == (path == "/var/log")


def test_every_date_lies_between_install_and_now(files: dict[str, SeedFile]) -> None:
    lo, hi = INSTALLED.timestamp(), NOW.timestamp()
    for f in files.values():
        assert lo <= f.mtime <= hi, f.path
        if f.path.startswith(tuple(f"/var/log/{n}" for n in LOGS)):
            times = line_times(f)
            assert times, f.path
            assert all(INSTALLED <= t <= NOW for t in times), f.path
            assert times == sorted(times), f"{f.path}: lines out of order"
            assert int(times[-1].timestamp()) == f.mtime, f"{f.path}: mtime is not its last line's second"
    for rec in wtmp(data(files["/var/log/wtmp"])):
        assert lo <= rec.t <= hi
    ll_time = LASTLOG.unpack_from(data(files["/var/log/lastlog"]), 1000 * 292)[0]
    assert lo <= ll_time <= hi


def test_lines_have_bookworm_rsyslog_stamps(files: dict[str, SeedFile]) -> None:
    """``2026-11-04T06:25:01.318207+00:00 ob-filesrv-03 CRON[1234]: ...``, the microseconds drawn per line."""
    for name in LOGS:
        for f in chain(files, name):
            lines = parse(f)
            micros = {t.microsecond for t, _, _, _ in lines}
            assert len(micros) > len(lines) // 2, f"{f.path}: microseconds are not drawn per line"
            for t, hostname, _, line in lines:
                assert hostname == "ob-filesrv-03", line
                assert line.startswith(t.isoformat(timespec="microseconds") + " "), line


@pytest.mark.parametrize("seed", range(6))
def test_microseconds_grow_within_a_second(seed: int) -> None:
    """Lines of one second, in file order, have growing microseconds, also when a line comes back to a second
    after another log was written at a later one (a sudo session closed in the second it opened)."""
    fs = by_path(history_files(host(), seed))
    same_second = 0
    for name in LOGS:
        for f in chain(fs, name):
            for (t1, _, _, l1), (t2, _, _, l2) in pairwise(parse(f)):
                if t1.replace(microsecond=0) == t2.replace(microsecond=0):
                    same_second += 1
                    assert t1.microsecond < t2.microsecond, f"{f.path}: {l1!r} then {l2!r}"
    assert same_second > 20


def test_rotated_weeks_follow_each_other(files: dict[str, SeedFile]) -> None:
    """syslog.4.gz .. syslog: each file covers its week, rotated on Sunday at 06:25 (cron.daily)."""
    spans = [line_times(f) for f in chain(files, "syslog")]
    assert len(spans) == 5
    for older, newer in pairwise(spans):
        assert older[-1] < newer[0]
        sunday = newer[0]
        assert sunday.weekday() == 6 and (sunday.hour, sunday.minute) == (6, 25)
    assert (spans[-1][0] - spans[0][0]) <= timedelta(weeks=4, hours=1)
    for f in chain(files, "syslog"):  # each week begins with logrotate's HUP, the oldest kept one too
        assert data(f).decode().splitlines()[0].endswith("rsyslogd was HUPed"), f.path


def test_auth_and_cron_logs_keep_the_same_weeks_as_syslog(files: dict[str, SeedFile]) -> None:
    """cron's hourly PAM sessions write to auth.log, so it rotates every Sunday like syslog and cron.log."""
    bounds = [line_times(f)[0] for f in chain(files, "syslog")]  # the HUP that opened each week
    ends = [*bounds[1:], NOW]
    for name in ("auth.log", "cron.log"):
        logs = chain(files, name)
        assert len(logs) == 5, name
        for f, start, end in zip(logs, bounds, ends, strict=True):
            times = line_times(f)
            assert start.replace(microsecond=0) <= times[0] and times[-1] < end, f.path
            assert times[0] - start < timedelta(hours=1), f"{f.path}: its week starts late"


def test_gzip_files_are_valid_with_the_file_mtime(files: dict[str, SeedFile]) -> None:
    gz = [f for f in files.values() if f.path.endswith(".gz")]
    assert len(gz) == 9
    for f in gz:
        assert isinstance(f.content, bytes)
        assert f.content[:3] == b"\x1f\x8b\x08" and f.content[9] == 3  # deflate, OS Unix
        assert struct.unpack_from("<I", f.content, 4)[0] == int(f.mtime)
        assert gzip.decompress(f.content).endswith(b"\n")


def test_wtmp_is_well_formed(files: dict[str, SeedFile]) -> None:
    recs = wtmp(data(files["/var/log/wtmp"]))
    assert [(r.t, r.usec) for r in recs] == sorted((r.t, r.usec) for r in recs)
    open_: dict[str, Rec] = {}
    logins = 0
    for r in recs:
        if r.type == 7:
            assert r.line not in open_, "two logins on one pty"
            assert str(r.line).startswith("pts/") and r.id == str(r.line)[-4:]
            assert r.user == "maintainer" and r.host in ("10.0.4.23", "10.0.4.31")
            assert r.addr == socket.inet_aton(str(r.host)) + bytes(12)
            open_[str(r.line)] = r
            logins += 1
        elif r.type == 8:
            login = open_.pop(str(r.line))
            assert r.pid == login.pid and r.user == "" and r.host == ""
        elif r.type == 2:
            assert not open_, "a boot while sessions were still open"
            assert (r.user, r.line, r.id) == ("reboot", "~", "~~")
        elif r.type == 1:
            assert r.user in ("runlevel", "shutdown") and r.id == "~~"
    assert not open_ and logins > 100
    assert recs[0].type == 2 and recs[0].t >= INSTALLED.timestamp()  # wtmp begins at the first boot
    last = recs[-1]
    assert (last.type, last.user, last.line) == (1, "shutdown", "~~")
    assert timedelta(seconds=60) <= NOW - datetime.fromtimestamp(last.t, UTC) <= timedelta(minutes=10)
    boots = [r for r in recs if r.type == 2]
    assert boots[-1].host == "6.1.0-26-amd64" and 5 <= len(boots) <= 40
    runlevels = [r for r in recs if r.user == "runlevel"]
    assert {r.pid for r in runlevels} == {0x4E32, 0x3236}


def test_lastlog_holds_the_last_login(files: dict[str, SeedFile]) -> None:
    raw = data(files["/var/log/lastlog"])
    assert len(raw) == 1001 * 292 and raw[: 1000 * 292].count(0) == 1000 * 292
    ll_time, ll_line, ll_host = LASTLOG.unpack_from(raw, 1000 * 292)
    logins = [r for r in wtmp(data(files["/var/log/wtmp"])) if r.type == 7]
    assert (ll_time, ll_line.rstrip(b"\0").decode(), ll_host.rstrip(b"\0").decode()) == (
        logins[-1].t, logins[-1].line, logins[-1].host,
    )  # fmt: skip
    assert files["/var/log/lastlog"].mtime == ll_time


def test_no_give_away_words_in_any_file() -> None:
    for seed in range(12):
        for f in history_files(
            host(peers=(("ob-filesrv-04", "10.0.12.46"), ("ob-backup-01", "10.0.12.60"))), seed
        ):
            if f.is_dir:
                continue
            assert forbidden_word(data(f), allowed=ALLOWED_PHRASES) is None, (seed, f.path)
            assert forbidden_word(f.path) is None


def test_debian_crontab_runs_are_logged(files: dict[str, SeedFile]) -> None:
    text = data(files["/var/log/syslog.1"]).decode()
    assert text.count("CMD (   cd / && run-parts --report /etc/cron.hourly)") >= 160
    assert text.count("run-parts --report /etc/cron.daily; })") == 7
    assert text.count("run-parts --report /etc/cron.weekly; })") == 1
    assert text.count("/sbin/e2scrub_all -A -r)") == 7 and text.count("e2scrub_all_cron)") == 1
    assert re.search(
        r" CRON\[\d+\]: \(root\) CMD \(test -x /usr/sbin/anacron \|\| \{ cd / && run-parts", text
    )


def cron_lines(f: SeedFile) -> list[str]:
    """The lines cron writes (its start lines and each job's CMD line): what rsyslog's cron.* sends to cron.log."""
    return [line for _, _, tag, line in parse(f) if tag in ("CRON", "cron")]


def test_cron_log_holds_the_cron_lines_of_syslog(files: dict[str, SeedFile]) -> None:
    """cron.log, week by week, is exactly syslog's cron lines (bookworm's rsyslog.conf logs cron.* to both)."""
    for suffix in SUFFIXES:
        syslog, cron = files[f"/var/log/syslog{suffix}"], files[f"/var/log/cron.log{suffix}"]
        assert data(cron).decode().splitlines() == cron_lines(syslog), suffix
        assert cron.mtime <= syslog.mtime
        assert len(cron_lines(syslog)) > 50, suffix
    installed = NOW - timedelta(days=20)  # the install boot is in the kept weeks: cron's start lines too
    fs = by_path(history_files(host(installed=installed, cron=()), 1))
    cron = "".join(data(f).decode() for f in chain(fs, "cron.log"))
    syslog = [ln for f in chain(fs, "syslog") for ln in cron_lines(f)]
    assert cron.splitlines() == syslog
    assert re.search(
        r" cron\[\d+\]: \(CRON\) INFO \(pidfile fd = 3\)\n.* cron\[\d+\]: \(CRON\) INFO \(Running", cron
    )


def test_an_added_cron_entry_is_logged_only_after_it_was_added(files: dict[str, SeedFile]) -> None:
    runs: dict[str, list[datetime]] = {"syslog": [], "cron.log": []}
    for name, found in runs.items():
        for f in chain(files, name):
            for t, _, _, line in parse(f):
                if CHECK.command in line:
                    found.append(t)
                    assert re.search(rf" CRON\[\d+\]: \(root\) CMD \({re.escape(CHECK.command)}\)$", line)
    assert runs["syslog"] == runs["cron.log"]
    assert all(t >= CHECK_SINCE for t in runs["syslog"])
    assert [(t.day, t.hour, t.minute, t.second) for t in runs["syslog"]] == [
        (d, 7, 0, 1) for d in range(19, 25)
    ]
    # Whoever added it was logged in at the time.
    logins = [r for r in wtmp(data(files["/var/log/wtmp"])) if r.type in (7, 8)]
    starts = [r.t for r in logins if r.type == 7]
    assert any(0 < CHECK_SINCE.timestamp() - s < 3600 for s in starts)


def test_cron_entry_added_after_the_last_rotation() -> None:
    since = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    f = by_path(
        history_files(host(cron=(CronEntry("*/15 * * * *", "root", "/usr/local/bin/sync-state", since),)), 3)
    )
    assert "sync-state" not in data(f["/var/log/syslog.1"]).decode()
    current = [ln for ln in data(f["/var/log/syslog"]).decode().splitlines() if "sync-state" in ln]
    assert 90 <= len(current) <= 101  # every quarter hour from Nov 23 09:00 to the shutdown on Nov 24 ~10:00
    assert [ln for ln in data(f["/var/log/cron.log"]).decode().splitlines() if "sync-state" in ln] == current


def test_bash_history_ends_with_the_recent_commands(files: dict[str, SeedFile]) -> None:
    f = files["/home/maintainer/.bash_history"]
    lines = data(f).decode().splitlines()
    assert lines[-len(RECENT) :] == list(RECENT)
    assert 250 <= len(lines) <= 500
    assert any(ln.startswith(("rsync ", "ssh ", "scp ")) and "ob-filesrv-04" in ln for ln in lines)
    assert "sudo reboot" in lines and "df -h" in lines
    logouts = [r.t for r in wtmp(data(files["/var/log/wtmp"])) if r.type == 8]
    assert f.mtime == max(logouts)


def test_sudo_lines_match_the_history(files: dict[str, SeedFile]) -> None:
    history = data(files["/home/maintainer/.bash_history"]).decode()
    auth = data(files["/var/log/auth.log.1"]).decode() + data(files["/var/log/auth.log"]).decode()
    commands = re.findall(r"sudo: maintainer : TTY=pts/\d ; PWD=\S+ ; USER=root ; COMMAND=(.*)", auth)
    assert commands
    for cmd in commands:
        prog, _, args = cmd.partition(" ")
        assert prog.startswith(("/usr/bin/", "/usr/sbin/"))
        assert f"sudo {prog.rsplit('/', 1)[1]} {args}".strip() in history, cmd
    assert "pam_unix(sshd" not in auth  # sshd without PAM
    # cron's commands go to syslog and cron.log; auth.log only gets its PAM sessions.
    assert " CMD (" not in auth
    cron = [ln for ln in auth.splitlines() if " CRON[" in ln]
    assert len(cron) > 300
    for ln in cron:
        assert re.search(r" CRON\[\d+\]: pam_unix\(cron:session\): session (opened for user root\(uid=0\) "
                         r"by \(uid=0\)|closed for user root)$", ln), ln  # fmt: skip


def test_each_cron_run_opens_and_closes_a_pam_session_in_auth_log(files: dict[str, SeedFile]) -> None:
    """For each CMD line of the kept weeks: ``session opened`` at its second, ``session closed`` one later."""
    runs: Counter[tuple[datetime, str]] = Counter()
    for f in chain(files, "syslog"):
        for t, _, tag, line in parse(f):
            m = re.search(r" CRON\[(\d+)\]: \(root\) CMD \(", line)
            assert (tag == "CRON") == bool(m), line
            if m:
                runs[(t.replace(microsecond=0), m[1])] += 1
    opened: Counter[tuple[datetime, str]] = Counter()
    closed: Counter[tuple[datetime, str]] = Counter()
    auth = [x for f in chain(files, "auth.log") for x in parse(f)]
    for t, _, tag, line in auth:
        m = re.search(
            r" CRON\[(\d+)\]: pam_unix\(cron:session\): session (opened|closed) for user root", line
        )
        assert (tag == "CRON") == bool(m), line
        if m and m[2] == "opened":
            assert line.endswith(" for user root(uid=0) by (uid=0)"), line
            opened[(t.replace(microsecond=0), m[1])] += 1
        elif m:
            assert line.endswith(" for user root"), line
            closed[(t.replace(microsecond=0) - timedelta(seconds=1), m[1])] += 1
    assert sum(runs.values()) > 700  # five weeks of hourly, daily and weekly jobs
    assert opened == runs
    assert closed == runs


def test_peers_agree_on_their_transfers() -> None:
    a = host()
    b = host(hostname="ob-filesrv-04", ip="10.0.12.46", peers=(("ob-filesrv-03", "10.0.12.45"),),
             installed=INSTALLED + timedelta(days=40))  # fmt: skip
    fa, fb = by_path(history_files(a, 5)), by_path(history_files(b, 5))
    sessions_a = wtmp(data(fa["/var/log/wtmp"]))
    spans, open_ = [], {}
    for r in sessions_a:
        if r.type == 7:
            open_[r.line] = r.t
        elif r.type == 8:
            spans.append((open_.pop(r.line), r.t))
    found = 0
    for f in chain(fb, "auth.log"):
        for t, hostname, _, line in parse(f):
            assert hostname == "ob-filesrv-04"
            if "Accepted publickey for maintainer from 10.0.12.45 " in line:
                found += 1
                second = t.replace(microsecond=0).timestamp()
                assert any(s <= second <= e for s, e in spans), line
    assert found


def test_pids_grow_within_a_boot_and_restart_low_after_it() -> None:
    f = by_path(history_files(host(cron=()), 9))
    events: list[tuple[datetime, int]] = []
    boots: list[datetime] = []
    for g in [*chain(f, "syslog"), *chain(f, "auth.log")]:
        for t, _, _, line in parse(g):
            m = re.search(r" (CRON|sshd)\[(\d+)\]: (\(root\) CMD|Accepted)", line)
            if m:
                events.append((t, int(m[2])))
            if "rsyslogd" in line and line.endswith("] start"):
                boots.append(t)
    events.sort()
    assert len(events) > 500
    for (t1, p1), (t2, p2) in pairwise(events):
        if any(t1 < b <= t2 for b in boots):
            assert p2 < p1 and p2 < 1500
        elif t2 > t1:
            assert p2 > p1, (t1, p1, t2, p2)


def test_logrotate_state_and_var_log_mtime(files: dict[str, SeedFile]) -> None:
    status = data(files["/var/lib/logrotate/status"]).decode().splitlines()
    assert status[0] == "logrotate state -- version 2"
    entries = dict(ln.split(" ", 1) for ln in status[1:])
    assert all(
        re.fullmatch(r'"/var/log/[a-z.]+" \d{4}(-\d{1,2}){3}:\d{1,2}:\d{1,2}', ln) for ln in status[1:]
    )
    assert set(entries) == {f'"/var/log/{n}"' for n in ("syslog", "auth.log", "cron.log", "btmp", "wtmp")}
    for name in LOGS:  # all three rotated last Sunday
        assert entries[f'"/var/log/{name}"'] == "2026-11-22-6:25:2", name
    last_rotation = datetime(2026, 11, 22, 6, 25, 2, tzinfo=UTC).timestamp()
    assert files["/var/log"].mtime == last_rotation
    assert (
        files["/var/lib/logrotate/status"].mtime == datetime(2026, 11, 24, 6, 25, 2, tzinfo=UTC).timestamp()
    )


def test_boots_and_shutdowns_are_logged_but_no_kernel_lines(files: dict[str, SeedFile]) -> None:
    syslog = "".join(data(files[f"/var/log/{n}"]).decode() for n in ("syslog.1", "syslog"))
    assert syslog.rstrip().endswith("exiting on signal 15.")
    assert re.search(r'rsyslogd: \[origin software="rsyslogd" swVersion="8\.2302\.0" x-pid="\d+" '
                     r'x-info="https://www\.rsyslog\.com"\] rsyslogd was HUPed', syslog)  # fmt: skip
    auth = data(files["/var/log/auth.log"]).decode()
    assert auth.rstrip().endswith("Received signal 15; terminating.")
    # Installed 20 days ago, the install boot is in the kept weeks: rsyslog, sshd and cron start; the kernel
    # logs nothing (the image's rsyslog has imklog off), neither in a kern.log nor in syslog.
    installed = NOW - timedelta(days=20)
    fresh = by_path(history_files(host(installed=installed, cron=()), 1))
    boot = parse(fresh["/var/log/syslog.3.gz"])
    assert installed <= boot[0][0] < installed + timedelta(hours=1)
    assert boot[0][3].endswith('x-info="https://www.rsyslog.com"] start')
    assert [line.split(": ", 1)[1] for _, _, _, line in boot[1:3]] == [
        "(CRON) INFO (pidfile fd = 3)", "(CRON) INFO (Running @reboot jobs)",
    ]  # fmt: skip
    assert parse(fresh["/var/log/auth.log.3.gz"])[0][3].endswith(" Server listening on 0.0.0.0 port 22.")
    tags = {
        "syslog": {"rsyslogd", "CRON", "cron"},
        "auth.log": {"sshd", "sudo", "CRON"},
        "cron.log": {"CRON", "cron"},
    }
    for fs in (files, fresh):
        assert not any("kern" in path for path in fs)
        for name in LOGS:
            for f in chain(fs, name):
                assert {tag for _, _, tag, _ in parse(f)} <= tags[name], f.path
                text = data(f).decode()
                for kernel_mark in (" kernel: ", "imklog", "Linux version", "BOOT_IMAGE"):
                    assert kernel_mark not in text, (f.path, kernel_mark)


def test_a_server_installed_days_ago_has_only_the_files_it_would_have() -> None:
    four_days = by_path(
        history_files(host(installed=NOW - timedelta(days=4), cron=()), 1)
    )  # one Sunday since
    for name in LOGS:
        assert f"/var/log/{name}.1" in four_days and f"/var/log/{name}.2.gz" not in four_days
    assert not any(p.endswith(".gz") or p.endswith("btmp.1") for p in four_days)
    two_days = by_path(
        history_files(host(installed=NOW - timedelta(days=2), cron=()), 1)
    )  # installed on Sunday
    assert not any(f"/var/log/{name}.1" in two_days for name in LOGS)
    for fs, start in ((four_days, NOW - timedelta(days=4)), (two_days, NOW - timedelta(days=2))):
        recs = wtmp(data(fs["/var/log/wtmp"]))
        assert [r.type for r in recs if r.type == 2] == [2]  # only the install boot
        for f in fs.values():
            assert start.timestamp() <= f.mtime <= NOW.timestamp(), f.path
            if f.path.startswith("/var/log/") and f.gid == 4:
                assert all(start <= t <= NOW for t in line_times(f)), f.path
        assert data(fs["/home/maintainer/.bash_history"]).decode().splitlines()[-len(RECENT) :] == list(
            RECENT
        )
    hours = by_path(history_files(host(installed=NOW - timedelta(hours=3), cron=(), shell_history=()), 1))
    assert "/var/lib/logrotate/status" not in hours
    assert [r.type for r in wtmp(data(hours["/var/log/wtmp"]))][-1] == 1


def test_early_january_stamps_carry_the_year() -> None:
    now = datetime(2027, 1, 3, 11, 40, tzinfo=UTC)
    fs = by_path(history_files(host(now=now, cron=()), 4))
    current = data(fs["/var/log/syslog"]).decode()
    assert re.search(r"^2027-01-03T07:17:01\.\d{6}\+00:00 ob-filesrv-03 CRON\[\d+\]: \(root\) CMD "
                     r"\(   cd / && run-parts --report /etc/cron\.hourly\)$", current, re.M)  # fmt: skip
    # Last week spans the new year: December's lines carry 2026, January's 2027.
    assert {(t.year, t.month) for t in line_times(fs["/var/log/syslog.1"])} == {(2026, 12), (2027, 1)}
    for f in fs.values():
        if f.path.startswith("/var/log/") and f.gid == 4:
            times = line_times(f)
            assert all(now - timedelta(weeks=5, days=1) <= t <= now for t in times), f.path
            assert times == sorted(times), f.path


def test_everything_stays_small() -> None:
    total = sum(f.nbytes for f in history_files(host(peers=(("a-1", "10.0.12.2"), ("b-2", "10.0.12.3"))), 2))
    assert total < 1_500_000


def test_timezone_naive_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        history_files(host(now=datetime(2026, 11, 24, 10, 0)), 1)


def test_last_lists_the_logins_and_reboots(files: dict[str, SeedFile], tmp_path: Path) -> None:
    last = shutil.which("last")
    if last is None:
        pytest.skip("util-linux `last` is not installed on this machine")
    path = tmp_path / "wtmp"
    path.write_bytes(data(files["/var/log/wtmp"]))
    out = subprocess.run(
        [last, "-w", "-x", "-f", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"^maintainer\s+pts/\d\s+10\.0\.4\.\d+", out, re.M)
    assert re.search(r"^reboot\s+system boot\s+6\.1\.0-26-amd64", out, re.M)
    assert re.search(r"^shutdown\s+system down", out, re.M)
    assert re.search(r"^maintainer\s+pts/\d\s+10\.0\.4\.\d+ .* - down ", out, re.M)  # killed by a reboot
    assert re.search(r"wtmp begins Tue May 14 09:\d\d:\d\d 2024$", out.strip())  # the install, never rotated
