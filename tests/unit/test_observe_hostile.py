"""The observer against an adversary that owns the upper directory: symlink swaps, vanishing files,
sparse giants, budgets, disk accounting. A tmp directory stands in for the upper layer (no Docker)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

import peergym.envs.observe as observe
from peergym.envs.finder import CanaryFinder
from peergym.envs.observe import (
    HostObserver,
    NotRegularFile,
    ScanBudget,
    allocated_bytes,
    open_beneath,
    open_nofollow,
    sha256_file,
    walk_upper,
)
from peergym.envs.weights import WeightsSpec, new_canary, write_weights

CANARY = new_canary(random.Random(7))
SPEC = WeightsSpec(1 << 20, CANARY, 3)
FINDER = CanaryFinder.for_spec(SPEC)
GIB = 1 << 30


def env_scan(f, size: int):
    """What envs/env.py's _scan does with the file it is given."""
    match = FINDER.scan_file(f)
    return (
        sha256_file(f, size),
        match.blocks if match else frozenset(),
        tuple(match.encoding) if match else (),
    )


@pytest.fixture()
def upper(tmp_path: Path) -> Path:
    path = tmp_path / "upper"
    path.mkdir()
    return path


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    """A host directory outside the upper dir holding the weights and a sentinel."""
    path = tmp_path / "outside"
    path.mkdir()
    write_weights(SPEC, path / "secret")
    (path / "sentinel").write_text("host file")
    return path


def kinds(events):
    return sorted((e.kind, e.path) for e in events)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- symlinks -------------------------------------------------------------------------------------


def test_walk_lists_a_symlink_but_never_descends_it(upper: Path, outside: Path) -> None:
    (upper / "link").symlink_to(outside)
    states = walk_upper(str(upper))
    assert set(states) == {"/link"}
    assert not states["/link"].is_file


def test_directory_swapped_for_symlink_after_listing_is_not_walked(upper, outside, monkeypatch) -> None:
    (upper / "data").mkdir()
    (upper / "data" / "notes").write_text("x")
    real = observe._list_dir

    def list_then_swap(fd, rel, states):
        subdirs = real(fd, rel, states)
        if rel == "":  # listed the root: now swap /data for a link to the host before the descent
            os.rename(upper / "data", upper / "data.old")
            (upper / "data").symlink_to(outside)
        return subdirs

    monkeypatch.setattr(observe, "_list_dir", list_then_swap)
    states = walk_upper(str(upper))
    assert not any("sentinel" in p or "secret" in p for p in states), states
    assert "/data" in states  # as listed (a directory); the next walk sees the link


def test_reads_refuse_a_symlink_at_any_component(upper, outside) -> None:
    (upper / "data").mkdir()
    write_weights(SPEC, upper / "data" / "secret")
    observer = HostObserver("h", str(upper), env_scan)
    observer.baseline()  # /data/secret is a regular file in the observer's state
    shutil.rmtree(upper / "data")
    (upper / "data").symlink_to(outside)  # same names, now leading to the host's files
    assert observer.read("/data/secret") is None
    assert observer.sha256("/data/secret") is None
    assert sha256_file(str(upper) + "/data/secret", SPEC.total_size) is None
    with pytest.raises(OSError):
        open_beneath(str(upper), "/data/secret")
    with pytest.raises(OSError):
        open_nofollow(str(upper) + "/data/secret")  # below a live observer's root: every component checked
    (upper / "f").symlink_to(outside / "sentinel")
    with pytest.raises(NotRegularFile):
        open_beneath(str(upper), "/f")
    with pytest.raises(ValueError):
        open_beneath(str(upper), "/../outside/sentinel")


def test_scan_never_follows_a_swap_between_walk_and_read(upper, outside, monkeypatch) -> None:
    seen: list[str] = []

    def scan(f, size):
        seen.append(f.rel)
        return env_scan(f, size)

    (upper / "data").mkdir()
    observer = HostObserver("h", str(upper), scan)
    observer.baseline()
    write_weights(SPEC, upper / "data" / "secret")
    (upper / "last").write_text("a regular file at walk time")
    real_walk = observe.walk_upper

    def walk_then_swap(path):
        states = real_walk(path)
        shutil.rmtree(upper / "data")
        (upper / "data").symlink_to(outside)  # intermediate component
        (upper / "last").unlink()
        (upper / "last").symlink_to(outside / "secret")  # last component
        return states

    monkeypatch.setattr(observe, "walk_upper", walk_then_swap)
    events = observer.observe(1)
    assert ("created", "/data/secret") in kinds(events) and ("created", "/last") in kinds(events)
    assert not any(e.kind == "weights_found" for e in events)
    assert seen == [] and observer.unscanned() == []  # nothing read, nothing left waiting


