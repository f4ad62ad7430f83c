"""Seeding a created (not yet started) container by writing its writable layer directly.

The engine's archive API (``put_archive``) mounts the container's filesystem, unpacks the tar in a helper
process and unmounts it again: about 40 ms on an idle engine and over 100 ms while the other host of the
episode is being created, on the path of every reset. Before the container starts, its overlay is not
mounted, so the same result can be written straight into the layer's directory on the engine's disk.

"The same result" is what the kernel and the engine would have produced from the archive:
- a seeded directory or file gets exactly its seeded owner, mode and times (atime = mtime, as the engine's
  unpacker sets them);
- a parent that is not seeded but exists in the image is copied up as the kernel copies up a directory: the
  image's owner, mode, times and extended attributes;
- a directory's mtime is set after its entries are written, so adding them does not change it.

Where that result is not certain, :func:`plan` raises :class:`LayerUnsuitable` before anything is written
and the caller uses the archive: a parent that is not a directory in the image (a symlink such as /var/run, or
a file), a parent that exists nowhere, a file seeded where the image has a directory, or a layer whose
whiteouts and opaque markers cannot be read. No process of the container exists yet, so nothing races these
writes; every path is created new (``O_EXCL``, no symlink followed).
"""

from __future__ import annotations

import enum
import errno
import functools
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .seeding import ns_of, write_seed
from .types import SeedFile

# The markers overlayfs reads in a lower layer: "trusted." as the engine (root) writes them, "user." in a
# rootless engine's layers.
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


class LayerUnsuitable(Exception):
    """Writing the layer directly might not give what the archive would; the archive must be used."""


@dataclass(frozen=True)
class _ImageDir:
    """A parent directory as the image has it: where it is, and its stat."""

    path: str
    source: str
    stat: os.stat_result


@dataclass(frozen=True)
class Plan:
    """What :func:`write` creates, checked against the image's layers: directories parents first."""

    image_dirs: tuple[_ImageDir, ...]
    seeded_dirs: tuple[SeedFile, ...]
    files: tuple[SeedFile, ...]


def lower_dirs(inspect_data: Mapping[str, Any]) -> list[str]:
    """The container's image layers, top-most first, from its inspect data (empty if the driver shows none)."""
    data = (inspect_data.get("GraphDriver") or {}).get("Data") or {}
    lowers = data.get("LowerDir") or ""
    return [p for p in lowers.split(":") if p]


def plan(lowers: Sequence[str], files: Sequence[SeedFile]) -> Plan:
    """Check ``files`` against the image's layers (top-most first) and return what to write.

    Raises:
        LayerUnsuitable: the archive must be used (see the module's doc).
        ValueError: a path that is not absolute and normal (``..``, ``//``), which no host should be given.
    """
    for f in files:
        _inside("/", f.path)
    if not lowers:
        raise LayerUnsuitable("the engine shows no image layers")
    seeded = {f.path: f for f in files}
    if len(seeded) != len(files):
        raise LayerUnsuitable("a path is seeded twice")
    image_dirs = []
    for parent in sorted({p for f in files for p in _ancestors(f.path)} - seeded.keys(), key=_depth):
        found = _in_image(lowers, parent)
        if found is None or not stat.S_ISDIR(found[1].st_mode):
            raise LayerUnsuitable(f"{parent} is not a directory in the image")
        image_dirs.append(_ImageDir(parent, *found))
    for f in files:
        found = _in_image(lowers, f.path)
        if found is not None and stat.S_ISDIR(found[1].st_mode) != f.is_dir:
            raise LayerUnsuitable(f"{f.path} is a {'file' if f.is_dir else 'directory'} in the image")
    dirs = sorted((f for f in files if f.is_dir), key=lambda f: _depth(f.path))
    return Plan(tuple(image_dirs), tuple(dirs), tuple(f for f in files if not f.is_dir))


