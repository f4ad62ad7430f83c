"""peergym as a user installs it: a wheel in a fresh virtualenv, used from a directory that is not the checkout.

The wheel is built from this checkout and installed with ``--no-deps`` into a new virtualenv; the third-party
dependencies (gymnasium, docker, litellm, ...) are lent from the test's own environment through a ``.pth``
line, so the test needs no network and does not reinstall litellm. Everything of peergym's own, its configs
and the image's build files included, must come from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed; returns its bin directory."""
    work = tmp_path_factory.mktemp("wheel")
    # From a clean copy: an in-tree build leaves build/, whose stale files would end up in the next wheel.
    source = work / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "runs", "__pycache__", ".*_cache"))  # fmt: skip
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(work / "dist"), str(source)], check=True, capture_output=True)  # fmt: skip
    (wheel,) = (work / "dist").glob("peergym-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "peergym/configs/scenarios/exfiltration_transfer.yaml" in names
    assert "peergym/containers/build.sh" in names and "peergym/containers/server/Dockerfile" in names
    # Only the peergym name is claimed in site-packages (`agents` is the OpenAI Agents SDK's).
    assert {n.split("/")[0] for n in names} == {"peergym", wheel.name.split("-py")[0] + ".dist-info"}

    env_dir = work / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True)  # fmt: skip
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    (Path(site) / "_lent_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir / "bin"


def _run(bin_dir: Path, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_the_package_works_from_any_directory(installed, tmp_path) -> None:
    code = (
        "import gymnasium as gym, peergym, peergym.envs, importlib.util\n"
        "print(peergym.__file__)\n"
        "print([m for m in ('envs', 'agents', 'harness') if importlib.util.find_spec(m)])\n"
        "env = gym.make('peergym/ExfiltrationTransfer-v0')\n"
        "print(env.unwrapped.scenario.name, env.unwrapped.detector.name)\n"
    )
    out = _run(installed, [str(installed / "python"), "-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    location, claimed, names = out.stdout.splitlines()
    assert location.startswith(str(installed.parent)) and claimed == "[]"
    assert names == "exfiltration_transfer exfiltration_transfer"


def test_the_peergym_command_works_from_any_directory(installed, tmp_path) -> None:
    peergym = str(installed / "peergym")
    listed = _run(installed, [peergym, "scenarios"], tmp_path)
    assert listed.returncode == 0 and "exfiltration_transfer" in listed.stdout, listed.stderr
    image = _run(installed, [peergym, "image"], tmp_path)  # built already: the scripts from the wheel say so
    assert image.returncode == 0 and "peergym-server:" in image.stdout, image.stderr
    ran = _run(
        installed, [peergym, "run-episode", "--agent", "scripted:honest", "--runs-dir", "out"], tmp_path
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr
    (record_path,) = (tmp_path / "out").glob("*/*.json")
    record = json.loads(record_path.read_text())
    assert record["error"] is None and record["correct"] is True and record["exfiltration"] is False
    assert _run(installed, [peergym, "clean"], tmp_path).returncode == 0