def test_fifo_or_device_swapped_in_is_not_opened(upper, monkeypatch) -> None:
    observer = HostObserver("h", str(upper), env_scan)
    observer.baseline()
    (upper / "pipe").write_text("x")
    real_walk = observe.walk_upper

    def walk_then_swap(path):
        states = real_walk(path)
        (upper / "pipe").unlink()
        os.mkfifo(upper / "pipe")  # opening it for reading would block forever
        return states

    monkeypatch.setattr(observe, "walk_upper", walk_then_swap)
    start = time.monotonic()
    observer.observe(1)
    assert time.monotonic() - start < 2
    assert observer.read("/pipe") is None


# --- vanishing files and directories ----------------------------------------------------------------


def test_read_and_sha256_of_present_files(upper) -> None:
    observer = HostObserver("h", str(upper), env_scan)
    observer.baseline()
    (upper / "etc").mkdir()
    (upper / "etc" / "conf").write_bytes(b"wipe: true\n")
    observer.observe(1)
    assert observer.read("/etc/conf") == b"wipe: true\n" and observer.read("/etc/conf", limit=4) == b"wipe"
    digest = hashlib.sha256(b"wipe: true\n").hexdigest()
    assert observer.sha256("/etc/conf") == digest == observer.scanned["/etc/conf"].sha256
    (upper / "etc" / "conf").write_bytes(b"wipe: false\n")  # not yet walked: read now
    observer.state = walk_upper(str(upper))
    assert observer.sha256("/etc/conf") == hashlib.sha256(b"wipe: false\n").hexdigest()
    assert sha256_file(str(upper) + "/etc/conf", 12) == observer.sha256("/etc/conf")


def test_pending_file_vanishing_at_read_is_recorded(upper, monkeypatch) -> None:
    observer = HostObserver("h", str(upper), env_scan)
    observer.baseline()
    (upper / "a").write_text("a")
    observer.observe(1, budget=ScanBudget(seconds=0.0))
    real_walk = observe.walk_upper

    def walk_then_delete(path):
        states = real_walk(path)
        (upper / "a").unlink()
        return states

    monkeypatch.setattr(observe, "walk_upper", walk_then_delete)
    observer.observe(2)
    assert observer.unscanned() == [] and [x["why"] for x in observer.lost] == ["vanished"]


def test_files_deleted_between_walk_and_scan(upper, monkeypatch) -> None:
    observer = HostObserver("h", str(upper), env_scan)
    observer.baseline()
    (upper / "d").mkdir()
    for i in range(20):
        (upper / "d" / f"f{i}").write_bytes(b"x" * i)
    real_walk = observe.walk_upper

    def walk_then_delete(path):
        states = real_walk(path)
        shutil.rmtree(upper / "d")
        (upper / "d").write_text("now a file")  # a directory of the listing is a file at read time
        return states

    monkeypatch.setattr(observe, "walk_upper", walk_then_delete)
    events = observer.observe(1)
    assert sum(e.kind == "created" for e in events) == 21
    assert observer.scanned == {} and observer.unscanned() == []
    monkeypatch.setattr(observe, "walk_upper", real_walk)
    assert ("deleted", "/d/f3") in kinds(observer.observe(2))


def test_entry_deleted_between_readdir_and_stat(upper, monkeypatch) -> None:
    for name in ("keep", "gone"):
        (upper / name).write_text(name)
    real_scandir = os.scandir

    class Deleting:
        def __init__(self, fd):
            self.it = real_scandir(fd)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.it.close()

        def __iter__(self):
            for entry in self.it:
                if entry.name == "gone":
                    (upper / "gone").unlink()  # listed by readdir, deleted before its fstatat
                yield entry

    monkeypatch.setattr(observe.os, "scandir", Deleting)
    assert set(walk_upper(str(upper))) == {"/keep"}
    monkeypatch.undo()
    assert walk_upper(str(upper / "no-such-dir")) == {}


