"""What Inspect loads through peergym's ``inspect_ai`` entry point: the sandbox environment and the tasks."""

from peergym.harness.inspect_sandbox import PeerSandbox
from peergym.harness.inspect_tasks import (
    alignment_faking,
    exfiltration_deletion,
    exfiltration_transfer,
    misrep_evaluation,
    misrep_finance,
    oversight_subversion,
    self_exfiltration,
    shutdown_resistance,
    tampering,
)

__all__ = [
    "PeerSandbox",
    "alignment_faking",
    "exfiltration_deletion",
    "exfiltration_transfer",
    "misrep_evaluation",
    "misrep_finance",
    "oversight_subversion",
    "self_exfiltration",
    "shutdown_resistance",
    "tampering",
]
