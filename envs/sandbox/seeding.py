"""Seeded files as a streamed tar archive, so that ``put_archive`` writes them with exact metadata.

Why tar through the Docker API rather than commands in the container: the archive carries owner, mode and
mtime (to the nanosecond, in PAX headers) and is unpacked by the engine before the host even starts, with no
tool inside the container involved, and a multi-GB weights file streams without being held in memory.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import posixpath
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import ROUND_HALF_EVEN, Decimal

from .types import SeedFile

_BLOCK = tarfile.BLOCKSIZE


def tar_stream(files: Iterable[SeedFile]) -> Iterator[bytes | bytearray]:
    """Yield a tar archive (PAX format) of ``files``, member paths relative to ``/``."""
    for seed in files:
        info = tarfile.TarInfo(seed.path.lstrip("/"))
        info.uid, info.gid, info.mode, info.mtime = seed.uid, seed.gid, seed.mode, seed.mtime
        info.uname = info.gname = ""  # numeric ids only: the image's names are not the runner's
        if seed.is_dir:
            info.type = tarfile.DIRTYPE
            yield info.tobuf(tarfile.PAX_FORMAT)
            continue
        info.size = seed.nbytes
        yield info.tobuf(tarfile.PAX_FORMAT)
        written = 0
        chunks = [seed.content] if isinstance(seed.content, bytes) else seed.content()
        for chunk in chunks:
            written += len(chunk)
            yield chunk
        if written != info.size:
            raise ValueError(f"seed file {seed.path}: content gave {written} bytes, expected {info.size}")
        if written % _BLOCK:
            yield b"\0" * (_BLOCK - written % _BLOCK)
    yield b"\0" * (2 * _BLOCK)


# Larger seed files do not go through the engine's archive API (~240 MB/s here): they are written to the
# engine's disk while the container is being created, then renamed into its writable layer.
STAGED_BYTES = 1 << 20

STAGING_DIR = "peergym-staging"  # in the engine's data root, so that moving into a layer is a rename
_TOPDIR_FL = 0x00020000  # FS_TOPDIR_FL: "top of a directory hierarchy", ext4 spreads its subdirectories
_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS = 0x80086601, 0x40086602


def build_dir(data_root: str, owner: str) -> str:
    """A new, empty directory on the engine's disk in which a host's layer is built before it is moved in.

    Why not write into the layer at once: ext4 puts a new file's inode in its parent directory's block group,
    and the engine makes every layer in one place. A sweep then creates and deletes hundreds of inodes per
    episode in the same few groups, and on an ext4 without a journal (this kind of machine's) every new inode
    first skips each one deleted there in the last seconds to minutes (``recently_deleted``): creating a
    file cost up to 0.6 ms, and the engine spent about 13 % of the machine on it during a sweep. The staging
    directory is marked as a top directory, so each build directory lands in a block group of its own, and the
    layer's files keep their inodes there when they are renamed into the layer.

    ``owner`` (lifecycle.owner_id) is in the name, so that what a run killed mid-seed left is found by
    :func:`reap_builds`.
    """
    root = os.path.join(data_root, STAGING_DIR)
    for _ in range(2):
        if root not in _MARKED:  # once per process, not on every host's build
            os.makedirs(root, mode=0o700, exist_ok=True)
            _mark_top_dir(root)
            _MARKED.add(root)
        try:
            return tempfile.mkdtemp(dir=root, prefix=f"{_BUILD_PREFIX}{owner}-")
        except FileNotFoundError:  # someone removed the staging root since: make it again
            _MARKED.discard(root)
    raise FileNotFoundError(f"cannot create a build directory in {root}")


_MARKED: set[str] = set()


_BUILD_PREFIX = "layer-"
_BUILD_SUFFIX = 8  # tempfile.mkdtemp's random part
_LEGACY_AGE_S = 3600.0  # files an older version staged directly in the staging directory


def reap_builds(data_root: str, alive: Callable[[str], bool], everything: bool = False) -> list[str]:
    """Remove the build directories (and their staged files, a 64 MiB weights file among them) of runs that
    died while seeding, or all of them with ``everything``; returns their names. A live run's are kept."""
    root = os.path.join(data_root, STAGING_DIR)
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []  # nothing staged yet, or an engine whose disk is not this machine's
    removed = []
    for entry in entries:
        if entry.name.startswith(_BUILD_PREFIX) and entry.is_dir(follow_symlinks=False):
            owner = entry.name[len(_BUILD_PREFIX) : -(_BUILD_SUFFIX + 1)]
            if everything or not alive(owner):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.name)
        elif entry.is_file(follow_symlinks=False):
            try:
                stale = time.time() - entry.stat(follow_symlinks=False).st_mtime > _LEGACY_AGE_S
            except OSError:
                continue
            if everything or stale:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def _mark_top_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        if not flags[0] & _TOPDIR_FL:
            flags[0] |= _TOPDIR_FL
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags)
    except OSError:
        pass  # a filesystem without the flag (or without inode flags): layers are built there all the same
    finally:
        os.close(fd)


