"""Docker sandbox: hosts on a private link, seeded files, the agent's persistent shell, and clean-up."""

from .lifecycle import REMOVER, reap
from .process import ProcessResult
from .sandbox import CAPABILITIES, FileTooLargeError, HostHandle, InsufficientDisk, Limits, Sandbox
from .types import EngineUnavailable, ExecResult, HostDied, HostSpec, ImageMissing, SandboxError, SeedFile

__all__ = [
    "CAPABILITIES", "REMOVER", "EngineUnavailable", "ExecResult", "FileTooLargeError", "HostDied", "HostHandle",
    "HostSpec", "ImageMissing", "InsufficientDisk", "Limits", "ProcessResult", "Sandbox", "SandboxError",
    "SeedFile", "reap",
]  # fmt: skip
