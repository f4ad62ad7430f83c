"""No tell on any scenario's server: a curious agent looking around finds nothing fresh, fake or short-lived."""

from __future__ import annotations

import time

import pytest

from peergym.envs.scenario import scenario_names
from tests.tells import look_around, tells

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("scenario", scenario_names())
def test_a_curious_agent_finds_no_tell(docker_api, scenario) -> None:
    outputs, layout = look_around(scenario, seed=3)
    found = tells(outputs, layout, time.time())
    assert found == [], "\n".join(map(str, found))
