"""The Docker client and the server image: the only place that decides how we reach the engine."""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading
from typing import Any

from .types import EngineUnavailable, ImageMissing

DEFAULT_IMAGE = "peergym-server:latest"
_lock = threading.Lock()


@functools.cache
def client() -> Any:
    """A shared ``docker.DockerClient`` (thread-safe; one connection pool per process).

    Raises:
        EngineUnavailable: no engine answers at ``DOCKER_HOST`` (or the default socket).
    """
    import docker  # imported here so that importing peergym stays cheap

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        c = docker.from_env(timeout=120, max_pool_size=64)
        c.ping()
    except Exception as exc:
        raise EngineUnavailable(
            f"cannot reach the Docker engine at {where}: {exc}. Start it: `make docker` (as root, installs "
            "docker.io and starts dockerd), or `sudo systemctl start docker`."
        ) from exc
    if c.api.base_url.startswith("http+docker://"):  # the engine's own unix socket
        # No proxy or ~/.netrc applies to a unix socket; with trust_env, requests looks both up again on every
        # call (about a third of each call's CPU, a dozen calls per episode).
        c.api.trust_env = False
    return c


# A forked child must not share its parent's connections (a vector env's fork workers): it gets its own.
os.register_at_fork(after_in_child=client.cache_clear)


def image_name() -> str:
    return os.environ.get("PEERGYM_IMAGE", DEFAULT_IMAGE)


_checked: set[str] = set()


def require_image(name: str | None = None) -> str:
    """Return the image name after checking it exists (checked once per process).

    Raises:
        ImageMissing: with the command that builds it.
    """
    import docker.errors

    name = name or image_name()
    with _lock:
        if name in _checked:
            return name
        try:
            client().api.inspect_image(name)
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(
                f"the server image {name} is not built: run `peergym image` or `make image` (containers/build.sh "
                "builds it offline with debootstrap; about 2 minutes the first time)."
            ) from exc
        _checked.add(name)
    return name


@functools.cache
def installed_at() -> float:
    """When the server image says its system was installed (containers/server/installed-at, which the image
    build dates the install back to), in seconds since the epoch."""
    from peergym import CONTAINERS_DIR

    text = (CONTAINERS_DIR / "server" / "installed-at").read_text(encoding="utf-8").strip()
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@functools.cache
def data_root() -> str:
    """Where the engine keeps its containers' layers (``DockerRootDir``): the disk their files use."""
    return str(client().info().get("DockerRootDir") or "/var/lib/docker")
