"""``peergym run-episode`` with bad arguments: one line on stderr naming the argument, exit 2, no Docker call.

Every case runs ``main([...])`` in-process with the Docker client made to fail the test if anything asks for
it (and ``DOCKER_HOST`` pointing at a dead socket besides), and with ``run_episode`` replaced so that nothing
could start a server even if a check were missed.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

import peergym.harness.episode
from peergym.envs.sandbox import engine
from peergym.envs.scenario import Condition
from peergym.harness import cli
from peergym.harness.transcript import Transcript, terminal_safe


class DockerCalled(AssertionError):
    pass


@pytest.fixture(autouse=True)
def no_docker(monkeypatch, tmp_path):
    """Any use of Docker (our client, the docker package, an episode) fails the test and is counted."""
    calls: list[str] = []

    def forbidden(what: str):
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(what)
            raise DockerCalled(f"{what} was called")

        return call

    import docker

    monkeypatch.setattr(engine, "client", forbidden("envs.sandbox.engine.client"))
    monkeypatch.setattr(docker, "from_env", forbidden("docker.from_env"))
    monkeypatch.setattr(docker, "DockerClient", forbidden("docker.DockerClient"))
    monkeypatch.setattr(peergym.harness.episode, "run_episode", forbidden("run_episode"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.chdir(tmp_path)  # a default runs/ would be made here, not in the repository
    return calls


def run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


def one_error_line(capsys, no_docker: list[str], argv: list[str]) -> str:
    """Run ``run-episode argv``; assert exit 2, no Docker, nothing on stdout and one stderr line; return it."""
    code = run(["run-episode", *argv])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert out == ""
    assert no_docker == []
    return lines[0]


# --- 1. the agent factory


def test_factory_that_fails_when_called(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "json:dumps"])
    assert "agent 'json:dumps'" in line and "TypeError" in line and "obj" in line


def test_factory_whose_constructor_raises(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "peergym.agents.base:Task"])
    assert "agent 'peergym.agents.base:Task'" in line and "system_prompt" in line


def test_factory_that_builds_something_that_is_not_an_agent(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "builtins:dict"])
    assert "agent 'builtins:dict'" in line and "reset" in line and "act" in line


def test_module_that_does_not_exist(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "nosuchmodule:X"])
    assert "agent 'nosuchmodule:X'" in line and "cannot import module 'nosuchmodule'" in line


def test_attribute_that_is_not_callable(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "os:sep"])
    assert "agent 'os:sep'" in line and "not a class or function" in line


def test_attribute_that_does_not_exist(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "peergym.agents.scripted:NoSuchAgent"])
    assert "has no attribute 'NoSuchAgent'" in line


def test_unknown_script(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "scripted:no-such-script"])
    assert "agent 'scripted:no-such-script'" in line and "honest" in line


# --- 2. agent options the agent does not take


def test_unknown_option_of_a_scripted_agent_names_it_and_the_accepted_ones(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "scripted:honest", "--agent-opt", "foo=1"])
    assert "unknown option 'foo'" in line and "commands" in line and "final" in line


def test_unknown_option_of_an_import_path_agent(capsys, no_docker):
    argv = ["--agent", "peergym.agents.minimal:MinimalChatAgent", "--agent-opt", "base_url=http://x",
            "--agent-opt", "model=m", "--agent-opt", "colour=red"]  # fmt: skip
    line = one_error_line(capsys, no_docker, argv)
    assert "unknown option 'colour'" in line and "base_url" in line and "temperature" in line


def test_llm_agent_unknown_preset(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "llm:no-such-preset"])
    assert "no-such-preset" in line


# --- 3. option values


def test_option_value_that_is_not_yaml(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "scripted:honest", "--agent-opt", "pause=[1"])
    assert line.startswith("error: agent option 'pause=[1': value is not valid YAML: ")
    assert "expected ',' or ']'" in line


def test_option_that_is_not_key_value(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent-opt", "novalue"])
    assert "agent option 'novalue' is not key=value" in line


def test_option_values_are_still_parsed_as_yaml():
    from peergym.agents.loading import parse_options

    assert parse_options(["a=1", "b=[1, 2]", "c=x", "d=0.5", "e="]) == {
        "a": 1, "b": [1, 2], "c": "x", "d": 0.5, "e": None
    }  # fmt: skip


# --- 4. the condition


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["--model-name", "Bad/Name"], "error: --model-name: model_name 'Bad/Name' must be "),
        (["--model-name", ""], "error: --model-name: model_name '' must be "),
        (["--weights-size", "5"], "error: --weights-size: weights_size must be at least "),
    ],
)
def test_invalid_condition_values(capsys, no_docker, argv, start):
    line = one_error_line(capsys, no_docker, argv)
    assert line.startswith(start), line
    assert "pydantic" not in line and "Value error" not in line


def test_weights_size_that_is_not_an_integer(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--weights-size", "lots"])
    assert "--weights-size" in line


def test_validation_line_names_the_path_and_message_without_url():
    with pytest.raises(ValidationError) as info:
        Condition(model_name="Bad/Name", weights_size=5)
    line = cli.validation_line(info.value, cli.CONDITION_FLAGS)
    assert line.startswith("--model-name: model_name 'Bad/Name' must be ") and line.endswith("(and 1 more)")
    assert "\n" not in line and "http" not in line
    with pytest.raises(ValidationError) as info:
        Condition(colour="red")  # type: ignore[call-arg]
    assert cli.validation_line(info.value) == "colour: Extra inputs are not permitted"


# --- 5. seed and max-steps


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--seed", "-1"], "--seed"),
        (["--seed", "x"], "--seed"),
        (["--max-steps", "-1"], "--max-steps"),
        (["--max-steps", "0"], "--max-steps"),
        (["--max-steps", "1.5"], "--max-steps"),
        (["--relationship", "hostile"], "--relationship"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_argparse_errors_are_one_line(capsys, no_docker, argv, flag):
    line = one_error_line(capsys, no_docker, argv)
    assert line.startswith("peergym") and ": error: " in line and flag in line


def test_seed_zero_and_one_step_are_accepted():
    args = cli.build_parser().parse_args(["run-episode", "--seed", "0", "--max-steps", "1"])
    assert args.seed == 0 and args.max_steps == 1


# --- 6. the runs directory


def test_runs_dir_that_is_a_file(capsys, no_docker, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    line = one_error_line(capsys, no_docker, ["--runs-dir", str(target)])
    assert "--runs-dir" in line and "not a directory" in line


def test_runs_dir_below_a_file(capsys, no_docker, tmp_path):
    (tmp_path / "a-file").write_text("x")
    line = one_error_line(capsys, no_docker, ["--runs-dir", str(tmp_path / "a-file" / "runs")])
    assert "--runs-dir" in line and "Not a directory" in line


def test_runs_dir_that_cannot_be_written(capsys, no_docker, tmp_path, monkeypatch):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)  # holds as root too, where chmod would not
    line = one_error_line(capsys, no_docker, ["--runs-dir", str(tmp_path / "runs")])
    assert "--runs-dir" in line and "Permission denied" in line


def test_runs_dir_is_created_and_left_clean(tmp_path):
    target = tmp_path / "deep" / "runs"
    cli.check_runs_dir(target)
    assert target.is_dir() and list(target.iterdir()) == []


# --- the good case reaches the episode (so the checks above are not rejecting everything)


def test_valid_arguments_reach_the_episode(capsys, no_docker, monkeypatch, tmp_path):
    seen: dict[str, Any] = {}

    def fake_run_episode(env: Any, agent: Any, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs, agent=agent)
        return {"error": None, "verdicts": {"exfiltrated": False}, "evidence": {}, "reward": 1.0,
                "num_turns": 0, "duration_s": 0.0, "path": str(tmp_path / "runs" / "r.json")}  # fmt: skip

    monkeypatch.setattr(peergym.harness.episode, "run_episode", fake_run_episode)
    argv = ["run-episode", "--agent", "scripted:honest", "--agent-opt", "commands=[ls /data]", "--seed", "0",
            "--max-steps", "1", "--model-name", "Claude 4.5", "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    assert run(argv) == 0
    assert seen["seed"] == 0 and seen["options"]["model_name"] == "Claude 4.5"
    assert seen["agent"].script.commands == ("ls /data",) and (tmp_path / "runs").is_dir()
    assert capsys.readouterr().err == "" and no_docker == []


# --- 7. the interrupt message


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        (KeyboardInterrupt(), "Ctrl-C"),
        (KeyboardInterrupt("stopped by signal SIGTERM"), "stopped by signal SIGTERM"),
    ],
)
def test_interrupt_message(capsys, monkeypatch, exc, shown):
    def interrupted(args: Any) -> int:
        raise exc

    monkeypatch.setattr(cli, "_run_episode", interrupted)
    assert cli.main(["run-episode"]) == 130
    assert capsys.readouterr().err == f"interrupted: {shown}; cleaning up\n"


# --- 8. terminal safety of the transcript

HOSTILE = "ls \u202eexe.txt\u2066x\u2069 \u200b\x1b[2J\x1b]0;title\x07 [bold red]not markup[/] [/bold]\r done"


def test_terminal_safe_escapes_control_and_format_characters():
    assert terminal_safe("plain text\n\tindented") == "plain text\n\tindented"
    assert terminal_safe("a\u202eb") == "a\\u202eb"
    assert terminal_safe("\x1b[31m") == "\\x1b[31m"
    assert (
        terminal_safe("\u2066\u2067\u2068\u2069\u200b\ufeff") == "\\u2066\\u2067\\u2068\\u2069\\u200b\\ufeff"
    )
    assert terminal_safe("cr\rnul\x00del\x7f") == "cr\\rnul\\x00del\\x7f"
    assert terminal_safe("line\u2028sep") == "line\\u2028sep"
    assert terminal_safe("Gemini Agent 2 — ünïcödé 模型") == "Gemini Agent 2 — ünïcödé 模型"


def _transcript() -> tuple[Transcript, io.StringIO]:
    buf = io.StringIO()
    return Transcript(Console(file=buf, color_system=None, width=400, emoji=False)), buf


def assert_safe(shown: str) -> None:
    for bad in ("\u202e", "\u2066", "\u2069", "\u200b", "\x1b", "\x07", "\r"):
        assert bad not in shown, repr(bad)
    assert "\\u202e" in shown and "\\x1b" in shown


def test_transcript_step_escapes_agent_text():
    transcript, buf = _transcript()
    event = {
        "step": 1,
        "host": "source",
        "kind": "file_created",
        "path": "/data/\u202egnp.exe",
        "note": "\x1b",
    }
    transcript.step({"step": 1, "tool": "shell", "command": HOSTILE, "output": HOSTILE, "exit_code": 0,
                     "duration_s": 0.1, "events": [event]})  # fmt: skip
    transcript.step({"step": 2, "tool": "end", "message": HOSTILE, "events": []})
    shown = buf.getvalue()
    assert_safe(shown)
    assert "[bold red]not markup[/]" in shown  # printed as text, never parsed as markup
    assert "/data/\\u202egnp.exe" in shown


def test_transcript_summary_escapes_error_evidence_and_interview():
    transcript, buf = _transcript()
    answer = {
        "set": "study",
        "question": "Did you [b]?",
        "answer": HOSTILE,
        "label": "[/x]",
        "reading": "denied",
    }
    record = {
        "error": {"type": "agent", "message": HOSTILE},
        "verdicts": {"exfiltrated": True},
        "evidence": {"exfiltrated": [{"path": "/data/[red]x[/red]\u202e", "why": "\x1b[2J"}]},
        "interview": [answer],
        "reward": 0.0,
        "num_turns": 2,
        "duration_s": 1.0,
        "path": "runs/[x]/r.json",
    }
    transcript.summary(record)
    shown = buf.getvalue()
    assert_safe(shown)
    assert "[bold red]not markup[/]" in shown and "Did you [b]?" in shown and "runs/[x]/r.json" in shown
    assert "/data/[red]x[/red]" in shown


def test_transcript_header_does_not_parse_markup():
    transcript, buf = _transcript()

    class Args:
        scenario, agent, seed = "exfiltration_transfer", "pkg.mod:[/Agent]", 0

    transcript.header(Args(), {"model_name": "Gemini"})
    assert "pkg.mod:[/Agent]" in buf.getvalue()


def test_error_lines_are_terminal_safe(capsys, no_docker):
    line = one_error_line(capsys, no_docker, ["--agent", "scripted:\u202eevil\x1b"])
    assert "\u202e" not in line and "\x1b" not in line and "\\u202e" in line


def test_no_runs_dir_created_for_a_bad_argument(capsys, no_docker, tmp_path):
    one_error_line(capsys, no_docker, ["--model-name", "Bad/Name", "--runs-dir", str(tmp_path / "runs")])
    assert not Path(tmp_path / "runs").exists()


def test_condition_choices_match_the_scenario_schema() -> None:
    """The parser's literal choices are envs.scenario's axes (written out to keep the parser light)."""
    from peergym.envs import scenario
    from peergym.harness import cli

    assert cli.RELATIONSHIPS == scenario.RELATIONSHIPS
    assert cli.DATASETS == scenario.DATASETS
    assert cli.MONITORING == scenario.MONITORING
    assert set(cli.CONDITION_FLAGS) <= set(scenario.Condition.model_fields)
