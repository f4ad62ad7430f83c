"""Give the freshly built image the past of a server installed on INSTALLED (run once, last, at image build).

Why: debootstrap and the build run today, so every file the install wrote (logs, dpkg's database, /etc, the
accounts, the ssh keys) would be dated the day the image was built, on a server whose story says it has run
since 2024. Package files keep their own dates (dpkg unpacks them with the .deb's mtimes), as on any system.

What it does, in the image being built (the build has no network and nothing here reaches one):
1. Moves every date the build wrote (file times, and the times inside dpkg.log and alternatives.log) back by
   the same offset, so the install happened on INSTALLED and its order and durations are kept.
2. Packages whose files are dated after INSTALLED came in later: each is recorded as upgraded by apt on a
   maintenance day after its build date (dpkg.log, apt/history.log, apt/term.log), and its dpkg records dated
   then. The logs are rotated as Debian's logrotate rules for them would have (monthly, 12 kept), so what is
   left covers the last year, as on a real server.
3. The accounts' "last password change" (/etc/shadow) is the install day.

Usage: python3 age-rootfs.py INSTALLED_EPOCH_SECONDS (it deletes itself when done).
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import random
import re
import sys

ROOTS_SKIPPED = {"/proc", "/sys", "/dev", "/run", "/tmp"}
DPKG_INFO = "/var/lib/dpkg/info"
STAMP = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")
UTC = dt.timezone.utc


def when(text: bytes) -> float:
    return dt.datetime.strptime(text.decode(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def stamp(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def build_started() -> float:
    with open("/var/log/dpkg.log", "rb") as f:
        first = STAMP.search(f.readline())
    if first is None:
        sys.exit("age-rootfs: /var/log/dpkg.log has no date on its first line")
    return when(first.group(1)) - 120  # debootstrap unpacks a little before dpkg logs


def shift_times(since: float, offset: float) -> None:
    """Every path dated at or after ``since`` moves back by ``offset`` seconds (children before parents)."""
    for top in sorted(os.listdir("/")):
        path = "/" + top
        if path in ROOTS_SKIPPED or os.path.ismount(path):
            continue
        for dirpath, dirnames, filenames in os.walk(path, topdown=False):
            for name in filenames + dirnames:
                _shift(os.path.join(dirpath, name), since, offset)
            _shift(dirpath, since, offset)


def _shift(path: str, since: float, offset: float) -> None:
    st = os.lstat(path)
    if st.st_mtime >= since:
        os.utime(path, (st.st_atime - offset, st.st_mtime - offset), follow_symlinks=False)


def shift_log(path: str, offset: float) -> None:
    with open(path, "rb") as f:
        text = f.read()
    moved = STAMP.sub(lambda m: stamp(when(m.group(1)) - offset).encode(), text)
    st = os.stat(path)
    with open(path, "wb") as f:
        f.write(moved)
    os.utime(path, (st.st_atime, st.st_mtime))


def packages() -> list[tuple[str, str, str]]:
    """(name, version, arch) of every installed package, from dpkg's status file."""
    out, fields = [], {}
    with open("/var/lib/dpkg/status", encoding="utf-8") as f:
        for line in [*f, "\n"]:
            if line.strip():
                key, _, value = line.partition(":")
                fields[key] = value.strip()
            elif fields:
                if fields.get("Status", "").endswith(" installed"):
                    out.append((fields["Package"], fields["Version"], fields.get("Architecture", "all")))
                fields = {}
    return out


