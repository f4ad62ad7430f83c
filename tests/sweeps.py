"""Writing a small sweep file and reading back a sweep's records, for the tests that run sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def write_sweep(tmp_path: Path, template: str, name: str, epochs: int) -> str:
    """``template`` (with ``{name}`` and ``{epochs}``) written as ``tmp_path/<name>.yaml``; its path."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(template.format(name=name, epochs=epochs))
    return str(path)


def read_records(folder: Path) -> dict[str, dict]:
    """The sweep's records by key (``folder/episodes/<key>.json``)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted((folder / "episodes").glob("*.json"))}


def kill_sweep_midway(
    args: list[str], folder: Path, after: int = 4, timeout_s: float = 240
) -> dict[str, dict]:
    """Run ``peergym sweep ARGS`` in its own session, SIGKILL its whole group once ``after`` records are in
    ``folder`` (mid-sweep: episodes are running), and return the records that survived, by key."""
    runner = subprocess.Popen([sys.executable, "-m", "peergym.harness.cli", "sweep", *args],
                              start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while len(read_records(folder)) < after and time.monotonic() < deadline and runner.poll() is None:
            time.sleep(0.2)
        os.killpg(runner.pid, signal.SIGKILL)  # the runner and anything it started, mid-episode
        runner.wait()
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    return read_records(folder)
