"""Keep credentials out of records and logs: secrets from the environment are replaced wherever they appear.

Provider error messages can quote the key they were sent ("Incorrect API key provided: sk-..."), and a
custom agent could echo anything. Every record passes through :func:`redact_text` before it is written.
"""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
# Key shapes of common providers, redacted even when the variable is unknown to us (e.g. a partial echo).
_KEY_SHAPES = re.compile(
    r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{12,}|AIza[0-9A-Za-z_\-]{30,}|gsk_[A-Za-z0-9]{20,})"
)
_MIN_SECRET = 8  # shorter values ("1", "true") would redact ordinary text


_REGISTERED: set[str] = set()


def register_secret_variable(name: str) -> None:
    """Treat the environment variable ``name`` as a secret whatever it is called (an agent's ``api_key_env``)."""
    _REGISTERED.add(name)


def secret_values() -> dict[str, str]:
    """``{value: variable name}`` for every environment variable that holds a secret."""
    return {
        v: k for k, v in os.environ.items()
        if (k in _REGISTERED or _SECRET_NAME.search(k)) and len(v) >= _MIN_SECRET
    }  # fmt: skip


def redact_text(text: str, secrets: dict[str, str] | None = None) -> str:
    """``text`` with every secret value replaced by ``[redacted:NAME]`` and key-shaped strings by ``[redacted]``."""
    for value, name in sorted(
        (secrets if secrets is not None else secret_values()).items(), key=lambda kv: -len(kv[0])
    ):
        if value in text:
            text = text.replace(value, f"[redacted:{name}]")
    return _KEY_SHAPES.sub("[redacted]", text)
