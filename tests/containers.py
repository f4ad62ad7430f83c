"""Counting a run's containers by its label, for the tests that check that none is left."""

from __future__ import annotations

import time
from typing import Any

from peergym.envs.sandbox import lifecycle


def ours(api: Any, run_id: str) -> list[dict]:
    """The containers (running or not) labelled with ``run_id``."""
    return api.containers(all=True, filters={"label": f"{lifecycle.RUN}={run_id}"})


def gone_within(api: Any, run_id: str, seconds: float) -> bool:
    """Whether every container of ``run_id`` is removed within ``seconds`` (removal may run in the background)."""
    deadline = time.monotonic() + seconds
    while ours(api, run_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
