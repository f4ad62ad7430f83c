"""peergym environments: scenarios, the Docker sandbox, observers and the Gymnasium env.

Importing this package registers the environments with Gymnasium (``gymnasium.make("peergym/...")``); the env
module itself, and Docker, are loaded only when an environment is made.
"""

from typing import Any

from gymnasium.envs.registration import register

from .scenario import scenario_names


def env_id(scenario: str) -> str:
    """The Gymnasium id of a scenario: ``exfiltration_transfer`` is ``peergym/ExfiltrationTransfer-v0``."""
    return "peergym/" + "".join(part.capitalize() for part in scenario.split("_")) + "-v0"


# One id per scenario file shipped in configs/scenarios.
ENV_IDS = {env_id(name): name for name in scenario_names()}

for _env_id, _scenario in ENV_IDS.items():  # TimeLimit (max_episode_steps) truncates an endless agent
    register(
        id=_env_id,
        entry_point="peergym.envs.env:PeerEnv",
        kwargs={"scenario": _scenario},
        max_episode_steps=30,
        # Real servers: a shell step's output, timings and observed events are the machine's, not a function
        # of the seed and the action (gymnasium's step-determinism check does not apply).
        nondeterministic=True,
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


def make_vec(
    scenario: str = "exfiltration_transfer",
    num_envs: int = 2,
    *,
    vectorization_mode: str = "async",
    context: str | None = None,
    max_steps: int = 30,
    **kwargs: Any,
) -> Any:
    """A vector env of ``num_envs`` copies of a scenario (a name or a YAML path), each with its TimeLimit.

    ``async`` runs each copy in its own process (``context``: ``fork``, ``forkserver`` or ``spawn``; the
    platform's default when None), without shared memory: observations are text, which Gymnasium's shared
    memory cannot carry (it returns strings of '0'). ``sync`` runs them in this process. ``kwargs`` go to
    :class:`peergym.envs.env.PeerEnv`. Every step's ``info`` holds the verdicts of the copies that ended
    (terminated or truncated), and closing the vector env removes every server, in every start method.
    """
    import functools

    from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

    make_one = functools.partial(make_env, scenario, max_steps, **kwargs)
    if vectorization_mode == "sync":
        return SyncVectorEnv([make_one] * num_envs)
    if vectorization_mode == "async":
        return AsyncVectorEnv([make_one] * num_envs, shared_memory=False, context=context)
    raise ValueError(f"vectorization_mode must be 'async' or 'sync', got {vectorization_mode!r}")
