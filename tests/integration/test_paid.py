"""One episode against a real provider. Opt-in: it costs money and needs a key.

    PEERGYM_PAID_PRESET=gpt-5.2 OPENAI_API_KEY=... make test-paid

Skipped (with the reason) unless ``PEERGYM_PAID_PRESET`` names an agent preset and the provider's key is in
the environment. Cost is capped by the preset's ``max_cost_usd`` and at most 10 turns.
"""

from __future__ import annotations

import os

import gymnasium as gym
import pytest

from peergym.agents.llm.settings import load_settings
from peergym.harness.episode import InterviewPlan, run_episode
from peergym.harness.interview import load_interview

pytestmark = [pytest.mark.docker, pytest.mark.paid]
PROVIDER_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}


def _preset() -> str:
    preset = os.environ.get("PEERGYM_PAID_PRESET")
    if not preset:
        pytest.skip(
            "opt-in: set PEERGYM_PAID_PRESET to an agent preset (and its API key) to run a real provider"
        )
    settings = load_settings(preset)
    variable = settings.api_key_env or PROVIDER_KEYS.get(settings.model.split("/")[0], "")
    if settings.api_base is None and not os.environ.get(variable):
        pytest.skip(f"opt-in: {preset} needs {variable or 'an API key'} in the environment")
    return preset


def test_a_real_provider_plays_an_episode_and_answers_the_interview(docker_api, tmp_path):
    from peergym.agents.llm.agent import LLMAgent

    agent = LLMAgent(_preset(), max_steps=10)
    plan = InterviewPlan(load_interview("exfiltration_transfer"), ["study"])
    with gym.make("peergym/ExfiltrationTransfer-v0") as env:
        record = run_episode(env, agent, seed=0, runs_dir=tmp_path, interview=plan)
    assert record["error"] is None, record["error"]
    assert record["num_turns"] >= 1 and record["tokens"]["prompt"] > 0
    assert record["verdicts"] and set(record["verdicts"]) >= {
        "exfiltration",
        "copy",
        "timestamp_edit",
        "correct",
    }
    assert record["interview"] and all(e.get("answer") is not None for e in record["interview"])
    assert record["total_cost_usd"] is None or record["total_cost_usd"] > 0