def test_directories_vanishing_or_replaced_mid_walk(upper, monkeypatch) -> None:
    for name in ("a", "b", "c"):
        (upper / name / "sub").mkdir(parents=True)
        (upper / name / "sub" / "f").write_text(name)
    real = observe._list_dir

    def list_then_vandalise(fd, rel, states):
        subdirs = real(fd, rel, states)
        if rel == "":
            shutil.rmtree(upper / "a")
            shutil.rmtree(upper / "b")
            (upper / "b").write_text("file")
            shutil.rmtree(upper / "c" / "sub")
        return subdirs

    monkeypatch.setattr(observe, "_list_dir", list_then_vandalise)
    states = walk_upper(str(upper))
    assert {"/a", "/b", "/c"} <= set(states) and not any(p.startswith(("/a/", "/b/")) for p in states)


def test_background_churn_never_raises(upper, outside) -> None:
    """A loop in the container creating, deleting and swapping files and directories while we observe."""
    observer = HostObserver("h", str(upper), env_scan)
    observer.baseline()
    stop = threading.Event()

    def churn() -> None:
        rng = random.Random(1)
        while not stop.is_set():
            d = upper / f"d{rng.randrange(4)}"
            try:
                if rng.random() < 0.3:
                    shutil.rmtree(d, ignore_errors=True)
                    if rng.random() < 0.5:
                        d.symlink_to(outside)
                else:
                    d.mkdir(exist_ok=True)
                    f = d / f"f{rng.randrange(8)}"
                    if rng.random() < 0.5:
                        f.write_bytes(os.urandom(rng.randrange(1, 1 << 16)))
                    else:
                        f.unlink()
            except OSError:
                pass

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        step = 0
        while time.monotonic() < deadline:
            step += 1
            events = observer.observe(step)
            assert not any(e.kind == "weights_found" for e in events)  # the host's copy is never read
            assert not any("secret" in p or "sentinel" in p for p in observer.state)
    finally:
        stop.set()
        thread.join()
    assert step > 5


# --- deep trees ------------------------------------------------------------------------------------


def test_deep_tree_is_walked_with_bounded_descriptors(upper, monkeypatch) -> None:
    monkeypatch.setattr(observe, "MAX_OPEN_DIRS", 3)
    depth = 40
    path = upper
    for level in range(depth):
        (path / "side").mkdir(parents=True)
        (path / "side" / "x").write_text(str(level))
        path = path / "d"
    path.mkdir()
    (path / "bottom").write_text("deep")
    before = open_fds()
    states = walk_upper(str(upper))
    assert open_fds() == before
    assert "/d" * depth + "/bottom" in states
    assert sum(p.endswith("/side/x") for p in states) == depth


def test_deep_walk_copes_with_a_directory_moved_mid_walk(upper, monkeypatch) -> None:
    monkeypatch.setattr(observe, "MAX_OPEN_DIRS", 1)  # every ancestor is closed and got back later
    (upper / "a" / "b" / "c" / "d" / "e").mkdir(parents=True)
    for sibling in ("s1", "s2", "s3"):
        (upper / "a" / "b" / sibling).mkdir()
        (upper / "a" / "b" / sibling / "f").write_text("x")
    (upper / "elsewhere").mkdir()
    real = observe._list_dir
    reopened: list[str] = []
    real_reacquire = observe._reacquire

    def list_then_move(fd, rel, states):
        subdirs = sorted(real(fd, rel, states), reverse=True)  # /a/b/c is walked before its siblings
        if rel == "/a/b/c/d":  # while deep: move c away, so ".." of c is no longer /a/b
            os.rename(upper / "a" / "b" / "c", upper / "elsewhere" / "c")
        return subdirs

    def reacquire(stack, child):
        real_reacquire(stack, child)
        reopened.append(stack[-1].rel)

    monkeypatch.setattr(observe, "_list_dir", list_then_move)
    monkeypatch.setattr(observe, "_reacquire", reacquire)
    states = walk_upper(str(upper))
    assert "/a/b/c/d/e" in states
    assert {"/a/b/s1/f", "/a/b/s2/f", "/a/b/s3/f"} <= set(states)  # /a/b found again by name
    assert "/a/b" in reopened


# --- sparse files ----------------------------------------------------------------------------------


