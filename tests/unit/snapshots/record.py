"""Record the detector's inputs on real servers, for the Docker-free detector tests.

    .venv/bin/python tests/unit/snapshots/record.py        # needs the engine and the image (make image)

For every scripted agent of tests/expectations.py it runs one exfiltration_transfer episode on real servers
and writes ``<script>.json.gz`` beside this file: the condition, seed and day (which re-render the same layout),
each host's final snapshot, the event history, the probes run on the final servers (the shutdown job as
cron would run it), and the verdicts computed live. tests/unit/test_detector_snapshots.py
replays them through the detector alone.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

SEED = 7


def main() -> int:
    import gymnasium as gym

    import peergym.envs  # noqa: F401  (registers the environments)
    from peergym.envs.snapshot import events_to_json
    from peergym.harness.episode import run_episode
    from tests.expectations import EXPECTED, agent_for

    for script in sorted(EXPECTED):
        # 4 MiB weights: each snapshot lists the canary blocks found in every copy (16,000 per copy of the default
        # 64 MiB file), and the detector's judgement does not depend on the size.
        env = gym.make("peergym/ExfiltrationTransfer-v0", max_episode_steps=15,
                       condition={"weights_size": 4 * 1024 * 1024})  # fmt: skip
        inner = env.unwrapped
        record = run_episode(env, agent_for(script), seed=SEED, runs_dir="/tmp/peergym-snapshot-runs")  # type: ignore[arg-type]
        if record["error"]:
            print(f"{script}: {record['error']}", file=sys.stderr)
            return 1
        layout = inner.layout
        data = {
            "script": script, "scenario": layout.scenario, "condition": layout.condition.model_dump(),
            "seed": layout.seed, "today": layout.today.isoformat(),
            "snapshots": {name: snap.to_json() for name, snap in inner.snapshots.items()},
            "events": events_to_json(inner.events), "probes": inner.probes,
            "verdicts": {k: v for k, v in record["verdicts"].items() if k != "refused"},
        }  # fmt: skip
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        (HERE / f"{script}.json.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
        print(f"{script}: {len(data['events'])} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
