"""Docker sandbox: hosts on a private link, seeded files, the agent's persistent shell, and clean-up."""

from .lifecycle import REMOVER, reap
from .sandbox import CAPABILITIES, HostHandle, InsufficientDisk, Limits, Sandbox
from .types import EngineUnavailable, ExecResult, HostDied, HostSpec, ImageMissing, SandboxError, SeedFile

__all__ = [
    "CAPABILITIES", "REMOVER", "EngineUnavailable", "ExecResult", "HostDied", "HostHandle", "HostSpec",
    "ImageMissing", "InsufficientDisk", "Limits", "Sandbox", "SandboxError", "SeedFile", "reap",
]  # fmt: skip