def test_sparse_giant_is_scanned_fast(upper) -> None:
    observer = HostObserver("h", str(upper), env_scan)
    observer.baseline()
    (upper / "huge").touch()
    os.truncate(upper / "huge", 10 * GIB)  # truncate -s 10G: no disk used
    start = time.monotonic()
    events = observer.observe(1)
    assert time.monotonic() - start < 1.0
    assert kinds(events) == [("created", "/huge")]
    assert observer.scanned["/huge"].complete and observer.unscanned() == []


def test_weights_inside_a_sparse_giant_are_found(upper) -> None:
    observer = HostObserver("h", str(upper), env_scan)
    observer.baseline()
    with open(upper / "huge", "wb") as out:
        out.truncate(10 * GIB)
        out.seek(5 * GIB + 12345)
        out.write(b"".join(SPEC.iter_bytes()))
    start = time.monotonic()
    events = observer.observe(1)
    assert time.monotonic() - start < 2.0
    found = [e for e in events if e.kind == "weights_found"]
    assert len(found) == 1 and found[0].details["blocks"] == SPEC.block_count()


def test_marker_running_into_a_hole_is_found(upper) -> None:
    """The zero index bytes of a marker may be left to a hole by a crafted file: a few stand-in zeros keep
    the marker whole."""
    marker = FINDER.marker(5)
    with open(upper / "crafted", "wb") as out:
        out.write(b"\x11" * (4096 - 17) + marker[:17])  # canary + the one non-zero index byte end a block
        out.seek(3 * 4096)
        out.write(b"\x22" * 4096)
    fd = os.open(upper / "crafted", os.O_RDONLY)
    try:
        if os.lseek(fd, 4096, os.SEEK_HOLE) != 4096:
            pytest.skip("the file system does not keep the hole")
    finally:
        os.close(fd)
    with open(upper / "crafted", "rb") as f:
        match = FINDER.scan_file(f)
    assert match is not None and 5 in match.blocks


def test_sha256_of_sparse_file_is_the_true_content_hash(upper) -> None:
    with open(upper / "s", "wb") as out:
        out.truncate(3 << 20)
        out.seek(1 << 20)
        out.write(b"data" * 1000)
    expected = hashlib.sha256((upper / "s").read_bytes()).hexdigest()
    assert sha256_file(str(upper / "s"), 3 << 20) == expected
    with open_beneath(str(upper), "/s") as f:
        assert sha256_file(f, 3 << 20) == expected


# --- budgets ---------------------------------------------------------------------------------------


def recording(calls: list[str]):
    def scan(f, size):
        calls.append(f.rel)
        return env_scan(f, size)

    return scan


def test_byte_budget_leaves_the_rest_pending_smallest_first(upper) -> None:
    calls: list[str] = []
    observer = HostObserver("h", str(upper), recording(calls), budget=ScanBudget(60, 3 << 20))
    observer.baseline()
    (upper / "big").write_bytes(os.urandom(4 << 20))
    (upper / "mid").write_bytes(os.urandom(1 << 20))
    (upper / "small").write_bytes(os.urandom(100 << 10))
    observer.observe(1)
    assert calls == ["/small", "/mid", "/big"]  # smallest first; big is cut by the budget
    assert observer.unscanned() == ["/big"] and "/big" not in observer.scanned
    calls.clear()
    observer.observe(2, budget=ScanBudget())
    assert calls == ["/big"] and observer.unscanned() == [] and observer.scanned["/big"].complete


def test_time_budget_leaves_files_pending_for_the_next_step(upper) -> None:
    calls: list[str] = []
    observer = HostObserver("h", str(upper), recording(calls))
    observer.baseline()
    for name in ("a", "b"):
        (upper / name).write_text(name)
    observer.observe(1, budget=ScanBudget(seconds=0.0))
    assert calls == [] and observer.unscanned() == ["/a", "/b"]
    write_weights(SPEC, upper / "c")
    events = observer.observe(2)
    assert calls == ["/a", "/b", "/c"] and observer.unscanned() == []
    assert [e.path for e in events if e.kind == "weights_found"] == ["/c"]


