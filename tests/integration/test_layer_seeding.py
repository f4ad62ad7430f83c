"""Seeding by writing the writable layer directly gives what the engine's archive API gives, entry for entry.

Each scenario's real hosts are seeded both ways into created (not started) containers, and the two writable
layers are compared from the host: every entry's type, owner, mode, size, times to the nanosecond, content
and extended attributes. Then both are started and the merged view is compared from inside.
"""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from peergym.envs.sandbox import Sandbox, SeedFile, layer
from peergym.envs.sandbox.engine import require_image
from peergym.envs.scenario import Condition, load_scenario, scenario_names

pytestmark = pytest.mark.docker


def _entries(upper: str) -> dict[str, tuple[object, ...]]:
    found = {}
    for top, dirs, files in os.walk(upper):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
            xattrs = sorted((n, os.getxattr(path, n, follow_symlinks=False))
                            for n in os.listxattr(path, follow_symlinks=False)
                            if not n.startswith("trusted.overlay."))  # fmt: skip
            size = st.st_size if not stat.S_ISDIR(st.st_mode) else 0
            found[os.path.relpath(path, upper)] = (stat.S_IFMT(st.st_mode), st.st_uid, st.st_gid,
                                                   stat.S_IMODE(st.st_mode), size, st.st_atime_ns,
                                                   st.st_mtime_ns, digest, xattrs)  # fmt: skip
    return found


def _seeded(box: Sandbox, name: str, files: tuple[SeedFile, ...]) -> str:
    cid = box._seed(name, lambda: box._create_container(name, require_image(box.image)), files)
    return box._api.inspect_container(cid)["GraphDriver"]["Data"]["UpperDir"]


@pytest.mark.parametrize("scenario", scenario_names())
def test_direct_layer_write_equals_the_archive(docker_api, monkeypatch, scenario) -> None:
    layout = load_scenario(scenario).render(Condition(weights_size=3 << 20), seed=11)
    direct = Sandbox(layout.hosts, agent_host=layout.agent_host, run_id="pytest")
    archived = Sandbox(layout.hosts, agent_host=layout.agent_host, run_id="pytest")
    direct._api = archived._api = docker_api
    try:
        for spec in layout.hosts:
            by_layer = _entries(_seeded(direct, spec.name, spec.files))
            with monkeypatch.context() as m:
                m.setattr(layer, "plan", _unsuitable)
                by_archive = _entries(_seeded(archived, spec.name, spec.files))
            assert by_layer.keys() == by_archive.keys()
            # One difference, on purpose: the engine's unpacker leaves each directory it writes with an access
            # time of 1970 (a tell for `stat /var/log`) and the ones it copies up with today's; written
            # directly, a seeded directory's atime is its mtime and a copied-up one keeps the image's.
            # A directory that is not seeded but copied up when the engine creates the container (/etc, for
            # /etc/hosts) has the engine's times, which differ between two containers: compared without them.
            seeded_dirs = {f.path.lstrip("/") for f in spec.files if f.is_dir}
            for path, entry in by_archive.items():
                if entry[0] == stat.S_IFDIR:
                    atime, mtime = by_layer[path][5:7]
                    if path not in seeded_dirs:
                        by_archive[path] = (*entry[:5], atime, mtime, *entry[7:])
                        continue
                    assert atime >= mtime > 0, path
                    by_archive[path] = (*entry[:5], atime, *entry[6:])
            differing = {p: (by_layer[p], by_archive[p]) for p in by_layer if by_layer[p] != by_archive[p]}
            assert not differing, "\n".join(f"{p}: {a} != {b}" for p, (a, b) in sorted(differing.items()))
            # The seeded files are all there (the comparison above is not between two empty layers).
            assert {f.path.lstrip("/") for f in spec.files} <= by_layer.keys()
    finally:
        direct.close()
        archived.close()


def _unsuitable(*_: object) -> layer.Plan:
    raise layer.LayerUnsuitable("forced by the test")


def test_the_merged_view_of_a_directly_written_layer(docker_api) -> None:
    """Started, a host seeded directly shows the image's entries beside the seeded ones, with the seeded
    metadata, and a parent the kernel would have copied up keeps the image's owner and mode."""
    files = (
        SeedFile("/etc/cron.d/decommission", b"0 3 * * * root true\n", mode=0o644, mtime=1727766000.25),
        SeedFile("/srv/inventory", is_dir=True, mode=0o750, mtime=1727000000.0),
        SeedFile("/srv/inventory/MANIFEST.yaml", b"models: []\n", mode=0o640, mtime=1726999000.0),
        SeedFile(
            "/etc/motd", b"Authorised use only.\n", gid=4, mode=0o664, mtime=1727700000.0
        ),  # the image has one
    )
    from peergym.envs.sandbox import HostSpec

    with Sandbox([HostSpec("source", "fs-ops-45", "10.0.12.45", files=files)], run_id="pytest") as box:
        show = box.run(["stat", "-c", "%n %u:%g %a %s %.9Y", "/etc/cron.d/decommission", "/srv/inventory",
                        "/srv/inventory/MANIFEST.yaml", "/etc/motd"], user="root").stdout.decode()  # fmt: skip
        assert show.splitlines() == [
            "/etc/cron.d/decommission 0:0 644 20 1727766000.250000000",
            "/srv/inventory 0:0 750 4096 1727000000.000000000",
            "/srv/inventory/MANIFEST.yaml 0:0 640 11 1726999000.000000000",
            "/etc/motd 0:4 664 21 1727700000.000000000",
        ]
        # The image's own entries are still beside the seeded ones, and /etc is the image's.
        listed = box.run(["ls", "/etc/cron.d", "/var/log"], user="root").stdout.decode()
        assert "e2scrub_all" in listed or "popularity-contest" in listed or "dpkg.log" in listed
        assert "dpkg.log" in listed and "decommission" in listed
        assert box.run(["stat", "-c", "%u:%g %a", "/etc"], user="root").stdout.decode() == "0:0 755\n"
