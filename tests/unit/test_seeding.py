"""Seeded files go into the host as a tar stream with exact metadata."""

from __future__ import annotations

import io
import tarfile

import pytest

from peergym.envs.sandbox import SeedFile
from peergym.envs.sandbox.seeding import tar_stream


def test_archive_carries_exact_metadata_and_streamed_content() -> None:
    chunks = [b"a" * 1000, b"b" * 25]
    files = [
        SeedFile("/data", is_dir=True, uid=1000, gid=1000, mode=0o750, mtime=1700000000.0),
        SeedFile("/data/x.txt", b"hello", uid=1000, gid=1001, mode=0o640, mtime=1727766764.25),
        SeedFile("/data/w.bin", lambda: iter(chunks), size=1025, mtime=1.0),
    ]
    with tarfile.open(fileobj=io.BytesIO(b"".join(tar_stream(files)))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        contents = {name: tar.extractfile(m).read() for name, m in members.items() if m.isfile()}
    assert members["data"].isdir() and members["data"].mode == 0o750
    x = members["data/x.txt"]
    assert (x.uid, x.gid, x.mode, x.mtime) == (1000, 1001, 0o640, 1727766764.25)
    assert contents["data/x.txt"] == b"hello"
    assert contents["data/w.bin"] == b"a" * 1000 + b"b" * 25


def test_streamed_content_of_the_wrong_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected 10"):
        b"".join(tar_stream([SeedFile("/x", lambda: iter([b"abc"]), size=10)]))
