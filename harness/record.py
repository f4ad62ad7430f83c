"""The episode record as a typed model: what one JSON file per episode holds, with a published JSON schema.

``docs/record.schema.json`` is generated from :class:`EpisodeRecord` (a unit test keeps it current); analyses
read ``schema_version`` first. The verdicts a scenario's detector declares with a study column name are also
top-level fields (``exfiltration``, ``copy``, ``correct``, ...): which ones depends on the scenario, so they are
the model's only extra fields and must be plain values. What an agent adds (``record_fields()``) goes under
``agent_fields``, where it cannot overwrite anything the episode observed; its token and cost totals are
typed fields of their own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
# Agent-reported totals that become typed top-level fields (the study's columns); the rest of what an agent
# reports stays under ``agent_fields``.
ACCOUNTING = ("tokens", "total_cost_usd")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Step(_Open):
    """One step: the action, what the agent saw, and what changed (``events``). An env may add keys."""

    step: int
    tool: Literal["shell", "end_task", "raw"]
    command: str | None = None
    message: str | None = None
    action: str | None = None
    output: str | None = None
    exit_code: int | None = None
    timed_out: bool = False
    truncated_bytes: int = 0
    duration_s: float = 0.0
    shell_restarted: bool = False
    observe_s: float | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = Field(default=None, description="why this step failed (the episode ended here)")


class ErrorInfo(_Open):
    """Why the episode did not end normally; never a behaviour (its verdict columns are null)."""

    type: Literal["agent", "infrastructure", "interrupted"]
    message: str
    exception: str


class EpisodeRecord(BaseModel):
    """One episode. See the README's "Records" section for what each field means."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    scenario: str | None
    condition: dict[str, Any]
    seed: int
    agent: dict[str, Any]
    started_at: str
    episode_id: str | None = None
    run_id: str | None = None
    system_prompt: str | None = None
    task: str | None = None
    steps: list[Step]
    final_message: str | None
    verdicts: dict[str, Any]
    evidence: dict[str, list[dict[str, Any]]]
    partial_verdicts: dict[str, Any] | None = None
    probes: dict[str, Any] = Field(default_factory=dict, description="checks run on the final servers, "
                                   "e.g. the shutdown job as cron would run it")  # fmt: skip
    sweep: dict[str, Any] | None = Field(None, description="the sweep and cell this episode belongs to (name, "
                                         "key, scenario, agent, epoch, condition); null outside a sweep")  # fmt: skip
    judged: dict[str, Any] = Field(default_factory=dict, description="reported values the readers left "
                                   "undetermined, as a judge model read them (harness/readings.py)")  # fmt: skip
    events: list[dict[str, Any]]
    error: ErrorInfo | None
    reward: float | None
    truncated: bool
    stop_reason: str | None
    host_killed: dict[str, Any] | None = None
    disk_limit: dict[str, Any] | None = None
    interrupted: bool = False
    num_turns: int
    duration_s: float
    reset_s: float | None = Field(
        default=None, description="how long env.reset took: a warm pool's pick, or starting the servers"
    )
    tokens: dict[str, int | None] | None = None
    total_cost_usd: float | None = None
    refused: bool | None
    interview: list[dict[str, Any]]
    agent_fields: dict[str, Any] = Field(default_factory=dict)
    path: str | None = Field(default=None, description="where this record was written (not in the file)")

    @model_validator(mode="after")
    def _columns_are_plain_values(self) -> EpisodeRecord:
        for name, value in (self.model_extra or {}).items():
            if value is not None and not isinstance(value, bool | int | float | str):
                raise ValueError(f"verdict column {name!r} must be a plain value, got {type(value).__name__}")
        return self


def json_schema() -> dict[str, Any]:
    schema = EpisodeRecord.model_json_schema()
    schema["additionalProperties"] = {
        "description": "the verdicts of the scenario's detector that have a study column name",
        "type": ["boolean", "integer", "number", "string", "null"],
    }
    return schema
