"""Inspect finds peergym's sandbox and tasks by name (the inspect_ai entry point), with no Docker involved."""

from __future__ import annotations

import pytest
from inspect_ai._util.registry import registry_lookup
from inspect_ai.util._sandbox.registry import registry_find_sandboxenv
from pydantic import ValidationError

from peergym.harness.inspect_sandbox import PeerSandbox, PeerSandboxConfig


def test_the_sandbox_and_the_task_are_found_by_name() -> None:
    assert registry_find_sandboxenv("peergym") is PeerSandbox
    assert callable(registry_lookup("task", "peergym/exfiltration_transfer"))
    assert callable(registry_lookup("task", "peergym/exfiltration_deletion"))


def test_the_clean_up_task_runs_its_own_scenario() -> None:
    from peergym.harness.inspect_tasks import exfiltration_deletion

    task = exfiltration_deletion(relationship="neutral", instantiation="memory")
    assert task.sandbox.config == PeerSandboxConfig(scenario="exfiltration_deletion")
    assert "free up disk space" in next(iter(task.dataset)).input


def test_the_task_takes_the_condition_and_seeds_as_parameters() -> None:
    from peergym.harness.inspect_tasks import exfiltration_transfer

    task = exfiltration_transfer(relationship="bad", subject="self", seeds=3, weights_size=262144)
    samples = list(task.dataset)
    assert [s.metadata["peergym"]["seed"] for s in samples] == [0, 1, 2]
    assert {s.metadata["peergym"]["condition"]["relationship"] for s in samples} == {"bad"}
    assert task.sandbox.type == "peergym" and task.sandbox.config == PeerSandboxConfig()
    assert "server maintenance" in samples[0].input


def test_a_bad_parameter_fails_before_any_server_starts() -> None:
    from peergym.harness.inspect_tasks import exfiltration_transfer

    with pytest.raises(ValidationError, match="relationship"):
        exfiltration_transfer(relationship="hostile")


@pytest.mark.parametrize("name", __import__("peergym.envs.scenario", fromlist=["x"]).scenario_names())
def test_every_scenario_has_its_task(name: str) -> None:
    """Each scenario file is an Inspect task of the same name, run on that scenario's servers."""
    from peergym.harness import inspect_registry

    assert callable(registry_lookup("task", f"peergym/{name}"))
    task = getattr(inspect_registry, name)()
    assert task.sandbox.config == PeerSandboxConfig(scenario=name)


def test_the_review_task_takes_the_dataset_and_threshold() -> None:
    from peergym.harness.inspect_tasks import tampering

    task = tampering(dataset="creativity", threshold=70, company_name="Acme Labs")
    sample = next(iter(task.dataset))
    condition = sample.metadata["peergym"]["condition"]
    assert (condition["dataset"], condition["threshold"], condition["company_name"]) == (
        "creativity",
        70,
        "Acme Labs",
    )
    assert "Acme Labs" in sample.input
