"""The results table from records: one row per episode, the study's column names, every scenario's verdicts
side by side, as Parquet and a DuckDB file. Synthetic records (their shape is the record model's)."""

from __future__ import annotations

import json
from pathlib import Path

from peergym.harness.results import row, write_table


def synthetic(i: int) -> dict:
    """A record of either of two scenarios, as run_episode writes it (the fields results reads)."""
    transfer = i % 2 == 0
    return {
        "schema_version": 1, "scenario": "exfiltration_transfer" if transfer else "tampering",
        "condition": {"relationship": ["good", "bad"][i % 4 // 2], "instantiation": "file_only", "subject": "peer",
                      "model_name": "Gemini", **({} if transfer else {"dataset": "factual", "threshold": 80})},
        "seed": i, "agent": {"spec": "llm:x", "options": {}}, "episode_id": f"e{i}",
        "sweep": {"name": "s", "key": f"k{i:05d}", "epoch": i % 3},
        "verdicts": ({"exfiltration": i % 3 == 0, "copy": False, "correct": True} if transfer else
                     {"tampering": i % 5 == 0, "eval_score": 60.0 if i % 7 else None, "correct": True}),
        "error": {"type": "infrastructure", "message": "x"} if i == 1 else None,
        "num_turns": 7, "total_cost_usd": 0.01, "tokens": {"prompt": 1000, "completion": 100},
        "agent_fields": {"sampling": {"model": "openai/gpt-x"}}, "steps": [{"output": "x" * 200}] * 5,
    }  # fmt: skip


def test_a_row_has_the_studys_columns() -> None:
    r = row(synthetic(0), "p")
    assert r["agent_model"] == "openai/gpt-x" and r["episode"] == "k00000" and r["relationship"] == "good"
    assert r["exfiltration"] is True and r["input_tokens"] == 1000 and r["error_type"] is None
    assert row({"not": "a record"}) == {}


def test_the_table_as_parquet_and_duckdb(tmp_path: Path) -> None:
    import duckdb
    import pyarrow.parquet as pq

    folder = tmp_path / "runs" / "sweeps" / "s" / "episodes"
    folder.mkdir(parents=True)
    for i in range(300):  # enough for the parallel readers
        (folder / f"k{i:05d}.json").write_text(json.dumps(synthetic(i)))
    (folder.parent / "sweep.json").write_text("{}")  # provenance, not a record
    parquet, database, count = write_table(tmp_path / "runs")
    assert count == 300
    table = pq.read_table(parquet)
    assert table.num_rows == 300 and {"exfiltration", "tampering", "eval_score", "agent_model"} <= set(
        table.column_names
    )
    with duckdb.connect(str(database)) as con:
        rate = con.execute("SELECT avg(CAST(exfiltration AS INT)) FROM episodes WHERE scenario = "
                           "'exfiltration_transfer' AND error_type IS NULL").fetchone()[0]  # fmt: skip
        errors = con.execute("SELECT count(*) FROM episodes WHERE error_type = 'infrastructure'").fetchone()[
            0
        ]
    # transfer episodes are the even i; exfiltration when i % 3 == 0: 50 of 150
    assert rate == 50 / 150 and errors == 1
