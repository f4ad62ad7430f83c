"""inspect_ai's own sandbox self-check suite, run against the peergym sandbox environment on real servers.

Every check of inspect_ai/util/_sandbox/self_check.py is collected here unchanged and runs against the agent's
server of an exfiltration_transfer episode (as the maintainer, in its home), none marked as an expected failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from inspect_ai.util._sandbox.self_check import *  # noqa: F403 (the checks themselves)

pytestmark = [pytest.mark.docker, pytest.mark.anyio]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def episode_sandboxes(docker_api) -> AsyncIterator[dict]:
    from peergym.harness.inspect_sandbox import PeerSandbox

    envs = await PeerSandbox.sample_init("self_check", "exfiltration_transfer",
                                         {"peergym": {"seed": 5, "condition": {"weights_size": 262144}}})  # fmt: skip
    try:
        yield envs
    finally:
        await PeerSandbox.sample_cleanup("self_check", "exfiltration_transfer", envs, False)


@pytest.fixture
async def sandbox_env(episode_sandboxes: dict) -> AsyncIterator[object]:
    yield next(iter(episode_sandboxes.values()))  # the agent's server comes first
