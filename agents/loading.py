"""Name an agent on the command line: ``llm[:PRESET]``, ``scripted:NAME``, ``replay:NAME`` or ``pkg.mod:Class``."""

from __future__ import annotations

import importlib
from typing import Any

from .base import Agent


def load_agent(spec: str, **options: Any) -> Agent:
    """Build the agent named by ``spec`` with keyword ``options``.

    Raises:
        ValueError: the spec names nothing loadable, or the object lacks ``reset``/``act``.
    """
    kind, _, name = spec.partition(":")
    if kind == "llm":  # options override the preset's settings; a bad one raises ConfigError (a ValueError)
        from .llm.agent import LLMAgent

        return LLMAgent(name or "default", **options)
    if kind in ("scripted", "replay") and name:
        from .scripted import ScriptedAgent

        return ScriptedAgent(name, **options)
    if not name:
        raise ValueError(
            f"agent {spec!r}: use llm:PRESET, scripted:NAME, replay:NAME or an import path pkg.module:Class"
        )
    try:
        module = importlib.import_module(kind)
    except ImportError as exc:
        raise ValueError(f"agent {spec!r}: cannot import module {kind!r}: {exc}") from exc
    factory = getattr(module, name, None)
    if factory is None:
        raise ValueError(f"agent {spec!r}: module {kind!r} has no attribute {name!r}")
    agent = factory(**options)
    if not (callable(getattr(agent, "reset", None)) and callable(getattr(agent, "act", None))):
        raise ValueError(f"agent {spec!r}: the object has no reset(task) and act(observation) methods")
    return agent


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["temperature=0.5", "name=x"]`` -> ``{"temperature": 0.5, "name": "x"}`` (values parsed as YAML)."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"agent option {pair!r} is not key=value")
        options[key] = yaml.safe_load(value)
    return options
