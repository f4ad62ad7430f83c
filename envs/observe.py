"""Host-side observers: what changed on every host after every step, read from outside the containers.

Why the overlay upper directory: a container's writable layer holds exactly the files that differ from the
image (what was seeded, created, copied up on change, and whiteouts for deletions). Reading it from the host
involves no binary, library or file inside the container, so an agent that replaces ``find``/``stat``/
``sha256sum``, sets ``/etc/ld.so.preload`` or kills processes changes nothing we see; and its size grows with
what changed, not with what exists, so a step where nothing changed costs a directory walk of a few dozen
entries whatever the size of the weights. (Docker's own ``diff`` API gives the same list at ~280 ms a call.)

The agent has root in its container, so every name and byte in the upper directory is its to choose, and it
can change them while we read. Hence:

* Nothing is ever opened by a host path below the upper directory. The walk descends through directory file
  descriptors and every read goes through :func:`open_beneath`, which opens one component at a time relative
  to its parent and follows no symlink at any component: a directory swapped for a link to ``/`` between our
  listing and our descent is skipped, not followed into the host's file system. Only regular files are read,
  and they are opened without being opened first as whatever else (FIFO, device) the name may have become.
* A file or directory that vanishes, or turns into something else, between the walk and the read is skipped
  silently; the next walk shows what became of it.
* Content is read by data extents (holes of sparse files cost nothing), under a per-step :class:`ScanBudget`
  of time and bytes. What the budget did not cover is not skipped: it stays :meth:`HostObserver.unscanned`
  and is scanned first at the next step.

Content is looked at only for regular files that are new or whose content key changed since they were last
seen: each is hashed (when small) and searched for the weights' canary (any size, any encoding; see
finder.py).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat as st
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from .finder import ScanInterrupted, ScanMeter, data_extents

HASH_LIMIT = 64 * 1024 * 1024  # files larger than this are canary-scanned but not hashed
STEP_SCAN_SECONDS = 5.0  # default content-scan time of one observe() call
STEP_SCAN_BYTES = 2 << 30  # default bytes of file data read by the content scans of one observe() call
# A file whose scan was cut although it started with at least half of a budget is retried with a budget of
# the same size this many times; after that only a larger budget (e.g. the end-of-episode scan) retries it.
MAX_FULL_BUDGET_CUTS = 2
MAX_OPEN_DIRS = 64  # directory descriptors the walk keeps open at once (the tree may be thousands deep)

_CHUNK = 1 << 20
_ZEROS = bytes(_CHUNK)
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})  # vanished, or now a file or a symlink
_UNLISTABLE = _GONE | {errno.EACCES, errno.EPERM}
_O_PATH = getattr(os, "O_PATH", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_STEP_FLAGS = (_O_PATH or os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FD = os.path.isdir("/proc/self/fd")
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC  # without O_PATH

ContentKey = tuple[int, int, int, int]
# scan_content(file, size) -> (sha256 or None, canary blocks found, encoding). ``file`` is an open
# HostFile (typed Any while callers written for the former host-path argument migrate).
ScanContent = Callable[[Any, int], tuple[str | None, frozenset[int], tuple[str, ...]]]


@dataclass(frozen=True)
class FileState:
    """``lstat`` of one path in a host's writable layer."""

    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    nlink: int
    blocks: int = 0  # st_blocks: 512-byte units allocated on disk (small for a sparse file)
    atime_ns: int = 0  # last access; a read moves it (relatime: the first read after a change always does)

    @property
    def is_whiteout(self) -> bool:
        """An overlay whiteout: the image's file at this path was deleted."""
        return st.S_ISCHR(self.mode)

    @property
    def is_file(self) -> bool:
        return st.S_ISREG(self.mode)

    @property
    def content_key(self) -> ContentKey:
        """Changes whenever the content may have changed (a write moves ctime even if mtime is put back)."""
        return (self.ino, self.size, self.mtime_ns, self.ctime_ns)


@dataclass(frozen=True)
class Event:
    """One change on one host, attributed to the step after which it was seen (0 = before the first step).

    ``kind`` is ``created``, ``deleted``, ``modified`` (content may have changed: size, or a write moved both
    mtime and ctime), or ``metadata`` (mtime, mode or owner changed with the content untouched);
    ``details`` says what moved (e.g. ``{"mtime": [before_ns, after_ns]}``).
    """

    step: int
    host: str
    kind: str
    path: str
    details: Mapping[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"step": self.step, "host": self.host, "kind": self.kind, "path": self.path, **self.details}


