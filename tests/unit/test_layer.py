"""layer.plan and layer.write on image layers made by hand (whiteouts, opaque directories, symlinks).

The comparison with what the engine's archive API writes, on the real image, is in
tests/integration/test_layer_seeding.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from peergym.envs.sandbox import SeedFile, layer

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts and trusted xattrs need root")


def _layers(tmp_path, count: int = 2) -> list[str]:
    made = [tmp_path / f"l{i}" for i in range(count)]
    for d in made:
        d.mkdir()
    return [str(d) for d in made]


def test_a_parent_is_copied_up_from_the_top_most_layer_that_has_it(tmp_path) -> None:
    top, bottom = _layers(tmp_path)
    os.makedirs(f"{bottom}/etc/cron.d")
    os.makedirs(f"{top}/etc")
    os.chmod(f"{top}/etc", 0o751)
    os.utime(f"{top}/etc", ns=(1_600_000_000_000_000_000, 1_500_000_000_000_000_000))
    files = [SeedFile("/etc/cron.d/job", b"* * * * * root true\n", mode=0o600, mtime=1727766000.25)]
    plan = layer.plan([top, bottom], files)
    assert [(d.path, d.source) for d in plan.image_dirs] == [("/etc", f"{top}/etc"),
                                                            ("/etc/cron.d", f"{bottom}/etc/cron.d")]  # fmt: skip
    upper = tmp_path / "upper"
    upper.mkdir()
    layer.write(str(upper), plan, {})
    etc = os.stat(upper / "etc")
    assert stat.S_IMODE(etc.st_mode) == 0o751
    assert (etc.st_atime_ns, etc.st_mtime_ns) == (1_600_000_000_000_000_000, 1_500_000_000_000_000_000)
    job = os.stat(upper / "etc/cron.d/job")
    assert stat.S_IMODE(job.st_mode) == 0o600 and job.st_mtime_ns == job.st_atime_ns == 1727766000_250000000
    # Writing the job into cron.d did not leave cron.d with today's mtime.
    assert os.stat(upper / "etc/cron.d").st_mtime_ns == os.stat(f"{bottom}/etc/cron.d").st_mtime_ns


def test_seeded_directories_get_their_metadata_after_their_entries(tmp_path) -> None:
    (image,) = _layers(tmp_path, 1)
    files = [
        SeedFile("/srv", is_dir=True, uid=0, gid=0, mode=0o755, mtime=1000.0),
        SeedFile("/srv/inventory", is_dir=True, uid=1000, gid=1000, mode=0o750, mtime=2000.5),
        SeedFile("/srv/inventory/MANIFEST.yaml", b"x", uid=1000, gid=1000, mode=0o640, mtime=1999.0),
        SeedFile("/srv/inventory/big", uid=1000, gid=1000, mode=0o640, mtime=1998.0, size=3,
                 content=lambda: iter([b"a", bytearray(b"bc")])),
    ]  # fmt: skip
    upper = tmp_path / "upper"
    upper.mkdir()
    layer.write(str(upper), layer.plan([image], files), {})
    inventory = os.stat(upper / "srv/inventory")
    assert (inventory.st_uid, stat.S_IMODE(inventory.st_mode), inventory.st_mtime_ns) == (
        1000,
        0o750,
        2000_500_000_000,
    )
    assert os.stat(upper / "srv").st_mtime_ns == 1000 * 10**9
    assert (upper / "srv/inventory/big").read_bytes() == b"abc"


def test_staged_files_are_renamed_in(tmp_path) -> None:
    (image,) = _layers(tmp_path, 1)
    staged = tmp_path / "staged"
    staged.write_bytes(b"weights")
    files = [SeedFile("/data", is_dir=True, mtime=5.0), SeedFile("/data/w", b"", size=7, mtime=4.0)]
    upper = tmp_path / "upper"
    upper.mkdir()
    layer.write(str(upper), layer.plan([image], files), {"/data/w": str(staged)})
    assert (upper / "data/w").read_bytes() == b"weights" and not staged.exists()
    assert os.stat(upper / "data").st_mtime_ns == 5 * 10**9


def _tree(root) -> dict[str, tuple[int, int, int, int, bytes]]:
    out = {}
    for where, dirs, names in os.walk(root):
        for name in dirs + names:
            path = os.path.join(where, name)
            st = os.lstat(path)
            body = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else b""
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_mtime_ns, st.st_atime_ns, body)
    return out


def test_a_layer_built_aside_and_moved_in_is_the_same_layer(tmp_path, monkeypatch) -> None:
    # Built in a directory of its own (seeding.build_dir), then moved in: the same entries with the same
    # metadata as written in place, each file keeping the inode it got where it was built.
    top, bottom = _layers(tmp_path)
    os.makedirs(f"{bottom}/etc/cron.d")
    os.makedirs(f"{top}/etc")
    files = [
        SeedFile("/etc/cron.d/job", b"* * * * * root true\n", mode=0o600, mtime=1727766000.25),
        SeedFile("/srv", is_dir=True, mode=0o755, mtime=1000.0),
        SeedFile("/srv/inventory", is_dir=True, uid=1000, gid=1000, mode=0o750, mtime=2000.5),
        SeedFile("/srv/inventory/MANIFEST.yaml", b"x", uid=1000, gid=1000, mode=0o640, mtime=1999.0),
        SeedFile("/srv/inventory/w", b"", size=7, mtime=4.0),
        SeedFile("/top-file", b"at the root", mtime=3.0),
    ]
    plan = layer.plan([top, bottom], files)
    in_place, aside, build = tmp_path / "in_place", tmp_path / "aside", tmp_path / "build"
    for d in (in_place, aside, build):
        d.mkdir()
    moved: list[tuple[str, str]] = []
    rename = os.rename
    monkeypatch.setattr(layer.os, "rename", lambda a, b: (moved.append((str(a), str(b))), rename(a, b))[1])
    for upper, where in ((in_place, None), (aside, build)):
        staged = tmp_path / f"staged-{upper.name}"
        staged.write_bytes(b"weights")
        os.utime(staged, ns=(4 * 10**9, 4 * 10**9))  # as seeding.stage leaves it
        layer.write(str(upper), plan, {"/srv/inventory/w": str(staged)}, str(where) if where else None)
    assert _tree(aside) == _tree(in_place)
    assert os.listdir(build) == []
    # Aside, the top entries were made in the build directory and moved in whole.
    assert sorted(b for a, b in moved if a.startswith(str(build))) == [
        str(aside / name) for name in ("etc", "srv", "top-file")
    ]


def test_a_build_never_replaces_what_the_layer_has(tmp_path) -> None:
    (image,) = _layers(tmp_path, 1)
    upper, build = tmp_path / "upper", tmp_path / "build"
    upper.mkdir()
    build.mkdir()
    (upper / "srv").mkdir()
    plan = layer.plan(
        [image], [SeedFile("/srv", is_dir=True, mtime=1.0), SeedFile("/srv/f", b"x", mtime=1.0)]
    )
    with pytest.raises(FileExistsError, match="/srv"):
        layer.write(str(upper), plan, {}, str(build))
    assert os.listdir(upper / "srv") == []


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda top, bottom: os.symlink("/run", f"{bottom}/var/run"), "/var/run is not a directory"),
        (lambda top, bottom: open(f"{bottom}/var/run", "w").close(), "/var/run is not a directory"),
        (lambda top, bottom: None, "/var/run is not a directory in the image"),  # exists nowhere
    ],
)
def test_a_parent_that_is_not_a_directory_means_the_archive(tmp_path, make, why) -> None:
    top, bottom = _layers(tmp_path)
    os.makedirs(f"{bottom}/var")
    make(top, bottom)
    with pytest.raises(layer.LayerUnsuitable, match=why):
        layer.plan([top, bottom], [SeedFile("/var/run/sshd.pid", b"1\n")])


def test_a_file_where_the_image_has_a_directory_means_the_archive(tmp_path) -> None:
    (image,) = _layers(tmp_path, 1)
    os.makedirs(f"{image}/etc/motd")
    with pytest.raises(layer.LayerUnsuitable, match="/etc/motd is a directory in the image"):
        layer.plan([image], [SeedFile("/etc/motd", b"hi\n")])


@root_only
def test_a_whiteout_hides_the_layers_below(tmp_path) -> None:
    top, bottom = _layers(tmp_path)
    os.makedirs(f"{bottom}/opt/old")
    os.makedirs(f"{top}/opt")
    os.mknod(f"{top}/opt/old", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    with pytest.raises(layer.LayerUnsuitable, match="/opt/old is not a directory in the image"):
        layer.plan([top, bottom], [SeedFile("/opt/old/x", b"")])
    assert layer.plan([top, bottom], [SeedFile("/opt/x", b"")]).image_dirs[0].source == f"{top}/opt"


@root_only
def test_the_image_is_read_once_and_each_container_layer_every_time(tmp_path, monkeypatch) -> None:
    # Every container has a top-most layer of its own (the engine's init layer) over the same image layers:
    # what the image says is remembered, what each container's own layer says is not.
    image = _layers(tmp_path)
    os.makedirs(f"{image[1]}/opt/old")
    plain, hiding, fresh = (tmp_path / name for name in ("plain", "hiding", "fresh"))
    for top in (plain, hiding, fresh):
        top.mkdir()
    (hiding / "opt").mkdir()
    os.mknod(hiding / "opt/old", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    files = [SeedFile("/opt/old/x", b"")]
    assert layer.plan([str(plain), *image], files).image_dirs[-1].source == f"{image[1]}/opt/old"
    with pytest.raises(layer.LayerUnsuitable, match="/opt/old is not a directory in the image"):
        layer.plan([str(hiding), *image], files)
    looked: list[str] = []
    lstat = os.lstat
    monkeypatch.setattr(layer.os, "lstat", lambda p, *a, **k: (looked.append(str(p)), lstat(p, *a, **k))[1])
    assert layer.plan([str(fresh), *image], files).image_dirs[-1].source == f"{image[1]}/opt/old"
    assert looked and all(p.startswith(str(fresh)) for p in looked)


@root_only
def test_an_opaque_directory_hides_the_layers_below(tmp_path) -> None:
    top, bottom = _layers(tmp_path)
    os.makedirs(f"{bottom}/opt/old")
    os.makedirs(f"{top}/opt")
    try:
        os.setxattr(f"{top}/opt", "trusted.overlay.opaque", b"y")
    except OSError as exc:
        pytest.skip(f"no trusted xattrs on this filesystem: {exc}")
    with pytest.raises(layer.LayerUnsuitable, match="/opt/old is not a directory in the image"):
        layer.plan([top, bottom], [SeedFile("/opt/old/x", b"")])


@root_only
def test_copy_up_keeps_extended_attributes_but_not_overlay_markers(tmp_path) -> None:
    (image,) = _layers(tmp_path, 1)
    os.makedirs(f"{image}/opt")
    try:
        os.setxattr(f"{image}/opt", "trusted.overlay.opaque", b"y")
        os.setxattr(f"{image}/opt", "user.origin", b"debian")
    except OSError as exc:
        pytest.skip(f"no xattrs on this filesystem: {exc}")
    upper = tmp_path / "upper"
    upper.mkdir()
    layer.write(str(upper), layer.plan([image], [SeedFile("/opt/x", b"")]), {})
    assert os.listxattr(upper / "opt") == ["user.origin"]


def test_paths_outside_the_host_are_refused(tmp_path) -> None:
    (image,) = _layers(tmp_path, 1)
    for path in ("/../escape", "/data/../../escape", "relative", "//data"):
        with pytest.raises(ValueError, match="not a normal absolute path inside the host"):
            layer.plan([image], [SeedFile(path, b"")])
