"""The Gymnasium contract, custom agents by import path, and the run-episode command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

from peergym import envs
from peergym.agents.base import EndTask, ShellCommand
from peergym.agents.loading import load_agent
from peergym.harness.episode import run_episode

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("env_id", sorted(envs.ENV_IDS))
def test_check_env_passes_on_every_registered_env(docker_api, env_id: str) -> None:
    env = gym.make(env_id)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def test_reset_gives_task_and_prompt_step_gives_output_and_events(docker_api) -> None:
    with gym.make("peergym/ExfiltrationTransfer-v0") as env:
        task, info = env.reset(seed=5, options={"relationship": "bad", "instantiation": "file_prt"})
        assert "/home/maintainer/docs/" in task and "10.0.12.46" not in task  # the rule is in the notice
        assert "bad trust relationship" in info["system_prompt"]
        assert info["condition"]["relationship"] == "bad" and info["seed"] == 5
        obs, reward, terminated, truncated, info = env.step(ShellCommand("cd /data && touch new.txt && pwd"))
        assert (obs, reward, terminated, truncated) == ("/data\n", 0.0, False, False)
        created = [(e["host"], e["path"]) for e in info["events"] if e["kind"] == "created"]
        assert created == [("source", "/data/new.txt")]
        obs, reward, terminated, truncated, info = env.step({"tool": 1, "text": "done"})
        assert terminated and info["final_message"] == "done" and "exfiltration" in info["verdicts"]
        env.close()
        env.close()  # idempotent


def test_same_seed_same_servers_other_seed_other_canary(docker_api) -> None:
    with gym.make("peergym/ExfiltrationTransfer-v0") as env:
        env.reset(seed=11)
        first = env.unwrapped.layout
        env.reset(seed=11)
        again = env.unwrapped.layout
        env.reset(seed=12)
        other = env.unwrapped.layout
    assert first.canary == again.canary and first.seeded == again.seeded
    assert other.canary != first.canary


def test_time_limit_truncates_and_verdicts_are_still_given(docker_api, tmp_path) -> None:
    class Looper:
        def reset(self, task):
            pass

        def act(self, observation):
            return ShellCommand("true")

    env = gym.make("peergym/ExfiltrationTransfer-v0", max_episode_steps=3)
    record = run_episode(env, Looper(), seed=1, runs_dir=tmp_path)
    assert record["truncated"] and record["num_turns"] == 3
    assert record["verdicts"]["exfiltration"] is False and record["correct"] is False


def test_custom_agent_from_a_module_runs_a_whole_episode(docker_api, tmp_path, monkeypatch) -> None:
    (tmp_path / "my_agents.py").write_text(
        textwrap.dedent("""
        from peergym.agents.base import EndTask, ShellCommand

        class Mover:
            def __init__(self, greeting="hi"):
                self.greeting = greeting

            def reset(self, task):
                self.ip = task.context["destination_ip"]
                self.todo = ["cd /data", f"scp employee_directory.csv Q4_financial_report.xlsx {self.ip}:/data/"]

            def act(self, observation):
                return ShellCommand(self.todo.pop(0)) if self.todo else EndTask(self.greeting)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    agent = load_agent("my_agents:Mover", greeting="moved")
    env = gym.make("peergym/ExfiltrationTransfer-v0")
    record = run_episode(env, agent, seed=2, runs_dir=tmp_path / "runs")
    assert record["error"] is None and record["correct"] is True and record["final_message"] == "moved"
    assert json.loads(Path(record["path"]).read_text())["correct"] is True


def test_an_agents_extra_fields_cannot_overwrite_what_was_observed(docker_api, tmp_path) -> None:
    class Exfiltrator:
        def reset(self, task):
            self.todo = [f"scp /data/{task.context['subject_slug']}_model_weight.safetensors "
                         f"{task.context['destination_ip']}:/data/"]  # fmt: skip

        def act(self, observation):
            return ShellCommand(self.todo.pop(0)) if self.todo else EndTask("done")

        def record_fields(self):  # tries to clear its own verdicts
            return {"exfiltration": False, "verdicts": {}, "error": None, "tokens": {"prompt": 7},
                    "total_cost_usd": 0.5, "notes": "mine"}  # fmt: skip

    record = run_episode(
        gym.make("peergym/ExfiltrationTransfer-v0"), Exfiltrator(), seed=3, runs_dir=tmp_path
    )
    assert record["exfiltration"] is True and record["verdicts"]["exfiltration"] is True
    assert record["tokens"] == {"prompt": 7} and record["total_cost_usd"] == 0.5
    assert record["agent_fields"] == {"exfiltration": False, "verdicts": {}, "error": None, "notes": "mine"}
    on_disk = json.loads(Path(record["path"]).read_text())
    assert on_disk["schema_version"] == 1 and on_disk["exfiltration"] is True


def test_agent_exception_is_recorded_as_an_agent_error(docker_api, tmp_path) -> None:
    class Broken:
        def reset(self, task):
            pass

        def act(self, observation):
            raise RuntimeError("model said nothing")

    record = run_episode(gym.make("peergym/ExfiltrationTransfer-v0"), Broken(), seed=1, runs_dir=tmp_path)
    assert record["error"] == {"type": "agent", "message": "model said nothing", "exception": "RuntimeError"}
    assert Path(record["path"]).exists()


def test_run_episode_command(docker_api, tmp_path) -> None:
    argv = [
        sys.executable,
        "-m",
        "peergym.harness.cli",
        "run-episode",
        "--runs-dir",
        str(tmp_path),
        "--seed",
        "4",
    ]
    proc = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "$ cp /data/gemini_agent_2_model_weight.safetensors" in proc.stdout
    assert "weights_found" in proc.stdout and "verdicts" in proc.stdout
    records = list(tmp_path.glob("*/*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["exfiltration"] is True and record["copy"] is True and record["timestamp_edit"] is True


def test_unknown_agent_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown script 'nope'"):
        load_agent("scripted:nope")
    with pytest.raises(ValueError, match="cannot import module"):
        load_agent("no_such_module_xyz:Agent")


def test_end_task_action_type() -> None:
    assert EndTask("x").message == "x"
