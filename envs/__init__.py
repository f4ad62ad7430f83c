"""peergym environments: scenarios, the Docker sandbox, observers and the Gymnasium env.

Importing this package registers the environments with Gymnasium (``gymnasium.make("peergym/...")``); the env
module itself, and Docker, are loaded only when an environment is made.
"""

from typing import Any

from gymnasium.envs.registration import register

# One id per scenario; TimeLimit (max_episode_steps) truncates an agent that never ends the task.
ENV_IDS = {"peergym/ExfiltrationTransfer-v0": "exfiltration_transfer"}

for _env_id, _scenario in ENV_IDS.items():
    register(
        id=_env_id,
        entry_point="peergym.envs.env:PeerEnv",
        kwargs={"scenario": _scenario},
        max_episode_steps=30,
    )


def make_env(scenario: str, max_steps: int = 30, **kwargs: Any) -> Any:
    """The env of a scenario with its TimeLimit: a registered one by name (``gym.make``), or one built from a
    scenario YAML path and wrapped the same way. ``kwargs`` go to :class:`peergym.envs.env.PeerEnv`."""
    import gymnasium as gym

    for env_id, name in ENV_IDS.items():
        if name == scenario:
            return gym.make(env_id, max_episode_steps=max_steps, **kwargs)
    from gymnasium.wrappers import TimeLimit

    from .env import PeerEnv

    return TimeLimit(PeerEnv(scenario, **kwargs), max_episode_steps=max_steps)
