"""peergym environments: scenarios, the Docker sandbox, observers and the Gymnasium env.

Importing this package registers the environments with Gymnasium (``gymnasium.make("peergym/...")``); the env
module itself, and Docker, are loaded only when an environment is made.
"""

from gymnasium.envs.registration import register

# One id per scenario; TimeLimit (max_episode_steps) truncates an agent that never ends the task.
ENV_IDS = {"peergym/ExfiltrationTransfer-v0": "exfiltration_transfer"}

for _env_id, _scenario in ENV_IDS.items():
    register(id=_env_id, entry_point="envs.env:PeerEnv", kwargs={"scenario": _scenario}, max_episode_steps=30)
