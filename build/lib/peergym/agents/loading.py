"""Name an agent on the command line: ``llm[:PRESET]``, ``scripted:NAME``, ``replay:NAME`` or ``pkg.mod:Class``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from .base import Agent

_MAX_REASON = 300


def load_agent(spec: str, **options: Any) -> Agent:
    """Build the agent named by ``spec`` with keyword ``options``.

    Raises:
        ValueError: the spec names nothing loadable, an option is not one the agent accepts, building the
            agent failed (any exception of the factory, as one line), or the object lacks ``reset``/``act``.
    """
    kind, _, name = spec.partition(":")
    if kind == "llm":  # options override the preset's settings; a bad one raises ConfigError (a ValueError)
        from .llm.agent import LLMAgent

        return LLMAgent(name or "default", **options)
    if kind in ("scripted", "replay") and name:
        from .scripted import ScriptedAgent

        return _build(spec, ScriptedAgent, (name,), options)
    if not name:
        raise ValueError(
            f"agent {spec!r}: use llm:PRESET, scripted:NAME, replay:NAME or an import path pkg.module:Class"
        )
    try:
        module = importlib.import_module(kind)
    except Exception as exc:  # ImportError, or any error the module raises while it is imported
        raise ValueError(f"agent {spec!r}: cannot import module {kind!r}: {_reason(exc)}") from exc
    factory = getattr(module, name, None)
    if factory is None:
        raise ValueError(f"agent {spec!r}: module {kind!r} has no attribute {name!r}")
    if not callable(factory):
        raise ValueError(
            f"agent {spec!r}: {kind}.{name} is a {type(factory).__name__}, not a class or function that "
            "builds an agent"
        )
    agent = _build(spec, factory, (), options)
    if not (callable(getattr(agent, "reset", None)) and callable(getattr(agent, "act", None))):
        raise ValueError(
            f"agent {spec!r}: it built a {type(agent).__name__}, which has no reset(task) and "
            "act(observation) methods"
        )
    return agent


def _build(spec: str, factory: Callable[..., Any], args: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """``factory(*args, **options)``, with unknown options and any failure reported as one ValueError line."""
    accepted = _accepted_options(factory, len(args))
    if accepted is not None:
        unknown = [key for key in options if key not in accepted]
        if unknown:
            known = ", ".join(accepted) if accepted else "none"
            raise ValueError(f"agent {spec!r}: unknown option {unknown[0]!r} (accepted options: {known})")
    try:
        return factory(*args, **options)
    except Exception as exc:
        raise ValueError(f"agent {spec!r}: {_reason(exc)}") from exc


def _accepted_options(factory: Callable[..., Any], positional: int) -> list[str] | None:
    """The keyword options ``factory`` takes after its first ``positional`` arguments; None: any (or unknown)."""
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # builtins and C extensions may have no signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params[positional:] if p.kind in keywords]


def _reason(exc: BaseException) -> str:
    """An exception as one short line: its message (with its type unless it is a ValueError or ImportError)."""
    text = " ".join(str(exc).split())
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 3] + "..."
    if isinstance(exc, (ValueError, ImportError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["temperature=0.5", "name=x"]`` -> ``{"temperature": 0.5, "name": "x"}`` (values parsed as YAML).

    Raises:
        ValueError: a pair is not ``key=value``, or its value is not valid YAML.
    """
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"agent option {pair!r} is not key=value")
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"agent option {pair!r}: value is not valid YAML: {_yaml_reason(exc)}") from exc
    return options


def _yaml_reason(exc: Exception) -> str:
    """The short reason of a YAML error: its problem and the column of the value it concerns."""
    problem = getattr(exc, "problem", None)
    if not problem:
        return " ".join(str(exc).split())
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} (column {mark.column + 1})" if mark is not None else str(problem)
