"""Episode records: one JSON file per episode, written atomically (a crash never leaves half a record).

Secrets from the environment are redacted from the text before it is written (see ``peergym/redact.py``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from peergym.redact import redact_text


def write_atomic(path: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as JSON to ``path`` via a temporary file and ``os.replace``, secrets redacted."""
    text = redact_text(json.dumps(record, indent=1, default=str))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
