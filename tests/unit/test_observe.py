"""The observer's diff of writable-layer snapshots, on a real directory standing in for an upper layer."""

from __future__ import annotations

import os
import stat

from peergym.envs.observe import HostObserver, diff, walk_upper


def kinds(events):
    return sorted((e.kind, e.path) for e in events)


def test_created_modified_metadata_deleted(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    for name in ("keep", "touch", "write", "gone"):
        (tmp_path / "data" / name).write_text(name)
    before = walk_upper(str(tmp_path))
    os.utime(tmp_path / "data" / "touch", (1.7e9, 1.7e9))  # like touch -d: mtime apart from ctime
    (tmp_path / "data" / "write").write_text("changed content")
    (tmp_path / "data" / "gone").unlink()
    (tmp_path / "data" / "new").write_text("x")
    events = diff(before, walk_upper(str(tmp_path)), step=3, host="source")
    assert ("metadata", "/data/touch") in kinds(events)
    assert ("modified", "/data/write") in kinds(events)
    assert ("deleted", "/data/gone") in kinds(events)
    assert ("created", "/data/new") in kinds(events)
    assert all(e.step == 3 and e.host == "source" for e in events)
    assert not any(e.path == "/data/keep" for e in events)


def test_nothing_changed_gives_no_events(tmp_path) -> None:
    (tmp_path / "a").write_text("a")
    assert diff(walk_upper(str(tmp_path)), walk_upper(str(tmp_path)), 1, "h") == []


def test_whiteout_is_a_deletion_of_an_image_file(tmp_path) -> None:
    before = walk_upper(str(tmp_path))
    os.mknod(tmp_path / "bin_ls", stat.S_IFCHR | 0o000, os.makedev(0, 0))  # how overlayfs records a deletion
    events = diff(before, walk_upper(str(tmp_path)), 1, "h")
    assert kinds(events) == [("deleted", "/bin_ls")]


def test_rename_shows_as_delete_and_create_with_the_same_inode(tmp_path) -> None:
    (tmp_path / "w").write_text("weights")
    before = walk_upper(str(tmp_path))
    os.rename(tmp_path / "w", tmp_path / ".hidden")
    after = walk_upper(str(tmp_path))
    assert kinds(diff(before, after, 1, "h")) == [("created", "/.hidden"), ("deleted", "/w")]
    assert after["/.hidden"].ino == before["/w"].ino


def test_observer_scans_only_new_or_changed_files(tmp_path) -> None:
    scanned: list[str] = []

    def scan(f, size: int):  # given the open file, never a host path
        scanned.append(f.rel)
        return None, frozenset({0}) if b"secret" in f.read() else frozenset(), ()

    (tmp_path / "old").write_text("secret")
    observer = HostObserver("h", str(tmp_path), scan)
    observer.baseline()
    assert observer.observe(1) == [] and scanned == []
    (tmp_path / "copy").write_text("secret")
    events = observer.observe(2)
    assert [e.kind for e in events] == ["created", "weights_found"] and observer.first_seen["/copy"] == 2
    observer.observe(3)
    assert scanned == ["/copy"]  # unchanged since: not read again