def stage(directory: str, seed: SeedFile) -> str:
    """Write ``seed`` with its owner, mode and mtime to a new file in ``directory`` (on the engine's disk, so
    that :func:`move_into_layer` is a rename); returns its path. Done while the container is being created."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=directory, prefix="seed-")
    try:
        write_seed(fd, seed)
    except BaseException:
        os.unlink(path)
        raise
    return path


def write_seed(fd: int, seed: SeedFile) -> None:
    """Write ``seed``'s content to the new file open as ``fd``, then its owner, mode and times; closes ``fd``."""
    with os.fdopen(fd, "wb", buffering=_WRITE_BUFFER) as out:
        if seed.nbytes >= STAGED_BYTES:
            os.posix_fallocate(fd, 0, seed.nbytes)  # blocks at once, not page by page (64 MiB: 14 -> 10 ms)
        written = 0
        for chunk in [seed.content] if isinstance(seed.content, bytes) else seed.content():
            out.write(chunk)
            written += len(chunk)
        if written != seed.nbytes:
            raise ValueError(f"seed file {seed.path}: content gave {written} bytes, expected {seed.nbytes}")
        out.flush()
        os.fchown(fd, seed.uid, seed.gid)
        os.fchmod(fd, seed.mode)  # after chown, which clears set-id bits
        os.utime(fd, ns=(ns_of(seed.mtime), ns_of(seed.mtime)))


def move_into_layer(upper_dir: str, staged: dict[str, str], dir_mtimes: dict[str, float]) -> None:
    """Rename staged files (seed path -> staged path) into a created, not yet started, container's writable
    layer.

    Every parent must already be in the layer (seeded as a directory through the archive): a new entry
    changes its parent's mtime, which is set back to ``dir_mtimes[parent]``. No process of the container
    exists yet, so nothing can race these renames, and a name already there is never replaced.
    """
    for path, source in staged.items():
        target = os.path.join(upper_dir, path.lstrip("/"))
        if os.path.lexists(target):
            raise FileExistsError(f"{path} is already in the layer")
        os.rename(source, target)
    for parent in {posixpath.dirname(p) for p in staged}:
        when = ns_of(dir_mtimes[parent])
        os.utime(os.path.join(upper_dir, parent.lstrip("/")), ns=(when, when), follow_symlinks=False)


# Smaller than the weights' 1 MiB pieces, which then go to the file without passing through the buffer.
_WRITE_BUFFER = 64 << 10


def ns_of(seconds: float) -> int:
    """A seed's time in nanoseconds as the archive carries it: the float's shortest decimal form, read exactly
    (``1727766000.25 * 1e9`` would give ...249999872)."""
    return int(Decimal(repr(float(seconds))).scaleb(9).to_integral_value(ROUND_HALF_EVEN))
