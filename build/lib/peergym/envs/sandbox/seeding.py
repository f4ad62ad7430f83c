"""Seeded files as a streamed tar archive, so that ``put_archive`` writes them with exact metadata.

Why tar through the Docker API rather than commands in the container: the archive carries owner, mode and
mtime (to the nanosecond, in PAX headers) and is unpacked by the engine before the host even starts, with no
tool inside the container involved, and a multi-GB weights file streams without being held in memory.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator

from .types import SeedFile

_BLOCK = tarfile.BLOCKSIZE


def tar_stream(files: Iterable[SeedFile]) -> Iterator[bytes]:
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
