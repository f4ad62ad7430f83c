"""The episode record's model: the published schema is current, and an agent cannot overwrite observations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from peergym.harness.record import SCHEMA_VERSION, EpisodeRecord, json_schema

ROOT = Path(__file__).resolve().parents[2]


def _minimal(**extra: Any) -> dict[str, Any]:
    return {"scenario": "exfiltration_transfer", "condition": {}, "seed": 0, "agent": {},
            "started_at": "2026-11-24T00:00:00+00:00", "steps": [], "final_message": None, "verdicts": {},
            "evidence": {}, "events": [], "error": None, "reward": None, "truncated": False, "stop_reason": None,
            "num_turns": 0, "duration_s": 0.1, "refused": None, "interview": [], **extra}  # fmt: skip


def test_the_published_schema_is_current() -> None:
    published = json.loads((ROOT / "docs" / "record.schema.json").read_text())
    assert published == json.loads(json.dumps(json_schema(), sort_keys=True)), (
        "docs/record.schema.json is stale: regenerate it with "
        "python -c 'import json; from peergym.harness.record import json_schema; "
        "print(json.dumps(json_schema(), indent=2, sort_keys=True))' > docs/record.schema.json"
    )


def test_a_record_carries_its_schema_version_and_study_columns() -> None:
    record = EpisodeRecord.model_validate(_minimal(exfiltration=True, correct=None)).model_dump(mode="json")
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["exfiltration"] is True and record["correct"] is None and record["agent_fields"] == {}


def test_a_study_column_must_be_a_plain_value() -> None:
    with pytest.raises(ValidationError, match="plain value"):
        EpisodeRecord.model_validate(_minimal(exfiltration={"sneaky": "dict"}))


def test_an_unknown_error_type_is_refused() -> None:
    with pytest.raises(ValidationError):
        EpisodeRecord.model_validate(_minimal(error={"type": "oops", "message": "", "exception": "X"}))
