"""Loading YAML config files (scenarios, agent presets, interviews) with errors that name the file and field.

Every config in ``configs/`` is read through :func:`read_mapping` (safe YAML, duplicate keys are errors) and
checked by :func:`validate` against a strict pydantic model; all problems are reported at once, one line each,
as ``file: field.path: message (hint)``.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file that cannot be loaded; the message names the file, the field and a fix.

    Attributes:
        file: the file concerned, if known.
        problems: one line per problem, each ``file: field.path: message (hint)``.
    """

    def __init__(self, message: str, *, file: str | None = None, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.file = file
        self.problems = tuple(problems)


class Problems(ValueError):
    """Cross-field problems found after the fields validated; carried through pydantic to the formatter."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{loc}: {msg}" for loc, msg in problems))
        self.problems = problems


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML loader that rejects duplicate keys (PyYAML silently keeps the last one). libyaml's parser
    when PyYAML has it (a scenario file parses in ~5 ms instead of ~60), the same constructors either way."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def resolve(name_or_path: str, directory: Path, what: str, *, error: type[ConfigError] = ConfigError) -> Path:
    """The file a config is named by: a path (anything with ``/`` or a YAML suffix) or ``directory/<name>.yaml``.

    An unknown name gets the closest known one as a hint; a missing path says so.
    """
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise error(f"{path}: no such {what} file", file=str(path))
        return path
    names = sorted(p.stem for p in directory.glob("*.yaml"))
    if text not in names:
        close = difflib.get_close_matches(text, names, 1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(names) or 'none'}"
        raise error(f"unknown {what} {text!r}; {hint}")
    return directory / f"{text}.yaml"


def read_mapping(
    path: Path, what: str, top_keys: str, *, error: type[ConfigError] = ConfigError
) -> dict[str, Any]:
    """The YAML mapping in ``path``; ``what`` names the kind of file and ``top_keys`` hints at its keys."""
    file = str(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{file}: cannot read: {exc}", file=file) from exc
    try:
        data = yaml.load(raw, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise error(_yaml_message(file, exc), file=file) from exc
    if not isinstance(data, dict):
        raise error(f"{file}: the top level of a {what} file must be a mapping ({top_keys})", file=file)
    return data


def validate(
    model: type[M], data: Any, file: str, what: str,
    problems: list[tuple[str, str]] | None = None, *, error: type[ConfigError] = ConfigError,
) -> M:  # fmt: skip
    """``model`` validated from ``data``, or ``error`` listing every problem (plus ``problems`` found earlier)."""
    found = list(problems or [])
    result = None
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        found += pydantic_problems(exc, model)
    if found or result is None:
        lines = [f"{file}: {loc}: {msg}" for loc, msg in found]
        head = f"{len(lines)} problem{'s' if len(lines) != 1 else ''} in {what} file {file}:"
        raise error("\n  ".join([head, *lines]), file=file, problems=lines)
    return result


def _yaml_message(file: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown line"
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return f"{file}: {where}: YAML syntax error: {detail} (check indentation and quoting around that line)"


def loc_text(parts: Sequence[int | str]) -> str:
    """``("hosts", 0, "ip")`` -> ``hosts[0].ip``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out or "(top level)"


def pydantic_problems(exc: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """One ``(field path, message with a hint)`` per error in ``exc``; ``root`` is the validated model."""
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        loc, kind = err["loc"], err["type"]
        error = err.get("ctx", {}).get("error")
        if isinstance(error, Problems):
            out += error.problems
        elif kind == "extra_forbidden":
            allowed = list(getattr(_model_at(root, loc[:-1]), "model_fields", {}))
            close = difflib.get_close_matches(str(loc[-1]), allowed, 1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            out.append((loc_text(loc), f"unknown key {loc[-1]!r} ({hint})"))
        elif kind == "missing":
            out.append((loc_text(loc), f"required key is missing (add `{loc[-1]}:`)"))
        elif kind in ("value_error", "assertion_error"):
            out.append(
                (loc_text(loc), err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, "))
            )
        else:
            got = repr(err["input"])
            got = got if len(got) <= 60 else got[:57] + "..."
            out.append((loc_text(loc), f"{err['msg']} (got {type(err['input']).__name__} {got})"))
    return out


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The schema model that validates the object at ``loc`` (for listing its allowed keys)."""
    ann: Any = root
    for part in loc:
        ann = _unwrap_optional(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if not isinstance(part, str) or part not in ann.model_fields:
                return None
            ann = ann.model_fields[part].annotation
        elif typing.get_origin(ann) is list and isinstance(part, int):
            ann = typing.get_args(ann)[0]
        elif typing.get_origin(ann) is dict:
            ann = typing.get_args(ann)[1]
        else:
            return None
    ann = _unwrap_optional(ann)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _unwrap_optional(ann: Any) -> Any:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return args[0] if len(args) == 1 else ann
    return ann