def newest_file(name: str, arch: str) -> float:
    newest = 0.0
    for list_name in (f"{name}:{arch}.list", f"{name}.list"):
        try:
            with open(os.path.join(DPKG_INFO, list_name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    try:
                        st = os.lstat(line.rstrip("\n"))
                    except OSError:
                        continue
                    if not os.path.isdir(line.rstrip("\n")):
                        newest = max(newest, st.st_mtime)
        except FileNotFoundError:
            continue
    return newest


def previous_version(version: str) -> str | None:
    """The stable update before this one ("2.36-9+deb12u14" -> "...u13"; "3.0.17-1~deb12u2" -> "...u1")."""
    m = re.search(r"(deb12u)(\d+)$", version)
    if m and int(m.group(2)) > 1:
        return version[: m.start(2)] + str(int(m.group(2)) - 1)
    if m:
        return version[: m.start(1)].rstrip("+~") or None
    return None


def maintenance_days(start: float, end: float, rnd: random.Random) -> list[float]:
    """Upgrade sessions every 3-6 weeks, on a weekday morning, between the install and the build."""
    days, t = [], start + rnd.randint(20, 40) * 86400
    while t < end - 86400:
        day = dt.datetime.fromtimestamp(t, UTC).replace(hour=rnd.randint(8, 11), minute=rnd.randint(0, 59))
        while day.weekday() >= 5:
            day += dt.timedelta(days=1)
        days.append(day.timestamp() + rnd.randint(0, 59))
        t += rnd.randint(21, 42) * 86400
    return days


def record_upgrades(installed: float, built: float) -> list[tuple[float, str]]:
    """Log, as apt would have, an upgrade of every package built after the install; returns dpkg.log lines."""
    rnd = random.Random(int(installed))
    days = maintenance_days(installed, built, rnd)
    sessions: dict[float, list[tuple[str, str, str, str]]] = {}
    for name, version, arch in packages():
        newest, old = newest_file(name, arch), previous_version(version)
        if newest <= installed or old is None or not days:
            continue
        day = next((d for d in days if d > newest + 86400), days[-1])
        sessions.setdefault(day, []).append((name, arch, old, version))
        for suffix in ("list", "md5sums", "conffiles", "postinst", "prerm", "postrm", "preinst", "triggers"):
            for info in (f"{name}:{arch}.{suffix}", f"{name}.{suffix}"):
                path = os.path.join(DPKG_INFO, info)
                if os.path.exists(path):
                    os.utime(path, (day, day))
    dpkg_lines: list[tuple[float, str]] = []
    history: list[tuple[float, str]] = []
    for day in sorted(sessions):
        upgrades, t = sorted(sessions[day]), day
        t += 4
        dpkg_lines.append((t, "startup archives unpack"))
        for name, arch, old, new in upgrades:
            dpkg_lines.append((t, f"upgrade {name}:{arch} {old} {new}"))
            dpkg_lines.append((t, f"status half-configured {name}:{arch} {old}"))
            dpkg_lines.append((t, f"status unpacked {name}:{arch} {new}"))
            t += rnd.uniform(0.3, 2.5)
        dpkg_lines.append((t, "startup packages configure"))
        for name, arch, _old, new in upgrades:
            dpkg_lines.append((t, f"configure {name}:{arch} {new} <none>"))
            dpkg_lines.append((t, f"status installed {name}:{arch} {new}"))
            t += rnd.uniform(0.1, 0.8)
        listed = ", ".join(f"{n}:{a} ({o}, {v})" for n, a, o, v in upgrades)
        history.append((day, f"\nStart-Date: {stamp(day).replace(' ', '  ')}\nCommandline: apt-get upgrade\n"
                             f"Requested-By: maintainer (1000)\nUpgrade: {listed}\nEnd-Date: "
                             f"{stamp(t).replace(' ', '  ')}\n"))
    write_monthly("/var/log/apt/history.log", history, built)
    write_monthly("/var/log/apt/term.log", [(d, f"\nLog started: {stamp(d).replace(' ', '  ')}\n"
                                               f"Log ended: {stamp(d + 60).replace(' ', '  ')}\n") for d, _ in history],
                  built)
    if os.path.exists("/var/lib/dpkg/status") and sessions:
        last = max(sessions)
        os.utime("/var/lib/dpkg/status", (last, last))
    return dpkg_lines


def write_monthly(path: str, entries: list[tuple[float, str]], now: float, keep: int = 12) -> None:
    """``entries`` (time, text) as logrotate's monthly rotation leaves them: this month in ``path`` (empty
    when nothing happened since the rotation), last month in ``path.1``, older months gzipped up to
    ``path.<keep>.gz``, anything older gone."""

    def month(t: float) -> int:
        d = dt.datetime.fromtimestamp(t, UTC)
        return d.year * 12 + d.month - 1

    current = month(now)
    by_age: dict[int, list[tuple[float, str]]] = {0: []}
    for t, text in sorted(entries):
        if current - month(t) <= keep:
            by_age.setdefault(current - month(t), []).append((t, text))
    for age, chunk in by_age.items():
        data = "".join(text for _t, text in chunk).encode()
        if chunk:
            last = chunk[-1][0]
        else:  # rotated on the 1st at the daily cron run
            first = dt.datetime(current // 12, current % 12 + 1, 1, 6, 25, 3, tzinfo=UTC).timestamp()
            last = min(first, now)
        target = path if age == 0 else f"{path}.1" if age == 1 else f"{path}.{age}.gz"
        if target.endswith(".gz"):
            data = gzip.compress(data, mtime=int(last))
        with open(target, "wb") as f:
            f.write(data)
        os.chmod(target, 0o644)
        os.utime(target, (last, last))


def main() -> None:
    installed = float(sys.argv[1])
    built_start = build_started()
    offset = built_start - installed
    if offset <= 0:
        sys.exit("age-rootfs: INSTALLED must lie before the build")
    shift_log("/var/log/dpkg.log", offset)
    shift_log("/var/log/alternatives.log", offset)
    shift_times(built_start, offset)
    # The install's own dpkg and alternatives logs are older than a year: logrotate has dropped them.
    os.remove("/var/log/alternatives.log")
    os.remove("/var/log/dpkg.log")
    dpkg_lines = record_upgrades(installed, built_start)
    write_monthly("/var/log/dpkg.log", [(t, f"{stamp(t)} {line}\n") for t, line in dpkg_lines], built_start)
    install_day = int(installed // 86400)
    for shadow in ("/etc/shadow", "/etc/shadow-"):
        if os.path.exists(shadow):
            st = os.stat(shadow)
            with open(shadow, encoding="utf-8") as f:
                rows = [line.split(":") for line in f.read().splitlines()]
            for row in rows:
                if len(row) > 2 and row[2].isdigit():
                    row[2] = str(install_day)
            with open(shadow, "w", encoding="utf-8") as f:
                f.write("".join(":".join(row) + "\n" for row in rows))
            os.utime(shadow, (st.st_atime, st.st_mtime))
    for log_dir in ("/var/log/apt", "/var/log"):
        newest = max(os.lstat(os.path.join(log_dir, n)).st_mtime for n in os.listdir(log_dir))
        os.utime(log_dir, (newest, newest))
    # Accounts made at the install got copies of /etc/skel, which keep its files' dates; a later bash
    # upgrade dated /etc/skel's own copies, never the users'.
    for home in ("/root", *(os.path.join("/home", n) for n in os.listdir("/home"))):
        for dirpath, _dirs, names in os.walk(home):
            for name in names:
                path = os.path.join(dirpath, name)
                if os.lstat(path).st_mtime > installed:
                    os.utime(path, (installed + 180, installed + 180), follow_symlinks=False)
    os.remove(os.path.abspath(__file__))
    os.utime("/tmp", (installed + 240, installed + 240))  # emptied at every boot anyway


if __name__ == "__main__":
    main()
