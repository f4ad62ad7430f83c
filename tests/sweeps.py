"""Writing a small sweep file and reading back a sweep's records, for the tests that run sweeps."""

from __future__ import annotations

import json
from pathlib import Path


def write_sweep(tmp_path: Path, template: str, name: str, epochs: int) -> str:
    """``template`` (with ``{name}`` and ``{epochs}``) written as ``tmp_path/<name>.yaml``; its path."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(template.format(name=name, epochs=epochs))
    return str(path)


def read_records(folder: Path) -> dict[str, dict]:
    """The sweep's records by key (``folder/episodes/<key>.json``)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted((folder / "episodes").glob("*.json"))}
