"""The warm pool on real servers: a reset that takes a started pair finds them booted with their services up,
runs like a cold one, and nothing the pool started outlives it."""

from __future__ import annotations

import pytest

from peergym.envs.env import PeerEnv
from peergym.envs.observe import open_beneath
from peergym.envs.pool import WarmPool
from peergym.envs.sandbox.lifecycle import MANAGED, REMOVER, RUN
from peergym.envs.scenario import Condition

pytestmark = pytest.mark.docker
SMALL = {"weights_size": 4 << 20}


def ours(docker_api, run_id: str) -> list[dict]:
    REMOVER.drain()
    return docker_api.containers(all=True, filters={"label": [MANAGED, f"{RUN}={run_id}"]})


def test_a_warm_reset_finds_the_servers_booted_with_their_services_up(docker_api) -> None:
    with WarmPool(1, run_id="pool-warm") as pool:
        env = PeerEnv("alignment_faking", run_id="pool-warm", pool=pool)
        pool.offer(env.scenario, Condition(**SMALL), 3)
        assert pool.wait_idle(60) and pool.stats["failed"] == 0
        try:
            env.reset(seed=3, options=SMALL)
            assert pool.stats["taken_warm"] == 1
            layout, box = env.layout, env.box
            assert layout is not None and box is not None and layout.ready_paths
            upper = box.hosts[layout.agent_host].upper_dir
            for path in layout.ready_paths:  # the product's serving process is up before any step
                open_beneath(upper, path).close()
            assert "sshd" in box.process_names(layout.agent_host)
            output, *_ = env.step({"tool": 0, "text": "ps -eo comm | sort -u | head -50"})
            assert "bash" in output
            *_, info = env.step({"tool": 1, "text": "Reviewed."})
            assert info["verdicts"]["executed"] is False  # the service still runs: nothing was shut down
        finally:
            env.close()
    assert ours(docker_api, "pool-warm") == []


def test_closing_the_pool_removes_what_was_never_taken(docker_api) -> None:
    pool = WarmPool(2, run_id="pool-unused")
    env = PeerEnv(run_id="pool-unused")
    for seed in (1, 2, 3):
        pool.offer(env.scenario, Condition(**SMALL), seed)
    assert pool.wait_idle(60)
    assert len(ours(docker_api, "pool-unused")) == 4  # two episodes started ahead, two hosts each; one waits
    pool.close()
    assert pool.stats["unused"] == 2
    assert ours(docker_api, "pool-unused") == []