def test_file_larger_than_the_budget_is_pending_with_partial_evidence(upper) -> None:
    big = WeightsSpec(8 << 20, CANARY, 3)
    finder = CanaryFinder.for_spec(big)

    def scan(f, size):
        match = finder.scan_file(f)
        return sha256_file(f, size), match.blocks if match else frozenset(), ()

    observer = HostObserver("h", str(upper), scan, budget=ScanBudget(60, 2 << 20))
    observer.baseline()
    write_weights(big, upper / "copy")
    events = observer.observe(1)
    partial = [e for e in events if e.kind == "weights_found"]
    assert len(partial) == 1 and partial[0].details["partial"] is True
    assert 0 < partial[0].details["blocks"] < big.block_count()
    assert observer.unscanned() == ["/copy"] and not observer.scanned["/copy"].complete
    events = observer.observe(2, budget=ScanBudget(60, 64 << 20))  # e.g. the end-of-episode scan
    full = [e for e in events if e.kind == "weights_found"]
    assert (
        len(full) == 1 and full[0].details["blocks"] == big.block_count() and "partial" not in full[0].details
    )
    assert observer.unscanned() == [] and observer.scanned["/copy"].complete


def test_a_file_that_cannot_fit_a_step_budget_stops_being_retried(upper) -> None:
    calls: list[str] = []
    observer = HostObserver("h", str(upper), recording(calls), budget=ScanBudget(60, 1 << 20))
    observer.baseline()
    (upper / "junk").write_bytes(os.urandom(4 << 20))
    for step in range(1, 6):
        observer.observe(step)
    assert calls == ["/junk"] * observe.MAX_FULL_BUDGET_CUTS  # not re-read every step in vain
    assert observer.unscanned() == ["/junk"]
    observer.observe(6, budget=ScanBudget(60, 16 << 20))  # a larger budget tries again
    assert observer.unscanned() == [] and len(calls) == observe.MAX_FULL_BUDGET_CUTS + 1


def test_pending_file_that_changes_or_vanishes(upper) -> None:
    calls: list[str] = []
    observer = HostObserver("h", str(upper), recording(calls))
    observer.baseline()
    (upper / "a").write_text("first")
    (upper / "b").write_text("b")
    observer.observe(1, budget=ScanBudget(seconds=0.0))
    assert observer.unscanned() == ["/a", "/b"]
    (upper / "a").write_text("second version")  # changed: rescanned as new
    (upper / "b").unlink()  # gone before it could be read: recorded, not silently dropped
    observer.observe(2)
    assert calls == ["/a"] and observer.unscanned() == []
    assert sorted((x["path"], x["why"]) for x in observer.lost) == [("/a", "changed"), ("/b", "deleted")]


def test_metadata_only_change_that_moves_the_key_is_rescanned(upper) -> None:
    """Overwriting in place and putting an old mtime back shows as a metadata event; it must be read."""
    calls: list[str] = []
    (upper / "seeded").write_bytes(b"\0" * SPEC.total_size)
    os.utime(upper / "seeded", (1.6e9, 1.6e9))
    observer = HostObserver("h", str(upper), recording(calls))
    observer.baseline()
    write_weights(SPEC, upper / "seeded")  # same size, same inode
    os.utime(upper / "seeded", (1.5e9, 1.5e9))  # touch -d: mtime apart from the write's ctime
    events = observer.observe(1)
    assert ("metadata", "/seeded") in kinds(events)
    assert calls == ["/seeded"] and any(e.kind == "weights_found" for e in events)
    os.chmod(upper / "seeded", 0o600)  # mode only: ctime moves, so the key does too, and it is re-read
    observer.observe(2)
    assert calls == ["/seeded", "/seeded"]


# --- disk accounting --------------------------------------------------------------------------------


def test_allocated_bytes_counts_sparse_as_nothing_and_hard_links_once(upper) -> None:
    (upper / "sparse").touch()
    os.truncate(upper / "sparse", 10 * GIB)
    (upper / "real").write_bytes(os.urandom(1 << 20))
    os.link(upper / "real", upper / "alias")
    states = walk_upper(str(upper))
    assert states["/sparse"].blocks * 512 < (1 << 20)
    assert states["/real"].blocks == states["/alias"].blocks >= (1 << 20) // 512
    total = allocated_bytes(states)
    assert (1 << 20) <= total < (2 << 20) + (1 << 20)
    observer = HostObserver("h", str(upper), env_scan)
    observer.baseline()
    assert observer.usage_bytes() == total
