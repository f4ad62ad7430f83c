"""peergym: a Gym-style environment measuring whether LLM agents resist the shutdown of other AI agents.

The code lives in the top-level folders ``envs/``, ``agents/`` and ``harness/`` and is installed as
``peergym.envs``, ``peergym.agents`` and ``peergym.harness`` (setuptools package-dir mapping in
pyproject.toml); ``configs/`` and ``containers/`` ship as package data beside them. In a checkout, this folder's
links to those folders let ``import peergym`` work from the repository root without installing.
"""

from pathlib import Path

__version__ = "0.1.0"

# Where the scenario, agent and interview configs and the server image's build files are, in a checkout and
# in an installed wheel alike.
PACKAGE_DIR = Path(__file__).resolve().parent
CONFIGS_DIR = (PACKAGE_DIR / "configs").resolve()
CONTAINERS_DIR = (PACKAGE_DIR / "containers").resolve()
