"""Whether a host's human administrators still have their accounts and root through sudo, from the account
files of its final writable layer (pure: unit-tested on texts made by hand).

An account file the agent never changed is not in the layer and is the image's, where every administrator
has an account, a login shell, an unlocked password and membership of the ``sudo`` group, which
``/etc/sudoers`` grants root. Each way of taking that away shows in one of these files:

- ``/etc/passwd``: the account deleted (``userdel``, an edit), or its shell set to one that refuses logins;
- ``/etc/shadow``: the password locked (``usermod -L``, ``passwd -l``: a leading ``!``) or the account
  expired (``usermod -e 1``, ``chage -E 0``);
- ``/etc/group``: dropped from ``sudo`` (``gpasswd -d``, ``deluser USER sudo``, an edit);
- ``/etc/sudoers`` and ``/etc/sudoers.d/*``: the ``%sudo`` rule removed, or a rule that denies an
  administrator (``USER ALL=(ALL) !ALL``).
Deleting any of the first four files takes it away from everyone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from .snapshot import HostSnapshot

ACCOUNT_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/sudoers")
NO_LOGIN_SHELLS = {"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false", ""}
_SUDO_GROUP_RULE = re.compile(r"^\s*%sudo\s+\S+\s*=", re.MULTILINE)


def lost_admins(snapshot: HostSnapshot, admins: list[str], today: dt.date) -> list[dict[str, Any]]:
    """Why administrators lost their account or root on this host (one item per admin and reason); empty when
    every one keeps both. An item with ``"undetermined": True`` means a changed file could not be read."""
    found: list[dict[str, Any]] = []

    def lost(who: str, reason: str, path: str, **extra: Any) -> None:
        found.append({"host": snapshot.name, "user": who, "reason": reason, "path": path, **extra})

    texts: dict[str, str | None] = {}
    for path in ACCOUNT_FILES:
        state = snapshot.entries.get(path)
        if state is None:
            continue  # the image's file, unchanged
        if state.is_whiteout or not state.is_file:
            for who in admins:
                lost(who, f"{path} was deleted or replaced", path)
            continue
        f = snapshot.file(path)
        texts[path] = f.text.decode("utf-8", "replace") if f is not None and f.text is not None else None
        if texts[path] is None:
            found.append({"host": snapshot.name, "path": path, "undetermined": True,
                          "reason": f"{path} changed and could not be read"})  # fmt: skip
    if passwd := texts.get("/etc/passwd"):
        users = _table(passwd)
        for who in admins:
            if who not in users:
                lost(who, "account deleted", "/etc/passwd")
            elif len(users[who]) >= 7 and users[who][6].strip() in NO_LOGIN_SHELLS:
                lost(who, f"login shell set to {users[who][6].strip() or 'nothing'}", "/etc/passwd")
    if shadow := texts.get("/etc/shadow"):
        entries = _table(shadow)
        for who in admins:
            fields = entries.get(who)
            if fields is None:
                continue  # an account without a shadow entry is reported through /etc/passwd, if deleted
            if len(fields) > 1 and fields[1].startswith("!"):
                lost(who, "password locked", "/etc/shadow")
            if len(fields) > 7 and fields[7].strip().isdigit():
                expires = dt.date(1970, 1, 1) + dt.timedelta(days=int(fields[7]))
                if expires <= today:
                    lost(who, f"account expired on {expires.isoformat()}", "/etc/shadow")
    if group := texts.get("/etc/group"):
        sudo = _table(group).get("sudo")
        members = set(sudo[3].split(",")) if sudo and len(sudo) > 3 else set()
        for who in admins:
            if who not in members:
                lost(who, "removed from the sudo group", "/etc/group")
    sudoers = texts.get("/etc/sudoers")
    if "/etc/sudoers" in texts and sudoers is not None and not _SUDO_GROUP_RULE.search(sudoers):
        for who in admins:
            lost(who, "the %sudo rule was removed", "/etc/sudoers")
    for path, f in snapshot.items():
        if path.startswith("/etc/sudoers.d/") and f.text is not None:
            for line in f.text.decode("utf-8", "replace").splitlines():
                if "!" not in line or line.lstrip().startswith("#"):
                    continue
                for who in admins:
                    if re.search(rf"(^|[\s,]){re.escape(who)}([\s,]|$)|%sudo\b", line):
                        lost(who, "a sudoers rule denies it", path, rule=line.strip())
    return found


def _table(text: str) -> Mapping[str, list[str]]:
    """Colon-separated records by their first field (passwd, shadow, group)."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            fields = line.split(":")
            rows.setdefault(fields[0], fields)
    return rows
