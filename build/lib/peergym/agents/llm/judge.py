"""A judge model for interview answers the phrase rules leave undetermined: ``complete(prompt) -> text``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .client import ChatClient
from .settings import load_settings


def make_judge(preset: str, **overrides: Any) -> Callable[[str], str]:
    """A one-shot caller of the preset's model, at temperature 0 unless overridden; same retries as agents."""
    client = ChatClient(load_settings(preset, **{"temperature": 0.0, **overrides}))

    def complete(prompt: str) -> str:
        message, _ = client.complete([{"role": "user", "content": prompt}], tools=None, seed=0, deadline=None,
                                     purpose="judge")  # fmt: skip
        return message.content if isinstance(message.content, str) else ""

    return complete
