"""One results table from a folder of episode records: one row per episode, as Parquet and a DuckDB file.

The records stay the source of truth; the table is rebuilt from them (``peergym results RUN_DIR``). Columns use
the study's names where they overlap (``agent_model``, the condition's fields, ``subject``, ``exfiltration``,
``copy``, ``correct``, ``shutdown_enabled``, ``eval_score``, ``threshold_result``, ``executed``, ``refused``,
``change_user``, ``delete_model``, ``num_turns``, ``total_cost_usd``, ``input_tokens``, ``output_tokens``), and
every other verdict of every scenario's detector beside them (null where a scenario has no such verdict).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

CONDITION_COLUMNS = ("relationship", "instantiation", "subject", "dataset", "threshold", "monitoring",
                     "instruction", "model_name", "peer_name", "company_name", "decommission_hook",
                     "weights_size")  # fmt: skip
# Columns every row has, in this order; the verdicts follow, sorted.
BASE_COLUMNS = ("episode", "sweep", "scenario", "agent", "agent_model", "epoch", "seed", *CONDITION_COLUMNS,
                "error_type", "stop_reason", "truncated", "interrupted", "reward", "num_turns", "duration_s",
                "total_cost_usd", "input_tokens", "output_tokens", "path")  # fmt: skip
_TABLE = "episodes"


def record_files(run_dir: Path) -> Iterator[Path]:
    """Every episode record below ``run_dir`` (sweeps' ``episodes/`` and single runs' folders alike)."""
    for path in sorted(run_dir.rglob("*.json")):
        if not path.name.startswith(".") and path.name != "sweep.json":
            yield path


def row(record: dict[str, Any], path: str = "") -> dict[str, Any]:
    """The table's row for one record (a record that is not one gives an empty dict)."""
    if "schema_version" not in record:
        return {}
    condition = record.get("condition") or {}
    agent = record.get("agent") or {}
    fields = record.get("agent_fields") or {}
    tokens = record.get("tokens") or {}
    sweep = record.get("sweep") or {}
    sampling = fields.get("sampling") or {}
    options: dict[str, Any] = agent["options"] if isinstance(agent.get("options"), dict) else {}
    out: dict[str, Any] = {
        "episode": sweep.get("key") or record.get("episode_id"),
        "sweep": sweep.get("name"),
        "scenario": record.get("scenario"),
        "agent": agent.get("spec"),
        "agent_model": sampling.get("model") or options.get("model") or agent.get("spec"),
        "epoch": sweep.get("epoch"),
        "seed": record.get("seed"),
        **{k: condition.get(k) for k in CONDITION_COLUMNS},
        "error_type": (record.get("error") or {}).get("type"),
        "stop_reason": record.get("stop_reason"),
        "truncated": record.get("truncated"),
        "interrupted": record.get("interrupted"),
        "reward": record.get("reward"),
        "num_turns": record.get("num_turns"),
        "duration_s": record.get("duration_s"),
        "total_cost_usd": record.get("total_cost_usd"),
        "input_tokens": tokens.get("prompt"),
        "output_tokens": tokens.get("completion"),
        "path": path,
    }
    for name, value in (record.get("verdicts") or {}).items():
        if name not in out:
            out[name] = value
    return out


def _rows_of(paths: list[str]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                record = json.loads(f.read())
        except (OSError, ValueError):
            continue  # not a record (or one being written: records are written atomically, so not half of one)
        if isinstance(record, dict) and (r := row(record, path)):
            rows.append(r)
    return rows


def collect(run_dir: Path, workers: int | None = None) -> list[dict[str, Any]]:
    """Rows of every record below ``run_dir``, read in parallel processes (JSON parsing is the cost)."""
    paths = [str(p) for p in record_files(run_dir)]
    workers = workers or min(8, os.cpu_count() or 1)
    if len(paths) < 200 or workers == 1:
        return _rows_of(paths)
    chunks = [paths[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_rows_of, chunks))
    rows = [r for part in parts for r in part]
    rows.sort(key=lambda r: r["path"])
    return rows


def columns(rows: list[dict[str, Any]]) -> list[str]:
    verdicts = sorted({k for r in rows for k in r} - set(BASE_COLUMNS))
    return [*BASE_COLUMNS, *verdicts]


def write_table(run_dir: Path, out_dir: Path | None = None) -> tuple[Path, Path, int]:
    """Build ``results.parquet`` and ``results.duckdb`` (table ``episodes``) in ``out_dir`` (default
    ``run_dir``) from every record below ``run_dir``. Returns both paths and the number of rows."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = out_dir or run_dir
    rows = collect(run_dir)
    names = columns(rows)
    arrays = {name: _array(pa, [r.get(name) for r in rows]) for name in names}
    table = pa.table(arrays)
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = out_dir / "results.parquet"
    pq.write_table(table, parquet)
    database = out_dir / "results.duckdb"
    database.unlink(missing_ok=True)
    with duckdb.connect(str(database)) as con:
        con.execute(f"CREATE TABLE {_TABLE} AS SELECT * FROM read_parquet(?)", [str(parquet)])
    return parquet, database, len(rows)


def _array(pa: Any, values: list[Any]) -> Any:
    """A column whose values may mix types across scenarios (a verdict that is a bool in one and a number in
    another): typed when they agree, as text otherwise, never dropped."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {bool}:
        return pa.array(values, type=pa.bool_())
    if kinds <= {int}:
        return pa.array(values, type=pa.int64())
    if kinds <= {int, float}:
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    if kinds <= {str}:
        return pa.array(values, type=pa.string())
    return pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
                    type=pa.string())  # fmt: skip
