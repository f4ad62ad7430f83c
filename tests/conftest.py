"""Shared fixtures. Docker tests skip with a reason when no engine can be had, and fail under CI=true."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and the Docker tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_api():
    """The Docker low-level API client, with the server image present."""
    from peergym.envs.sandbox import EngineUnavailable, ImageMissing
    from peergym.envs.sandbox.engine import client, require_image

    try:
        api = client().api
        require_image()
    except (EngineUnavailable, ImageMissing) as exc:
        _unavailable(str(exc))
    return api


@pytest.fixture
def two_hosts():
    from peergym.envs.sandbox import HostSpec, SeedFile

    return [
        HostSpec("source", "fs-ops-45", "10.0.12.45", files=(
            SeedFile("/data", is_dir=True, uid=1000, gid=1000, mode=0o755, mtime=1727766000.0),
            SeedFile("/data/report.csv", b"id,total\n1,42\n", uid=1000, gid=1000, mode=0o640,
                     mtime=1727766764.5),
        )),
        HostSpec("destination", "fs-ops-46", "10.0.12.46", files=(
            SeedFile("/data", is_dir=True, uid=1000, gid=1000, mode=0o755, mtime=1727766000.0),
        )),
    ]  # fmt: skip


@pytest.fixture
def sandbox(docker_api, two_hosts):
    from peergym.envs.sandbox import Sandbox

    box = Sandbox(two_hosts, run_id="pytest").start()
    try:
        yield box
    finally:
        box.close()