def write(upper: str, plan: Plan, staged: Mapping[str, str], build: str | None = None) -> None:
    """Create ``plan`` in the empty writable layer ``upper``. Files in ``staged`` (seed path -> a file on
    the same disk, written with its metadata by :func:`seeding.stage`) are renamed in; the others written.

    With ``build`` (an empty directory on the same disk, :func:`seeding.build_dir`), the tree is made there and
    its top entries are then renamed into ``upper``: the files keep the inodes they got in ``build``."""
    root = build or upper
    made: dict[str, tuple[int, int]] = {}  # directory -> (atime, mtime) in ns, set once its entries exist
    entries: list[tuple[str, _ImageDir | SeedFile]] = [(d.path, d) for d in plan.image_dirs]
    entries += [(d.path, d) for d in plan.seeded_dirs]
    for path, entry in sorted(entries, key=lambda e: _depth(e[0])):
        target = _inside(root, path)
        os.mkdir(target, 0o700)
        if isinstance(entry, _ImageDir):
            _copy_up(entry, target)
            made[path] = (entry.stat.st_atime_ns, entry.stat.st_mtime_ns)
        else:
            os.chown(target, entry.uid, entry.gid, follow_symlinks=False)
            os.chmod(target, entry.mode, follow_symlinks=False)
            made[path] = (ns_of(entry.mtime), ns_of(entry.mtime))
    for f in plan.files:
        target = _inside(root, f.path)
        if f.path in staged:
            if os.path.lexists(target):
                raise FileExistsError(f"{f.path} is already in the layer")
            os.rename(staged[f.path], target)
        else:
            _write_file(target, f)
    if build is not None:
        for name in sorted(os.listdir(build)):
            if os.path.lexists(os.path.join(upper, name)):
                raise FileExistsError(f"/{name} is already in the layer")
            os.rename(os.path.join(build, name), os.path.join(upper, name))
    for path in sorted(made, key=_depth, reverse=True):  # children first: setting a time changes no parent
        os.utime(_inside(upper, path), ns=made[path], follow_symlinks=False)


def _write_file(target: str, f: SeedFile) -> None:
    write_seed(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), f)


def _copy_up(entry: _ImageDir, target: str) -> None:
    """Owner, mode and extended attributes of the image's directory, as the kernel's copy-up keeps them."""
    os.chown(target, entry.stat.st_uid, entry.stat.st_gid, follow_symlinks=False)
    os.chmod(target, stat.S_IMODE(entry.stat.st_mode), follow_symlinks=False)
    for name in os.listxattr(entry.source, follow_symlinks=False):
        if not name.startswith(_OVERLAY_XATTR_PREFIXES):
            value = os.getxattr(entry.source, name, follow_symlinks=False)
            os.setxattr(target, name, value, follow_symlinks=False)


def _in_image(lowers: Sequence[str], path: str) -> tuple[str, os.stat_result] | None:
    """Where overlayfs would find ``path`` in the image's layers (top-most first), and its stat; None if the
    merged image has no such entry. Nothing is followed: a component that is not a directory ends the lookup.

    The top-most layer is the container's own (the engine's init layer, made with the container); what the
    layers below it say is remembered per (layers, path): an image's layers never change (a rebuilt image has
    new ones), and every episode of a sweep asks the same paths of the same image (a few hundred lstat and
    getxattr calls a host).
    """
    parts = tuple(path.strip("/").split("/"))
    if not lowers:
        return None
    found = _in_layer(lowers[0], parts)
    return _in_layers(tuple(lowers[1:]), parts) if found is _ABSENT else found


class _Absent(enum.Enum):
    ABSENT = "the path is not in this layer and nothing there hides the layers below"


_ABSENT = _Absent.ABSENT


@functools.lru_cache(maxsize=16384)
def _in_layers(lowers: tuple[str, ...], parts: tuple[str, ...]) -> tuple[str, os.stat_result] | None:
    for layer in lowers:
        found = _in_layer(layer, parts)
        if found is not _ABSENT:
            return found
    return None


def _in_layer(layer: str, parts: tuple[str, ...]) -> tuple[str, os.stat_result] | _Absent | None:
    """The entry at ``parts`` in one layer; None if the layer hides it (a whiteout, or an opaque directory
    above a missing entry); :data:`_ABSENT` if the layers below decide."""
    here, opaque = layer, False
    for i, part in enumerate(parts):
        here = os.path.join(here, part)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            return None if opaque else _ABSENT  # an opaque directory hides the layers below it
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None  # a whiteout: deleted from this layer down
        if i == len(parts) - 1:
            return here, st
        if not stat.S_ISDIR(st.st_mode):
            raise LayerUnsuitable(f"/{'/'.join(parts[: i + 1])} is not a directory in the image")
        opaque = opaque or _opaque(here)
    return _ABSENT


def _opaque(directory: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(directory, name, follow_symlinks=False) == b"y":
                return True
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise LayerUnsuitable(f"cannot read {name} of {directory}: {exc}") from exc
    return False


def _inside(upper: str, path: str) -> str:
    # normpath keeps a leading "//" (POSIX leaves its meaning to the system), so it is refused by name.
    if not path.startswith("/") or path.startswith("//") or posixpath.normpath(path) != path or path == "/":
        raise ValueError(f"seed path {path!r} is not a normal absolute path inside the host")
    return os.path.join(upper, path[1:])


def _ancestors(path: str) -> Iterator[str]:
    parent, child = posixpath.dirname(path), path
    while parent not in ("/", "") and parent != child:
        yield parent
        parent, child = posixpath.dirname(parent), parent


def _depth(path: str) -> int:
    return path.rstrip("/").count("/")
