"""Seeded files go into the host as a tar stream with exact metadata."""

from __future__ import annotations

import io
import os
import stat
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


def test_layers_are_built_in_new_directories_under_a_top_directory(tmp_path) -> None:
    import array
    import fcntl

    from peergym.envs.sandbox.seeding import STAGING_DIR, build_dir

    first, second = build_dir(str(tmp_path), "me"), build_dir(str(tmp_path), "me")
    root = tmp_path / STAGING_DIR
    assert first != second and os.path.dirname(first) == os.path.dirname(second) == str(root)
    assert os.listdir(first) == [] and stat.S_IMODE(os.stat(root).st_mode) == 0o700
    flags = array.array("i", [0])
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, 0x80086601, flags, True)  # FS_IOC_GETFLAGS
    except OSError:
        pytest.skip("this filesystem keeps no inode flags")
    finally:
        os.close(fd)
    assert flags[0] & 0x00020000  # FS_TOPDIR_FL: ext4 spreads the build directories over block groups


def test_builds_left_by_dead_runs_are_reaped_and_live_ones_kept(tmp_path) -> None:
    import time

    from peergym.envs.sandbox.lifecycle import owner_alive, owner_id
    from peergym.envs.sandbox.seeding import STAGING_DIR, build_dir, reap_builds

    mine = build_dir(str(tmp_path), owner_id())
    dead_owner = owner_id().rsplit(":", 1)[0] + ":1"  # this pid with another start time: a run long gone
    dead = build_dir(str(tmp_path), dead_owner)
    with open(os.path.join(dead, "seed-weights"), "wb") as f:
        f.write(b"x" * 4096)
    root = tmp_path / STAGING_DIR
    old, new = root / "seed-old", root / "seed-new"  # what an earlier version staged beside the builds
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert not owner_alive(dead_owner) and owner_alive(owner_id())
    removed = reap_builds(str(tmp_path), owner_alive)
    assert sorted(removed) == sorted([os.path.basename(dead), "seed-old"])
    assert os.path.isdir(mine) and not os.path.exists(dead) and new.exists()
    assert sorted(reap_builds(str(tmp_path), owner_alive, everything=True)) == sorted(
        [os.path.basename(mine), "seed-new"]
    )
    assert os.listdir(root) == []
    assert reap_builds(str(tmp_path / "elsewhere"), owner_alive) == []


def test_a_staging_root_removed_while_running_is_made_again(tmp_path) -> None:
    import shutil

    from peergym.envs.sandbox.seeding import STAGING_DIR, build_dir

    build_dir(str(tmp_path), "me")
    shutil.rmtree(tmp_path / STAGING_DIR)
    assert os.path.isdir(build_dir(str(tmp_path), "me"))