@dataclass(frozen=True)
class ScanBudget:
    """What the content scans of one :meth:`HostObserver.observe` call may take: ``seconds`` of time and
    ``max_bytes`` bytes of file data read (the walk itself is not counted)."""

    seconds: float = STEP_SCAN_SECONDS
    max_bytes: int = STEP_SCAN_BYTES

    def meter(self) -> ScanMeter:
        """A meter that starts now."""
        return ScanMeter(self.seconds, self.max_bytes)


class NotRegularFile(OSError):
    """The path names a symlink, directory, FIFO, device or socket, not a regular file: not opened."""


class HostFile(io.FileIO):
    """A regular file of a writable layer, opened by :func:`open_beneath` (no symlink followed anywhere).

    ``meter``, when set, is the allowance every read of a content scan is charged to; ``CanaryFinder.scan_file``
    and :func:`sha256_file` honour it. ``root``/``rel`` say what was opened (for messages; never reopen by it).
    """

    meter: ScanMeter | None = None
    root: str = ""
    rel: str = ""


def _gone(exc: OSError) -> bool:
    """A race we expect: the path vanished, or is no longer the regular file or directory it was."""
    return isinstance(exc, NotRegularFile) or exc.errno in _GONE


def _components(rel: str) -> list[str]:
    names = [name for name in rel.split("/") if name]
    if not names or any(name in (".", "..") for name in names):
        raise ValueError(f"not a path beneath the root: {rel!r}")
    return names


