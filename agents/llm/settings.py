"""Agent presets: ``configs/agents/<name>.yaml`` validated, with command-line overrides on top.

A preset names the model and its sampling settings and the agent's limits. API keys never appear in a preset:
``api_key_env`` names the environment variable that holds the key (none: litellm's own variable for the
provider, such as ``OPENAI_API_KEY`` or ``ANTHROPIC_API_KEY``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from peergym import CONFIGS_DIR
from peergym.envs.yamlconfig import read_mapping, resolve, validate

AGENT_DIR = CONFIGS_DIR / "agents"
# litellm.completion parameters that carry credentials (sampling parameters like max_completion_tokens do not)
_CREDENTIAL_PARAMS = {"api_key", "key", "token", "access_token", "secret", "password", "authorization",
                      "aws_secret_access_key", "aws_session_token", "vertex_credentials", "azure_ad_token"}  # fmt: skip
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie", re.IGNORECASE)


class AgentSettings(BaseModel):
    """Everything that shapes the LLM agent's behaviour and cost, recorded with every episode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="any litellm model string: openai/gpt-5, anthropic/claude-..., ollama/...")
    api_base: str | None = Field(None, description="OpenAI-compatible endpoint (vLLM, Ollama, a gateway)")
    api_key_env: str | None = Field(None, description="name of the environment variable holding the key")
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="1.0 as in the study")
    seed: int | None = Field(
        None, description="sampling seed; none: the episode's seed. Sent where supported"
    )
    max_tokens: int | None = Field(4096, gt=0)
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    tool_mode: Literal["native", "text"] = Field("native", description="text: commands in fenced blocks")
    max_steps: int = Field(30, gt=0, description="model turns per episode, malformed ones included")
    max_cost_usd: float | None = Field(None, gt=0)
    wall_time_s: float | None = Field(1800.0, gt=0, description="per episode, model calls and commands")
    request_timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0, description="per call, for 429 / 5xx / timeouts / connection errors")
    backoff_s: float = Field(2.0, ge=0, description="first wait between retries; doubles each time")
    backoff_max_s: float = Field(60.0, ge=0, description="cap on one wait, Retry-After included")
    rate_limit_requests: int | None = Field(
        None,
        gt=0,
        description="requests per window to this provider, shared "
        "by every episode of the process (the provider's limit)",
    )
    rate_limit_tokens: int | None = Field(
        None, gt=0, description="tokens per window to this provider, shared"
    )
    rate_limit_window_s: float = Field(
        60.0, gt=0, description="the window both limits count over (60: per minute)"
    )
    max_format_errors: int = Field(
        3, ge=0, description="consecutive malformed, empty or unknown-tool replies"
    )
    interview_tool_rounds: int = Field(5, ge=0, description="tool calls allowed while answering a question")
    extra_params: dict[str, Any] = Field(default_factory=dict, description="passed to litellm.completion")

    def public(self) -> dict[str, Any]:
        """The settings as recorded (no secret can be here: the schema refuses them)."""
        return self.model_dump()


def _without_secrets(data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``data`` minus anything that looks like a credential, and one problem for each such key."""
    problems = []
    if "api_key" in data:
        problems.append(("api_key", "keys never go in a preset: export it and set api_key_env to its name"))
    extra = data.get("extra_params")
    if isinstance(extra, dict):
        for name, value in extra.items():
            headers = (
                value if str(name).lower() in ("extra_headers", "headers") and isinstance(value, dict) else {}
            )
            if str(name).lower() in _CREDENTIAL_PARAMS or any(_SECRET_HEADER.search(str(h)) for h in headers):
                problems.append((f"extra_params.{name}", "credentials come from the environment only"))
    clean = {k: v for k, v in data.items() if k != "api_key"}
    return clean, problems


def preset_names() -> list[str]:
    return sorted(p.stem for p in AGENT_DIR.glob("*.yaml"))


def load_settings(preset: str | None = None, **overrides: Any) -> AgentSettings:
    """A preset by name (``configs/agents/<name>.yaml``) or path, with ``overrides`` applied on top.

    Without a preset, ``overrides`` alone must name the model. Raises :class:`ConfigError` naming the file and
    field for every problem, overrides included (as ``(override).field``).
    """
    data: dict[str, Any] = {}
    file = "(override)"
    if preset:
        path = resolve(preset, AGENT_DIR, "agent preset")
        data = read_mapping(path, "agent preset", "model, temperature, ...")
        file = str(path) if not overrides else f"{path} (+ overrides)"
    clean, problems = _without_secrets({**data, **overrides})
    return validate(AgentSettings, clean, file, "agent preset", problems)