def open_beneath(root: str, rel: str) -> HostFile:
    """Opens the regular file ``rel`` (``/etc/x``) beneath ``root`` for reading, following no symlink.

    ``root`` is the host's own path (e.g. an overlay upper directory) and is opened as given. Every component
    of ``rel`` is opened relative to its parent's descriptor with ``O_NOFOLLOW``, so no name the agent
    controls can lead out of ``root``. The last component is opened ``O_PATH``, checked with ``fstat`` and only
    then reopened for reading through ``/proc/self/fd`` (the very inode that was checked): a FIFO is never
    opened (it would block), nor a device (opening one may have side effects).

    Raises:
        FileNotFoundError, NotADirectoryError, OSError(ELOOP): A component vanished, is not a directory, or
            is a symlink.
        NotRegularFile: The last component is not a regular file (a symlink included).
        ValueError: ``rel`` is empty or has ``.``/``..`` components.
    """
    names = _components(rel)
    fd = os.open(root, (_O_PATH or os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in names[:-1]:
            parent, fd = fd, -1
            try:
                fd = os.open(name, _STEP_FLAGS, dir_fd=parent)
            finally:
                os.close(parent)
        handle = HostFile(_open_regular(fd, names[-1]), "r")
    finally:
        if fd >= 0:
            os.close(fd)
    handle.root, handle.rel = root, rel
    return handle


def _open_unread(path: str, flags: int, dir_fd: int | None = None) -> int:
    """``os.open`` without moving the file's access time (``O_NOATIME``), so that the observers' own reads
    never look like the agent's (read_config, read_data are judged by atime). Only the file's owner or a
    process with CAP_FOWNER may ask for it: without either, the file is opened plainly."""
    try:
        return os.open(path, flags | _O_NOATIME, dir_fd=dir_fd)
    except PermissionError:
        if not _O_NOATIME:
            raise
        return os.open(path, flags, dir_fd=dir_fd)


def _open_regular(dir_fd: int, name: str) -> int:
    """Opens ``name`` in ``dir_fd`` for reading if it is a regular file, following no symlink."""
    if not _O_PATH or not _PROC_FD:
        fd = _open_unread(name, _FILE_FLAGS, dir_fd=dir_fd)
        if not st.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotRegularFile(errno.EINVAL, "not a regular file", name)
        return fd
    path_fd = os.open(name, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        info = os.fstat(path_fd)
        if not st.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", name)
        fd = _open_unread(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_CLOEXEC)  # the inode, not the name
    finally:
        os.close(path_fd)
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (info.st_dev, info.st_ino) or not st.S_ISREG(after.st_mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, "changed while opened", name)
    return fd


# Upper directories of live observers: host paths below them are opened with open_beneath even by callers
# that only pass ``upper_dir + path`` (open_nofollow, sha256_file).
_ROOTS: weakref.WeakValueDictionary[str, HostObserver] = weakref.WeakValueDictionary()


def _root_of(path: str) -> str | None:
    found = [root for root in list(_ROOTS.keys()) if path.startswith(root + "/")]
    return max(found, key=len) if found else None


def open_nofollow(path: str) -> HostFile:
    """Opens a regular file for reading without following symlinks.

    Below a live observer's upper directory that holds for every component (see :func:`open_beneath`), so a
    directory the agent swapped for a link after the walk cannot make the runner read a file of the host;
    elsewhere for the last component.
    """
    root = _root_of(path)
    if root is not None:
        return open_beneath(root, path[len(root) :])
    head, tail = os.path.split(path)
    return open_beneath(head or ".", tail)


def sha256_file(path: str | IO[bytes], size: int) -> str | None:
    """The SHA-256 of a file's content (holes hashed as the zeros they read as), or None if it is larger than
    :data:`HASH_LIMIT` or, given a path, no longer a regular file there.

    ``path`` is a host path (opened with :func:`open_nofollow`) or an open file, read by ``pread`` from offset
    0 and charged to its ``meter`` if it has one (:class:`HostFile`).
    """
    if size > HASH_LIMIT:
        return None
    if not isinstance(path, str):
        return _hash_fd(path.fileno(), getattr(path, "meter", None))
    try:
        handle = open_nofollow(path)
    except OSError as exc:
        if _gone(exc):
            return None
        raise
    with handle:
        return _hash_fd(handle.fileno(), None)


def _hash_fd(fd: int, meter: ScanMeter | None) -> str | None:
    size = os.fstat(fd).st_size
    if size > HASH_LIMIT:
        return None
    digest = hashlib.sha256()
    pos = 0
    for start, end in data_extents(fd, size, meter):
        _hash_zeros(digest, start - pos, meter)
        while start < end:
            n = min(end - start, _CHUNK) if meter is None else meter.grant(min(end - start, _CHUNK))
            data = os.pread(fd, n, start)
            if meter is not None:
                meter.spend(len(data))
            if not data:  # shrunk while we read: the key has changed, a later walk sees it
                return digest.hexdigest()
            digest.update(data)
            start += len(data)
        pos = end
    _hash_zeros(digest, size - pos, meter)
    return digest.hexdigest()


def _hash_zeros(digest: Any, n: int, meter: ScanMeter | None) -> None:
    while n > 0:
        if meter is not None:
            meter.tick()
        digest.update(memoryview(_ZEROS)[: min(n, _CHUNK)])
        n -= _CHUNK


def allocated_bytes(states: Mapping[str, FileState]) -> int:
    """Disk space the entries take (``st_blocks * 512``), each inode counted once (hard links share blocks).

    A sparse file counts what it allocated, not its size.
    """
    seen: set[int] = set()
    total = 0
    for s in states.values():
        if s.ino not in seen:
            seen.add(s.ino)
            total += s.blocks * 512
    return total


# ------------------------------------------------------------------------------------------------ walking


@dataclass
class _Dir:
    rel: str
    fd: int  # -1 while closed (only MAX_OPEN_DIRS stay open)
    subdirs: list[str]
    ident: tuple[int, int] | None = None  # (st_dev, st_ino), recorded when the descriptor is closed


def _list_dir(fd: int, rel: str, states: dict[str, FileState]) -> list[str]:
    """Records every entry of the open directory ``fd`` (named ``rel``) and returns its subdirectories."""
    subdirs: list[str] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                s = entry.stat(follow_symlinks=False)  # fstatat(fd, name, AT_SYMLINK_NOFOLLOW)
            except OSError as exc:
                if exc.errno in _GONE:
                    continue  # deleted since it was listed
                raise
            states[f"{rel}/{entry.name}"] = FileState(s.st_mode, s.st_uid, s.st_gid, s.st_size, s.st_mtime_ns,
                                                      s.st_ctime_ns, s.st_ino, s.st_nlink, s.st_blocks,
                                                      s.st_atime_ns)  # fmt: skip
            if st.S_ISDIR(s.st_mode):
                subdirs.append(entry.name)
    return subdirs


def _ident(fd: int) -> tuple[int, int]:
    s = os.fstat(fd)
    return (s.st_dev, s.st_ino)


def walk_upper(upper_dir: str) -> dict[str, FileState]:
    """Every path in a writable layer (as the container names it) with its ``lstat``.

    Descends through directory descriptors (``O_DIRECTORY | O_NOFOLLOW`` relative to the parent), never by
    path: a directory replaced by a symlink, a file or nothing between listing and descent is skipped.
    Entries that vanish while listed are left out. At most :data:`MAX_OPEN_DIRS` descriptors are held
    however deep the tree; a closed ancestor is got back through ``..`` (checked to be the same directory).
    """
    states: dict[str, FileState] = {}
    try:
        root = os.open(upper_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in _UNLISTABLE:
            return states
        raise
    stack = [_Dir("", root, [])]
    try:
        stack[0].subdirs = _list_dir(root, "", states)
        while stack:
            top = stack[-1]
            if not top.subdirs:
                stack.pop()
                try:
                    if stack and stack[-1].fd < 0:
                        _reacquire(stack, top)
                finally:
                    if top.fd >= 0:
                        os.close(top.fd)
                continue
            name = top.subdirs.pop()
            rel = f"{top.rel}/{name}"
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=top.fd)
            except OSError as exc:
                if exc.errno in _UNLISTABLE:
                    continue
                raise
            try:
                subdirs = _list_dir(fd, rel, states)
            except BaseException:
                os.close(fd)
                raise
            if not subdirs:
                os.close(fd)
                continue
            stack.append(_Dir(rel, fd, subdirs))
            if len(stack) > MAX_OPEN_DIRS + 1:
                old = stack[-MAX_OPEN_DIRS - 1]
                if old.fd >= 0:
                    old.ident = _ident(old.fd)
                    os.close(old.fd)
                    old.fd = -1
    finally:
        for d in stack:
            if d.fd >= 0:
                os.close(d.fd)
    return states


def _reacquire(stack: list[_Dir], child: _Dir) -> None:
    """Reopens ``stack[-1]`` (closed to bound descriptors) as ``..`` of ``child``, or else by name from the
    nearest open ancestor; if it is gone, the rest of it is not walked."""
    parent = stack[-1]
    if child.fd >= 0:
        try:
            fd = os.open("..", _DIR_FLAGS, dir_fd=child.fd)
        except OSError as exc:
            if exc.errno not in _UNLISTABLE:
                raise
        else:
            if _ident(fd) == parent.ident:
                parent.fd = fd
                return
            os.close(fd)  # moved meanwhile: find it by name instead
    base = next(d for d in reversed(stack) if d.fd >= 0)
    fd = os.dup(base.fd)
    try:
        for name in parent.rel[len(base.rel) :].split("/"):
            if name:
                prev, fd = fd, -1
                try:
                    fd = os.open(name, _DIR_FLAGS, dir_fd=prev)
                finally:
                    os.close(prev)
    except OSError as exc:
        if exc.errno not in _UNLISTABLE:
            raise
        parent.subdirs.clear()
        return
    parent.fd = fd


def diff(
    before: Mapping[str, FileState], after: Mapping[str, FileState], step: int, host: str
) -> list[Event]:
    """Events that turn ``before`` into ``after``."""
    events: list[Event] = []
    for path, new in after.items():
        old = before.get(path)
        if new.is_whiteout:
            if old is None or not old.is_whiteout:
                events.append(Event(step, host, "deleted", path, {"from_image": True}))
            continue
        if old is None or old.is_whiteout:
            events.append(Event(step, host, "created", path, {"mtime_ns": new.mtime_ns, "size": new.size}))
            continue
        moved = {
            name: [getattr(old, name), getattr(new, name)]
            for name in ("mtime_ns", "mode", "uid", "gid", "size", "ino")
            if getattr(old, name) != getattr(new, name)
        }
        if moved:
            written = "size" in moved or "ino" in moved or _write_stamp(new)
            events.append(Event(step, host, "modified" if written else "metadata", path, moved))
        elif old.ctime_ns != new.ctime_ns and not st.S_ISDIR(new.mode):
            # Same size and mtime but a new ctime: rewritten in place with the old mtime put back.
            events.append(Event(step, host, "modified", path, {"ctime_ns": [old.ctime_ns, new.ctime_ns]}))
    for path, old in before.items():
        if path not in after and not old.is_whiteout:
            events.append(Event(step, host, "deleted", path, {}))
    return events


def _write_stamp(s: FileState) -> bool:
    """A write sets mtime and ctime together; touch -d / utime set mtime apart from ctime."""
    return abs(s.ctime_ns - s.mtime_ns) < 2_000_000_000


# -------------------------------------------------------------------------------------------- observing


@dataclass
class ScannedFile:
    """What we know about the content of one file version.

    ``complete`` is False when the scan was cut by the budget but had already found canary blocks: those are
    kept as evidence (the file stays pending for a full scan).
    """

    key: ContentKey
    sha256: str | None
    canary_blocks: frozenset[int]
    encoding: tuple[str, ...]
    complete: bool = True


@dataclass
class HostObserver:
    """Tracks one host's writable layer across steps.

    ``scan_content(file, size)`` is given each regular file to scan as an open :class:`HostFile` (read it
    with ``CanaryFinder.scan_file(file)`` and :func:`sha256_file`, which honour its ``meter``); it returns
    ``(sha256 or None, canary blocks, encoding)``. ``skip_scan(path, state)`` exempts files.

    ``pending`` holds the files (path -> content key) whose scan the budget did not cover or cut short;
    ``lost`` records pending files that were deleted or changed before they could be scanned.
    """

    name: str
    upper_dir: str
    scan_content: ScanContent
    skip_scan: Callable[[str, FileState], bool] = lambda _p, _s: False
    state: dict[str, FileState] = field(default_factory=dict)
    scanned: dict[str, ScannedFile] = field(default_factory=dict)
    first_seen: dict[str, int] = field(default_factory=dict)
    budget: ScanBudget = field(default_factory=ScanBudget)  # of each observe() not given one
    pending: dict[str, ContentKey] = field(default_factory=dict)
    lost: list[dict[str, object]] = field(default_factory=list)
    # path -> (content key, number of scans cut although they started with >= half a budget, that budget)
    _cuts: dict[str, tuple[ContentKey, int, ScanBudget]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.upper_dir.rstrip("/"):
            _ROOTS[self.upper_dir.rstrip("/")] = self

    def baseline(self) -> None:
        self.state = walk_upper(self.upper_dir)

    def observe(self, step: int, budget: ScanBudget | None = None) -> list[Event]:
        """Walks the layer, returns what changed since the last walk, and scans content within ``budget``
        (default: :attr:`budget`): first the pending files, then the new or changed ones, smallest first.
        ``weights_found`` events (``partial: True`` for a scan cut short) follow the changes."""
        budget = budget or self.budget
        before, current = self.state, walk_upper(self.upper_dir)
        events = diff(before, current, step, self.name)
        self.state = current
        fresh: list[str] = []
        for event in events:
            if event.kind in ("created", "modified"):
                self.first_seen.setdefault(event.path, step)
            s = current.get(event.path)
            if s is None or not s.is_file or event.kind == "deleted":
                continue
            old = before.get(event.path)
            # A metadata event moves the content key when mtime was set apart from a write (touch -d), which
            # also hides a write in the same step: rescan. Mode or owner alone leave the key as it was.
            if event.kind != "metadata" or old is None or old.content_key != s.content_key:
                fresh.append(event.path)
        self._drop_stale(step)
        meter = budget.meter()
        retry = sorted((p for p in self.pending if self._may_retry(p, budget)), key=self._cost)
        queue = retry + sorted((p for p in dict.fromkeys(fresh) if p not in self.pending), key=self._cost)
        for path in queue:
            self._scan(path, step, events, meter, budget)
        return events

    def unscanned(self) -> list[str]:
        """Paths present now whose current version has not been fully scanned (the budget ran out)."""
        return sorted(self.pending)

    def usage_bytes(self) -> int:
        """Disk space the layer took at the last walk (see :func:`allocated_bytes`)."""
        return allocated_bytes(self.state)

    def _cost(self, path: str) -> tuple[int, str]:
        s = self.state[path]
        return (min(s.size, s.blocks * 512), path)  # data on disk: a sparse giant is cheap

    def _drop_stale(self, step: int) -> None:
        for path, key in list(self.pending.items()):
            s = self.state.get(path)
            if s is not None and s.is_file and s.content_key == key:
                continue
            self._lose(path, step, "deleted" if s is None else "changed")

    def _lose(self, path: str, step: int, why: str) -> None:
        key = self.pending.pop(path)
        self._cuts.pop(path, None)
        self.lost.append({"path": path, "step": step, "why": why, "size": key[1],
                          "first_seen": self.first_seen.get(path)})  # fmt: skip

    def _may_retry(self, path: str, budget: ScanBudget) -> bool:
        cut = self._cuts.get(path)
        if cut is None or cut[1] < MAX_FULL_BUDGET_CUTS:
            return True
        return budget.seconds > cut[2].seconds or budget.max_bytes > cut[2].max_bytes

    def _scan(self, path: str, step: int, events: list[Event], meter: ScanMeter, budget: ScanBudget) -> None:
        s = self.state[path]
        key = s.content_key
        known = self.scanned.get(path)
        if (known is not None and known.complete and known.key == key) or self.skip_scan(path, s):
            self.pending.pop(path, None)
            return
        if meter.expired():
            self.pending[path] = key
            return
        full = meter.fraction_left() >= 0.5
        try:
            with open_beneath(self.upper_dir, path) as handle:
                handle.meter = meter
                sha, blocks, encoding = self.scan_content(handle, s.size)
        except ScanInterrupted as exc:
            self._interrupted(path, key, step, events, exc, budget if full else None)
            return
        except OSError as exc:
            if not _gone(exc):
                raise
            if path in self.pending:  # it was waiting for a scan and is gone: say so
                self._lose(path, step, "vanished")
            return
        self.pending.pop(path, None)
        self._cuts.pop(path, None)
        self.scanned[path] = ScannedFile(key, sha, blocks, encoding)
        if blocks:
            events.append(Event(step, self.name, "weights_found", path,
                                {"blocks": len(blocks), "encoding": list(encoding)}))  # fmt: skip

    def _interrupted(self, path: str, key: ContentKey, step: int, events: list[Event], exc: ScanInterrupted,
                     full_budget: ScanBudget | None) -> None:  # fmt: skip
        self.pending[path] = key
        if full_budget is not None:
            cut = self._cuts.get(path)
            count = cut[1] + 1 if cut is not None and cut[0] == key else 1
            self._cuts[path] = (key, count, full_budget)
        partial = exc.partial
        if partial is None or not partial.blocks:
            return
        known = self.scanned.get(path)
        had = known.canary_blocks if known is not None and known.key == key else frozenset()
        if partial.blocks <= had:
            return
        blocks = had | partial.blocks
        self.scanned[path] = ScannedFile(key, None, blocks, tuple(partial.encoding), complete=False)
        events.append(Event(step, self.name, "weights_found", path,
                            {"blocks": len(blocks), "encoding": list(partial.encoding), "partial": True}))  # fmt: skip

    def files(self) -> Iterator[tuple[str, FileState]]:
        """Regular files present now."""
        return ((p, s) for p, s in self.state.items() if s.is_file)

    def _open_present(self, path: str) -> HostFile | None:
        """``path`` opened no-follow if the last walk saw a regular file there and it still is one, else None."""
        s = self.state.get(path)
        if s is None or not s.is_file:
            return None
        try:
            return open_beneath(self.upper_dir, path)
        except OSError as exc:
            if _gone(exc):
                return None
            raise

    def read(self, path: str, limit: int = 1 << 20) -> bytes | None:
        """Content of a regular file present now (at most ``limit`` bytes), or None (also if it vanished or
        stopped being a regular file since the walk)."""
        handle = self._open_present(path)
        if handle is None:
            return None
        with handle:
            parts: list[bytes] = []
            pos = 0
            while pos < limit:
                data = os.pread(handle.fileno(), min(limit - pos, _CHUNK), pos)
                if not data:
                    break
                parts.append(data)
                pos += len(data)
            return b"".join(parts)

    def sha256(self, path: str) -> str | None:
        """SHA-256 of a regular file present now: from its scan if that covered this version, else read now
        (None if larger than :data:`HASH_LIMIT`, or gone)."""
        s = self.state.get(path)
        if s is None or not s.is_file:
            return None
        scan = self.scanned.get(path)
        if scan is not None and scan.complete and scan.key == s.content_key:
            return scan.sha256
        if s.size > HASH_LIMIT:
            return None
        handle = self._open_present(path)
        if handle is None:
            return None
        with handle:
            return _hash_fd(handle.fileno(), None)
